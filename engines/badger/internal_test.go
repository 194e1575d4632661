package badger

import (
	"fmt"
	"path/filepath"
	"testing"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/enginetest"
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

// TestRollbackOverManyBatches: a rollback whose writes fill many of
// badger's batches (written while the walk goes on) restores exactly the
// contents at the recovery point, before and after a reopen.
func TestRollbackOverManyBatches(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	opts := engines.Options{CacheBytes: 1 << 20, MemtableBytes: 1 << 20}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	const docs = 12000
	apply := func(from, to int, version string) {
		t.Helper()
		var b engines.Batch
		for d := from; d < to; d++ {
			doc := fmt.Appendf(nil, "doc%05d", d)
			key := fmt.Appendf(nil, "%s-%05d", version, d)
			b.Set(engines.Main, append(key, doc...), nil)
			b.Set(engines.Back, doc, key)
			if b.Len() >= 1000 {
				if err := s.Apply(&b, engines.NoSync); err != nil {
					t.Fatal(err)
				}
				b.Reset()
			}
		}
		if err := s.Apply(&b, engines.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	apply(0, docs, "a")
	if err := s.CreateRecoveryPoint(1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	want := enginetest.Dump(t, s)
	// Every document gets a second Main entry and a new Back value, and
	// half of the old Main entries go: 30000 writes to undo.
	apply(0, docs, "b")
	var b engines.Batch
	for d := 0; d < docs; d += 2 {
		b.Delete(engines.Main, fmt.Appendf(nil, "a-%05ddoc%05d", d, d))
		if b.Len() >= 1000 || d+2 >= docs {
			if err := s.Apply(&b, engines.NoSync); err != nil {
				t.Fatal(err)
			}
			b.Reset()
		}
	}
	if n := int(s.db.MaxBatchCount()); 2*docs+docs/2 < 4*n {
		t.Fatalf("the rollback's %d writes fit %d batches of %d: not enough to test", 2*docs+docs/2, (2*docs+docs/2)/n+1, n)
	}
	if err := s.RollbackTo(1); err != nil {
		t.Fatal(err)
	}
	if got := enginetest.Dump(t, s); got != want {
		t.Fatalf("after the rollback: %d bytes of contents, want %d", len(got), len(want))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	if got := enginetest.Dump(t, s); got != want {
		t.Fatalf("after the rollback and a reopen: %d bytes of contents, want %d", len(got), len(want))
	}
}
