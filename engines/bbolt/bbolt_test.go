package bbolt_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/bbolt"
	"github.com/idxbench/idxbench/engines/enginetest"
)

func open(dir string) (engines.Store, error) { return bbolt.Open(dir, engines.Options{}) }

func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Factory{Name: bbolt.Name, Open: open, Durable: true})
}

// TestConformanceHashmapFreelist runs the suite again with the other
// freelist and small pages, which split and spill far more often.
func TestConformanceHashmapFreelist(t *testing.T) {
	opts := engines.Options{Extra: map[string]string{"freelist": "hashmap", "page_size": "1024", "no_freelist_sync": "true"}}
	enginetest.Run(t, enginetest.FromRegistry(bbolt.Name, opts, true))
}

func TestCorruptFile(t *testing.T) {
	for name, data := range map[string][]byte{
		"garbage":   []byte(strings.Repeat("not a bbolt file ", 1000)),
		"truncated": nil, // filled below from a real store
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "s")
			s, err := open(dir)
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
			path := filepath.Join(dir, "data.db")
			if data == nil {
				full, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				data = full[:100]
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = open(dir)
			if !errors.Is(err, engines.ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want ErrCorrupt naming %s", err, path)
			}
			if got, _ := os.ReadFile(path); string(got) != string(data) {
				t.Fatalf("corrupt file was modified")
			}
		})
	}
}

func TestOptions(t *testing.T) {
	for _, bad := range []map[string]string{
		{"bogus": "1"},
		{"page_size": "1000"},
		{"initial_mmap_size": "lots"},
		{"no_freelist_sync": "maybe"},
		{"freelist": "tree"},
	} {
		if _, err := bbolt.Open(filepath.Join(t.TempDir(), "s"), engines.Options{Extra: bad}); err == nil {
			t.Errorf("options %v accepted", bad)
		}
	}
	got := bbolt.Describe(engines.Options{Extra: map[string]string{"initial_mmap_size": "1GiB", "freelist": "hashmap"}})
	for _, want := range []string{"initial_mmap_size=1073741824", "freelist=hashmap", "not applicable"} {
		if !strings.Contains(got, want) {
			t.Errorf("Describe = %q, missing %q", got, want)
		}
	}
}

// TestIncompleteRecoveryPoint simulates a crash in the middle of creating a
// recovery point: the copy exists but its meta file does not.
func TestIncompleteRecoveryPoint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRecoveryPoint(1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRecoveryPoint(2, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash leaves no seal: only a clean Close writes one.
	if err := os.Remove(filepath.Join(dir, engines.SealFile)); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(dir, "rp", "00000000000000000002.meta")
	if err := os.Remove(meta); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rp", "00000000000000000003.db.tmp"), []byte("partial"), 0o644); err != nil {
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
	if len(rps) != 1 || rps[0].ID != 1 || string(rps[0].Meta) != "one" {
		t.Fatalf("recovery points = %+v, want only 1", rps)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "rp"))
	if len(ents) != 2 {
		t.Fatalf("orphans not cleaned: %v", ents)
	}
}

func TestRollbackWithOpenView(t *testing.T) {
	s, err := open(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateRecoveryPoint(1, nil); err != nil {
		t.Fatal(err)
	}
	v, err := s.NewView()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RollbackTo(1); err == nil {
		t.Fatal("rollback with an open view succeeded (it would deadlock a real close)")
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.RollbackTo(1); err != nil {
		t.Fatal(err)
	}
}

// TestApplyNearMappingWithOpenView checks that a batch which could make
// bbolt remap the file while a view is open is refused, not left to block.
func TestApplyNearMappingWithOpenView(t *testing.T) {
	s, err := bbolt.Open(filepath.Join(t.TempDir(), "s"), engines.Options{Extra: map[string]string{"initial_mmap_size": "64KiB"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b engines.Batch
	for i := range 100 {
		b.Set(engines.Main, []byte(strings.Repeat("k", 100)+strconv.Itoa(i)), []byte(strings.Repeat("v", 1000)))
	}
	v, err := s.NewView()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(&b, engines.NoSync); err == nil || !strings.Contains(err.Error(), "initial_mmap_size") {
		t.Fatalf("Apply with an open view near the mapping's end: err = %v", err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(&b, engines.NoSync); err != nil {
		t.Fatalf("Apply without views: %v", err)
	}
}
