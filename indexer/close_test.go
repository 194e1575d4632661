package indexer

import (
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/workload/defn"
)

// TestCloseWaitsForScans: Close called while a scan still reads a slice
// (its view open) waits for the scan to release the view instead of
// failing the store's close ("views are open", which bbolt refuses) — a
// restart under the harness's polling scans met that on bbolt.
func TestCloseWaitsForScans(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engines.Engine) {
		cfg := Config{Engine: e, Dir: t.TempDir(), NumVbuckets: 4, PersistInterval: 1, MaxRollbacks: 2}
		ix, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"a"}, Partitions: 2})
		rounds(t, ix, newGen(4), 2, 0)
		s := ix.insts[1].slices[1]
		v, err := s.newView()
		if err != nil {
			t.Fatal(err)
		}
		released := make(chan struct{})
		go func() {
			time.Sleep(100 * time.Millisecond)
			close(released)
			v.release()
		}()
		if err := ix.Close(); err != nil {
			t.Fatalf("Close with a scan reading: %v", err)
		}
		select {
		case <-released:
		default:
			t.Fatal("Close returned before the scan released its view")
		}
	})
}
