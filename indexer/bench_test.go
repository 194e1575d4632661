package indexer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/defn"
)

// BenchmarkFlush measures the flusher on each engine: key versions received
// by the reader core, flushed at a stability timestamp every 20000 key
// versions, snapshotted. "insert" indexes new documents; "update" changes
// the key of documents already indexed (delete old entry + write new one,
// plus the back-index read). Reported as key versions per second (kv/s).
// Partitions: 4, so the flush runs slices in parallel.
func BenchmarkFlush(b *testing.B) {
	for _, e := range testEngines(b) {
		for _, mode := range []string{"insert", "update"} {
			for _, cache := range []int64{0, 256 << 20} {
				b.Run(fmt.Sprintf("engine=%s/%s/backcache=%dMiB", e.Name, mode, cache>>20), func(b *testing.B) {
					benchmarkFlush(b, e, mode == "update", cache)
				})
			}
		}
	}
}

func benchmarkFlush(b *testing.B, e engines.Engine, update bool, cache int64) {
	const (
		nvb      = 1024
		docs     = 100000
		perBatch = 2000
		perST    = 20000
		parts    = 4
	)
	ix := newTestIndexer(b, e, Config{NumVbuckets: nvb, QueueSize: 1 << 30, BackIndexCacheBytes: cache})
	mustCreate(b, ix, 1, defn.IndexDefn{Name: "bench", SecExprs: []string{"k"}, Partitions: parts})
	r := rand.New(rand.NewPCG(1, 2))
	g := newGen(nvb)
	key := func() []byte { return enc(b, fmt.Sprintf("city-%08d", r.IntN(1<<24))) }
	docid := func(i int) string { return fmt.Sprintf("doc-%010d", i) }
	if update {
		for i := range docs {
			g.upsert(docid(i), target{inst: 1, part: i % parts, key: key()})
		}
		feed(b, ix, g.batch())
		step(b, ix)
	}
	// Generate the stream first, so the benchmark times the indexer only.
	batches := make([]*projector.Batch, 0, b.N/perBatch+1)
	for i := range b.N {
		d := i
		if update {
			d = r.IntN(docs)
		} else {
			d += docs
		}
		g.upsert(docid(d), target{inst: 1, part: d % parts, key: key()})
		if len(g.kvs) >= perBatch {
			batches = append(batches, g.batch())
		}
	}
	batches = append(batches, g.batch())
	g.log = nil
	b.ResetTimer()
	cpu0 := cpuTime(b)
	n := 0
	for _, bt := range batches {
		feed(b, ix, bt)
		n += len(bt.KVs)
		if n >= perST {
			step(b, ix)
			n = 0
		}
	}
	step(b, ix)
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	if st := ix.Stats(); st.FlushedKeyVersions < int64(b.N) {
		b.Fatalf("flushed %d key versions of %d", st.FlushedKeyVersions, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "kv/s")
	// CPU time (all goroutines, the engine's included) per key version is
	// steadier than wall time on a shared machine.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/kv")
}

// cpuTime is the process's user+system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScan measures a Range scan returning about 1000 entries (and a
// Count over the same range) from 100000 entries in 4 partitions, merged in
// key order, at consistency any.
func BenchmarkScan(b *testing.B) {
	for _, e := range testEngines(b) {
		b.Run("engine="+e.Name, func(b *testing.B) {
			const docs, parts = 100000, 4
			ix := newTestIndexer(b, e, Config{NumVbuckets: 1024, QueueSize: 1 << 30})
			mustCreate(b, ix, 1, defn.IndexDefn{Name: "bench", SecExprs: []string{"k"}, Partitions: parts})
			g := newGen(1024)
			for i := range docs {
				g.upsert(fmt.Sprintf("doc-%010d", i), target{inst: 1, part: i % parts, key: enc(b, float64(i%10000))})
			}
			feed(b, ix, g.batch())
			step(b, ix)
			g.log = nil
			r := rand.New(rand.NewPCG(3, 4))
			ctx := context.Background()
			for _, kind := range []ScanKind{ScanRange, ScanCount} {
				b.Run("kind="+kind.String(), func(b *testing.B) {
					for b.Loop() {
						lo := float64(r.IntN(9900))
						res, err := ix.Scan(ctx, ScanRequest{Index: "bench", Kind: kind, Low: []any{lo}, High: []any{lo + 100}, Inclusion: IncludeLow})
						if err != nil {
							b.Fatal(err)
						}
						if res.Count != 1000 {
							b.Fatalf("scan [%v,%v) counted %d, want 1000", lo, lo+100, res.Count)
						}
					}
				})
			}
		})
	}
}
