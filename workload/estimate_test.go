package workload

import (
	"runtime"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/workload/defn"
)

func TestCheckMemory(t *testing.T) {
	s := DefaultSpec()
	s.Docs = 1_000_000
	est := s.MemoryEstimate()
	if err := s.CheckMemory(est); err != nil {
		t.Fatalf("estimate %d within %d refused: %v", est, est, err)
	}
	if err := s.CheckMemory(0); err != nil {
		t.Fatalf("unknown machine memory refused: %v", err)
	}
	err := s.CheckMemory(est - 1)
	if err == nil || !strings.Contains(err.Error(), "workload.docs: 1000000 documents need about 1.3 GiB") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("CheckMemory below the estimate: %v", err)
	}
	// Extra fields with long strings cost more per document.
	hard := s
	f := DefaultFieldGen("long")
	f.String.Length = SizeDist{Dist: "fixed", Mean: 10_000}
	hard.Fields.Extra = []FieldGen{f}
	hard.Indexes = append(hard.Indexes, defn.IndexDefn{Name: "by_long", SecExprs: []string{"long"}})
	if hard.MemoryEstimate() < s.MemoryEstimate()+uint64(s.Docs)*30_000 {
		t.Errorf("long strings: %d B/doc, plain %d B/doc", hard.bytesPerDoc(), s.bytesPerDoc())
	}
	// Deep, wide nesting stays finite.
	f = DefaultFieldGen("deep")
	f.Types, f.Depth, f.Items = TypeMix{Array: 1, String: 1}, 64, 1000
	hard.Fields.Extra = []FieldGen{f}
	if n := hard.bytesPerDoc(); n == 0 || n > 64*maxEstimateDocBytes {
		t.Errorf("deep nesting: %d B/doc", n)
	}
}

// TestMemoryEstimateMeasured holds the estimate to what the bucket and a
// view of the default indexes take on the heap: within a factor of two.
func TestMemoryEstimateMeasured(t *testing.T) {
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	s := DefaultSpec()
	s.Docs, s.Vbuckets = 20_000, 64
	h0 := heap()
	g, err := NewGenerator(s)
	if err != nil {
		t.Fatal(err)
	}
	b := g.NewBucket(BucketOptions{})
	g.Load(b)
	v, err := NewOracle(b).NewView(s.Indexes, b.CurrentSeqnos())
	if err != nil {
		t.Fatal(err)
	}
	used := heap() - h0
	runtime.KeepAlive(v)
	runtime.KeepAlive(b)
	est := s.MemoryEstimate()
	t.Logf("estimate %d B, heap grew %d B (%d documents)", est, used, s.Docs)
	if est > 2*used || used > 2*est {
		t.Errorf("estimate %d B, measured %d B: off by more than a factor of two", est, used)
	}
}
