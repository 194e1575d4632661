package indexer

import (
	"fmt"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/workload/defn"
)

// TestStatsDuringClose: Stats may run from a monitor while the node closes
// the indexer for a restart; Close waits for it, so no store closes with a
// view Stats still holds (pebble reports that as leaked snapshots).
func TestStatsDuringClose(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engines.Engine) {
		for i := range 5 {
			cfg := Config{Engine: e, Dir: t.TempDir(), NumVbuckets: 4, PersistInterval: -1}
			ix, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"k"}})
			g := newGen(4)
			g.upsert(fmt.Sprintf("d%d", i), target{inst: 1, key: enc(t, float64(i))})
			feed(t, ix, g.batch())
			step(t, ix)
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					default:
						ix.Stats()
					}
				}
			}()
			time.Sleep(time.Millisecond)
			err = ix.Close()
			close(stop)
			<-done
			if err != nil {
				t.Fatalf("close while Stats runs: %v", err)
			}
		}
	})
}
