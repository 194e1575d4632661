package badger_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/badger"
)

// TestOpenAfterKillDuringMemtableCreation reproduces what a SIGKILL right
// after badger created a memtable file leaves (a zero-length *.mem), which
// badger itself refuses to open; the store must open with its data.
func TestOpenAfterKillDuringMemtableCreation(t *testing.T) {
	dir := t.TempDir()
	s, err := badger.Open(dir, engines.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b engines.Batch
	b.Set(engines.Main, []byte("k"), []byte("v"))
	if err := s.Apply(&b, engines.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "00042.mem"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = badger.Open(dir, engines.Options{})
	if err != nil {
		t.Fatalf("open after a torn memtable creation: %v", err)
	}
	defer s.Close()
	if v, ok, err := s.Get(engines.Main, []byte("k")); err != nil || !ok || string(v) != "v" {
		t.Fatalf("get after reopen: %q %v %v", v, ok, err)
	}
}
