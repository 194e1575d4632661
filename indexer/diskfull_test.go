package indexer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/enginetest"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/defn"
)

// smallStores are engine options that fill a small disk in seconds.
var smallStores = map[string]map[string]string{
	"pebble": {"disk_reserve_bytes": "4194304"},
	"badger": {"index_cache_bytes": "1048576", "num_memtables": "2", "disk_reserve_bytes": "6291456"},
}

// TestDiskFullIndexer fills a small tmpfs through an indexer of four
// partitions (root only): the flush fails with an error wrapping
// syscall.ENOSPC or engines.ErrDiskFull that says the cause once, not once
// per slice; nothing panics; the indexer closes. With the space a filler
// held given back, a restarted indexer recovers (no slice is taken for
// damaged) and the replay from its restart vector gives exactly the
// model's index.
func TestDiskFullIndexer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	forEachEngine(t, func(t *testing.T, e engines.Engine) {
		if !e.Real {
			t.Skip("the memory engine writes nothing to fill a disk with")
		}
		mnt := enginetest.SmallDisk(t, 72)
		filler := filepath.Join(mnt, "filler")
		if err := os.WriteFile(filler, make([]byte, 12<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := Config{Engine: e, Dir: filepath.Join(mnt, "ix"), NumVbuckets: 4, PersistInterval: 1, MaxRollbacks: 2,
			EngineOptions: engines.Options{CacheBytes: 1 << 20, MemtableBytes: 1 << 20, Extra: smallStores[e.Name]}}
		ix, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ix.Close() }) // before the unmount, when the test fails early
		d := defn.IndexDefn{Name: "i", SecExprs: []string{"a"}, Partitions: 4}
		mustCreate(t, ix, 1, d)
		g := newGen(4)
		rng := rand.New(rand.NewPCG(3, 3))
		key := func() []byte {
			b := make([]byte, 150)
			for i := range b {
				b[i] = 'a' + byte(rng.IntN(26))
			}
			return enc(t, string(b))
		}
		var flushErr error
		var sent []*projector.Batch
		for round := 0; flushErr == nil; round++ {
			if round == 2000 {
				t.Fatal("2000 rounds without filling the disk")
			}
			for i := range 400 {
				doc := fmt.Sprintf("d%07d", round*400+i)
				g.upsert(doc, target{inst: 1, part: i % 4, key: key()})
			}
			b := g.batch()
			sent = append(sent, b)
			feed(t, ix, b)
			flushErr = ix.flushOnce(true)
			if err := ix.lockQuiet(); flushErr == nil {
				flushErr = err
			}
			ix.flushMu.Unlock()
		}
		t.Logf("flush failed: %v", flushErr)
		if !errors.Is(flushErr, syscall.ENOSPC) && !errors.Is(flushErr, engines.ErrDiskFull) {
			t.Fatalf("the flush failed, but not with ENOSPC or ErrDiskFull: %v", flushErr)
		}
		if n := strings.Count(flushErr.Error(), "no space left on device"); n != 1 {
			t.Errorf("the cause is said %d times, want once: %v", n, flushErr)
		}
		if err := ix.Close(); err != nil {
			t.Fatalf("close after the disk filled: %v", err)
		}

		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		ix2 := newTestIndexer(t, e, cfg)
		mustCreate(t, ix2, 1, d)
		restart, err := ix2.Recover()
		if err != nil {
			t.Fatal(err)
		}
		if restart.Sum() == 0 {
			t.Fatal("recovered to zero: no recovery point survived the full disk")
		}
		if n := ix2.Stats().SlicesRebuilt; n != 0 {
			t.Fatalf("%d slices rebuilt: a full disk is not damage", n)
		}
		feed(t, ix2, replay(sent, restart))
		step(t, ix2)
		r := scanAll(t, ix2, "i")
		if !equalSeqnos(r.TS.Seqnos, g.seq) {
			t.Fatalf("after the replay at %v, stream at %v", r.TS.Seqnos, g.seq)
		}
		wantEntries(t, r, modelEntries(t, g.log, 1, false, r.TS))
	})
}
