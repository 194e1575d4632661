package badger

import (
	"path/filepath"
	"testing"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/idxbench/idxbench/engines"
)

// TestInterruptedRollbackFinishedOnOpen simulates a crash after a
// rollback's first step (marker set, newer points gone) and after part of
// its rewrite: the next Open must finish the rollback.
func TestInterruptedRollbackFinishedOnOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	opts := engines.Options{CacheBytes: 1 << 20, MemtableBytes: 4 << 20}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(fill func(b *engines.Batch)) {
		t.Helper()
		var b engines.Batch
		fill(&b)
		if err := s.Apply(&b, engines.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	apply(func(b *engines.Batch) { b.Set(engines.Main, []byte("old"), nil) })
	if err := s.CreateRecoveryPoint(1, nil); err != nil {
		t.Fatal(err)
	}
	apply(func(b *engines.Batch) {
		b.Delete(engines.Main, []byte("old"))
		b.Set(engines.Main, []byte("new"), nil)
	})
	if err := s.CreateRecoveryPoint(2, nil); err != nil {
		t.Fatal(err)
	}
	s.rpMu.Lock()
	ts, err := s.markRollback(1)
	// Half a rewrite: "old" is back, "new" is still there.
	if err == nil {
		_, err = s.commit(func(txn *badgerdb.Txn) error { return txn.Set([]byte{byte(engines.Main), 'o', 'l', 'd'}, nil) })
	}
	s.rpMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if ts == 0 {
		t.Fatal("recovery point at version 0")
	}
	if err := s.db.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok, _ := s.Get(engines.Main, []byte("new")); ok {
		t.Error("interrupted rollback not finished: new survived")
	}
	if _, ok, _ := s.Get(engines.Main, []byte("old")); !ok {
		t.Error("interrupted rollback not finished: old missing")
	}
	if rps, _ := s.RecoveryPoints(); len(rps) != 1 || rps[0].ID != 1 {
		t.Errorf("recovery points: %+v", rps)
	}
	if _, ok, _ := s.Get(engines.Keyspace(reservedPrefix), rollbackKey[1:]); ok {
		t.Error("rollback marker left behind")
	}
}
