package pebble_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/enginetest"
	"github.com/idxbench/idxbench/engines/pebble"
)

// small keeps test stores light: pebble's benchmark defaults reserve a
// 64 MiB memtable per store.
var small = engines.Options{CacheBytes: 4 << 20, MemtableBytes: 4 << 20}

func open(dir string) (engines.Store, error) { return pebble.Open(dir, small) }

func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Factory{Name: pebble.Name, Open: open, Durable: true})
}

func mustApply(t *testing.T, s engines.Store, fill func(b *engines.Batch)) {
	t.Helper()
	var b engines.Batch
	fill(&b)
	if err := s.Apply(&b, engines.NoSync); err != nil {
		t.Fatal(err)
	}
}

func mustGet(t *testing.T, s engines.Store, key string) (string, bool) {
	t.Helper()
	v, ok, err := s.Get(engines.Main, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return string(v), ok
}

// TestRollbackAcrossReopen checks that a recovery point survives a reopen,
// that rolling back to it restores its contents, drops newer points, and
// leaves the checkpoint reusable for a second rollback.
func TestRollbackAcrossReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, func(b *engines.Batch) { b.Set(engines.Main, []byte("a"), []byte("1")) })
	if err := s.CreateRecoveryPoint(1, []byte("ts1")); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, func(b *engines.Batch) {
		b.Set(engines.Main, []byte("a"), []byte("2"))
		b.Set(engines.Main, []byte("b"), []byte("2"))
	})
	if err := s.CreateRecoveryPoint(2, []byte("ts2")); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, func(b *engines.Batch) { b.Delete(engines.Main, []byte("a")) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rps, err := s.RecoveryPoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(rps) != 2 || rps[0].ID != 1 || string(rps[1].Meta) != "ts2" {
		t.Fatalf("recovery points after reopen: %+v", rps)
	}
	for round := range 2 {
		if err := s.RollbackTo(1); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if v, ok := mustGet(t, s, "a"); !ok || v != "1" {
			t.Fatalf("round %d: a = %q, %v after rollback; want 1", round, v, ok)
		}
		if _, ok := mustGet(t, s, "b"); ok {
			t.Fatalf("round %d: b survived the rollback", round)
		}
		mustApply(t, s, func(b *engines.Batch) { b.Set(engines.Main, []byte("a"), []byte("3")) })
	}
	rps, _ = s.RecoveryPoints()
	if len(rps) != 1 || rps[0].ID != 1 {
		t.Fatalf("recovery points after rollback: %+v", rps)
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoints", "00000000000000000002")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("checkpoint 2 not removed: %v", err)
	}
}

// TestIncompleteRecoveryPointIgnored simulates a crash between the
// checkpoint and its marker: the next Open neither lists nor keeps it.
func TestIncompleteRecoveryPointIgnored(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRecoveryPoint(7, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash leaves no seal: only a clean Close writes one.
	if err := os.Remove(filepath.Join(dir, engines.SealFile)); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "checkpoints", "00000000000000000007")
	if err := os.Remove(filepath.Join(cp, "IDXBENCH-RP2")); err != nil {
		t.Fatal(err)
	}
	s, err = open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rps, _ := s.RecoveryPoints(); len(rps) != 0 {
		t.Fatalf("incomplete recovery point listed: %+v", rps)
	}
	if _, err := os.Stat(cp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("incomplete checkpoint kept: %v", err)
	}
}

// TestInterruptedRollbackSettled simulates crashes during rollbacks: a new
// database directory that never became live, and an old one that was not
// yet removed. Open keeps the one LIVE names and removes the others.
func TestInterruptedRollbackSettled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, func(b *engines.Batch) { b.Set(engines.Main, []byte("k"), []byte("v1")) })
	if err := s.CreateRecoveryPoint(1, nil); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, func(b *engines.Batch) { b.Set(engines.Main, []byte("k"), []byte("v2")) })
	if err := s.RollbackTo(1); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, func(b *engines.Batch) { b.Set(engines.Main, []byte("k"), []byte("live")) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	live, err := os.ReadFile(filepath.Join(dir, "LIVE"))
	if err != nil || string(live) == "data" {
		t.Fatalf("LIVE = %q, %v after a rollback", live, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("replaced database directory kept after Close: %v", err)
	}
	// Leftovers of crashed rollbacks, one older and one newer than LIVE.
	for _, stale := range []string{"data", "data-000099"} {
		if err := os.MkdirAll(filepath.Join(dir, stale), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, stale, "000001.log"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err = open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, ok := mustGet(t, s, "k"); !ok || v != "live" {
		t.Fatalf("k = %q, %v; want live", v, ok)
	}
	for _, stale := range []string{"data", "data-000099"} {
		if _, err := os.Stat(filepath.Join(dir, stale)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale %s kept: %v", stale, err)
		}
	}
}

// TestCorruptStore damages the MANIFEST; Open must report ErrCorrupt naming
// the path and delete nothing.
func TestCorruptStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, func(b *engines.Batch) { b.Set(engines.Main, []byte("k"), []byte("v")) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	manifests, _ := filepath.Glob(filepath.Join(dir, "data", "MANIFEST-*"))
	if len(manifests) == 0 {
		t.Fatal("no MANIFEST")
	}
	for _, m := range manifests {
		if err := os.WriteFile(m, []byte(strings.Repeat("garbage!", 100)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.ReadDir(filepath.Join(dir, "data"))
	_, err = open(dir)
	if !errors.Is(err, engines.ErrCorrupt) {
		t.Fatalf("open of a corrupt store: %v; want ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %q does not name %q", err, dir)
	}
	after, _ := os.ReadDir(filepath.Join(dir, "data"))
	if len(after) != len(before) {
		t.Fatalf("files changed: %d before, %d after", len(before), len(after))
	}
}

// TestLostDataDir: a store whose database directory vanished is corrupt,
// not silently recreated empty.
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
	e, err := engines.Lookup(pebble.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Real {
		t.Error("pebble registered as not real")
	}
	got := e.Describe(engines.Options{})
	for _, want := range []string{"memtable=67108864", "l0_compaction_threshold=2", "l0_stop_writes_threshold=1000", "compression=snappy"} {
		if !strings.Contains(got, want) {
			t.Errorf("Describe = %q, missing %q", got, want)
		}
	}
	if _, err := pebble.Open(t.TempDir(), engines.Options{Extra: map[string]string{"bogus": "1"}}); err == nil {
		t.Error("unknown extra accepted")
	}
	if _, err := pebble.Open(t.TempDir(), engines.Options{Extra: map[string]string{pebble.ExtraL0StopWritesThreshold: "x"}}); err == nil {
		t.Error("non-numeric extra accepted")
	}
}

func TestMetrics(t *testing.T) {
	s, err := open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustApply(t, s, func(b *engines.Batch) {
		for i := range 1000 {
			b.Set(engines.Main, []byte(strings.Repeat("k", i%50)+string(rune('a'+i%26))), nil)
		}
	})
	if err := s.CreateRecoveryPoint(1, nil); err != nil {
		t.Fatal(err)
	}
	m, err := s.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if m.DiskBytes <= 0 || m.EngineBytesWritten <= 0 || m.MemoryBytes <= 0 {
		t.Fatalf("metrics %+v: want positive sizes", m)
	}
	for _, k := range []string{"write_amp", "l0_files", "compactions"} {
		if _, ok := m.Extra[k]; !ok {
			t.Errorf("metrics lack %s", k)
		}
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
