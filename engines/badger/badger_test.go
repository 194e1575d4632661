package badger_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/badger"
	"github.com/idxbench/idxbench/engines/enginetest"
)

// small keeps test stores light.
var small = engines.Options{CacheBytes: 4 << 20, MemtableBytes: 4 << 20, Extra: map[string]string{badger.ExtraIndexCacheBytes: "4194304"}}

func open(dir string) (engines.Store, error) { return badger.Open(dir, small) }

func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Factory{Name: badger.Name, Open: open, Durable: true})
}

func mustApply(t *testing.T, s engines.Store, fill func(b *engines.Batch)) {
	t.Helper()
	var b engines.Batch
	fill(&b)
	if err := s.Apply(&b, engines.NoSync); err != nil {
		t.Fatal(err)
	}
}

// TestRollbackAcrossReopen: recovery points survive a reopen (the discard
// timestamp and version counter are restored), and rolling back restores
// values, deletions and absences, and drops newer points.
func TestRollbackAcrossReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, func(b *engines.Batch) {
		b.Set(engines.Main, []byte("a"), nil)
		b.Set(engines.Back, []byte("d1"), []byte("a"))
		b.Set(engines.Meta, []byte("ts"), []byte("1"))
	})
	if err := s.CreateRecoveryPoint(1, []byte("ts1")); err != nil {
		t.Fatal(err)
	}
	want1 := enginetest.Dump(t, s)
	mustApply(t, s, func(b *engines.Batch) {
		b.Delete(engines.Main, []byte("a"))
		b.Set(engines.Main, []byte("b"), nil)
		b.Set(engines.Back, []byte("d1"), []byte("b"))
		b.Set(engines.Meta, []byte("ts"), []byte("2"))
	})
	if err := s.CreateRecoveryPoint(2, []byte("ts2")); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, func(b *engines.Batch) { b.Set(engines.Main, []byte("c"), nil) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rps, _ := s.RecoveryPoints()
	if len(rps) != 2 || rps[1].ID != 2 || string(rps[1].Meta) != "ts2" {
		t.Fatalf("recovery points after reopen: %+v", rps)
	}
	// Writes after the reopen must get versions above everything before
	// it, or they would be invisible.
	mustApply(t, s, func(b *engines.Batch) { b.Set(engines.Main, []byte("d"), nil) })
	if _, ok, _ := s.Get(engines.Main, []byte("d")); !ok {
		t.Fatal("write after reopen not visible: version counter not resumed")
	}
	for round := range 2 {
		if err := s.RollbackTo(1); err != nil {
			t.Fatal(err)
		}
		if got := enginetest.Dump(t, s); got != want1 {
			t.Fatalf("round %d: after rollback\n got %s\nwant %s", round, got, want1)
		}
		mustApply(t, s, func(b *engines.Batch) { b.Set(engines.Main, []byte("z"), nil) })
	}
	if rps, _ := s.RecoveryPoints(); len(rps) != 1 || rps[0].ID != 1 {
		t.Fatalf("recovery points after rollback: %+v", rps)
	}
}

// TestTxnTooBig: a batch larger than one badger transaction fails, names
// its size, wraps ErrTxnTooBig and changes nothing.
func TestTxnTooBig(t *testing.T) {
	s, err := badger.Open(filepath.Join(t.TempDir(), "store"), engines.Options{MemtableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b engines.Batch
	for i := range 50000 {
		b.Set(engines.Main, fmt.Appendf(nil, "key-%08d", i), nil)
	}
	err = s.Apply(&b, engines.NoSync)
	if !errors.Is(err, badgerdb.ErrTxnTooBig) || !strings.Contains(err.Error(), "50000 ops") {
		t.Fatalf("Apply of an oversized batch: %v", err)
	}
	if got := enginetest.Dump(t, s); got != "" {
		t.Fatalf("oversized batch left %q", got[:min(len(got), 80)])
	}
}

func TestCorruptStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, func(b *engines.Batch) { b.Set(engines.Main, []byte("k"), nil) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "data", "MANIFEST")
	if err := os.WriteFile(manifest, []byte(strings.Repeat("garbage!", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = open(dir)
	if !errors.Is(err, engines.ErrCorrupt) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("open of a corrupt store: %v; want ErrCorrupt naming %s", err, dir)
	}
	if data, _ := os.ReadFile(manifest); !strings.HasPrefix(string(data), "garbage!") {
		t.Fatal("corrupt MANIFEST was rewritten")
	}
}

func TestLostDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	if _, err := open(dir); !errors.Is(err, engines.ErrCorrupt) {
		t.Fatalf("open without data: %v; want ErrCorrupt", err)
	}
}

func TestOptions(t *testing.T) {
	e, err := engines.Lookup(badger.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Real {
		t.Error("badger registered as not real")
	}
	got := e.Describe(engines.Options{})
	for _, want := range []string{"cache=67108864", "index_cache=67108864", "mode=managed"} {
		if !strings.Contains(got, want) {
			t.Errorf("Describe = %q, missing %q", got, want)
		}
	}
	if _, err := badger.Open(t.TempDir(), engines.Options{Extra: map[string]string{"bogus": "1"}}); err == nil {
		t.Error("unknown extra accepted")
	}
}

func TestMetrics(t *testing.T) {
	s, err := open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustApply(t, s, func(b *engines.Batch) { b.Set(engines.Main, []byte("k"), nil) })
	m, err := s.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if m.DiskBytes <= 0 || m.MemoryBytes <= 0 || m.EngineBytesWritten != -1 {
		t.Fatalf("metrics %+v", m)
	}
	if _, ok := m.Extra["lsm_bytes"]; !ok {
		t.Error("metrics lack lsm_bytes")
	}
}

// TestOpenTwice: a second open of a store in use fails, and is not
// mistaken for corruption.
func TestOpenTwice(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s2, err := open(dir)
	if err == nil {
		s2.Close()
		t.Fatal("second open of a store in use succeeded")
	}
	if errors.Is(err, engines.ErrCorrupt) {
		t.Fatalf("second open reported corruption: %v", err)
	}
	t.Log(err)
}
