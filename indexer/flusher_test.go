package indexer

import (
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/workload/defn"
)

// gatedStore blocks its Apply calls while gate is set.
type gatedStore struct {
	engines.Store
	gate    *atomic.Pointer[chan struct{}]
	applies *atomic.Int32
}

func (s *gatedStore) Apply(b *engines.Batch, d engines.Durability) error {
	if ch := s.gate.Load(); ch != nil {
		<-*ch
	}
	err := s.Store.Apply(b, d)
	s.applies.Add(1)
	return err
}

// TestSlowSliceDoesNotHoldBackOthers: while one slice is stuck in a round,
// the others apply the next round (no barrier between rounds), and scans
// still see only complete rounds: no snapshot is published until the stuck
// slice has caught up, then both rounds are.
func TestSlowSliceDoesNotHoldBackOthers(t *testing.T) {
	var gate atomic.Pointer[chan struct{}]
	var slowApplies, fastApplies atomic.Int32
	e := engines.WrapStores(memoryEngine(t), func(dir string, s engines.Store) engines.Store {
		if strings.Contains(dir, string(filepath.Separator)+"slow"+string(filepath.Separator)) {
			return &gatedStore{Store: s, gate: &gate, applies: &slowApplies}
		}
		return &gatedStore{Store: s, gate: new(atomic.Pointer[chan struct{}]), applies: &fastApplies}
	})
	ix := newTestIndexer(t, e, Config{NumVbuckets: 1})
	mustCreate(t, ix, 1, defn.IndexDefn{Name: "slow", SecExprs: []string{"k"}})
	mustCreate(t, ix, 2, defn.IndexDefn{Name: "fast", SecExprs: []string{"k"}})
	both := func(k float64) []target {
		return []target{{inst: 1, key: enc(t, k)}, {inst: 2, key: enc(t, k)}}
	}
	ch := make(chan struct{})
	gate.Store(&ch)
	g := newGen(1)
	g.upsert("d1", both(1)...)
	feed(t, ix, g.batch())
	if err := ix.flushOnce(true); err != nil {
		t.Fatal(err)
	}
	g.upsert("d2", both(2)...)
	feed(t, ix, g.batch())
	if err := ix.flushOnce(true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for fastApplies.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the fast slice applied %d rounds while the slow one was stuck in the first, want 2", fastApplies.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if r := scanAll(t, ix, "fast"); len(r.Entries) != 0 {
		t.Fatalf("a snapshot was published before every slice finished the round: %s", fmtEntries(r.Entries))
	}

	gate.Store(nil)
	close(ch)
	err := ix.lockQuiet()
	ix.flushMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if n := slowApplies.Load(); n != 2 {
		t.Errorf("the slow slice applied %d batches, want 2", n)
	}
	for _, name := range []string{"slow", "fast"} {
		if got := docids(scanAll(t, ix, name).Entries); strings.Join(got, ",") != "d1,d2" {
			t.Errorf("%s holds %v after both rounds, want d1,d2", name, got)
		}
	}
}
