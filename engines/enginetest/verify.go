package enginetest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/idxbench/idxbench/engines"
)

// RunVerify checks an engine's engines.Verifier: a healthy store with data
// passes both the quick and the full check, before and after a reopen; and
// a byte flipped in the middle of the store's largest file is never served
// silently — either Open refuses the store or the full check reports an
// error wrapping engines.ErrCorrupt. The engine must be durable and
// implement engines.Verifier.
func RunVerify(t *testing.T, f Factory) {
	if !f.Durable {
		t.Fatal("enginetest: RunVerify needs a durable engine")
	}
	dir := t.TempDir()
	s, err := f.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := engines.AsVerifier(s)
	if !ok {
		s.Close()
		t.Fatalf("%s stores implement no engines.Verifier", f.Name)
	}
	// Enough data for several blocks, written in batches.
	for round := range 20 {
		var b engines.Batch
		for i := range 500 {
			key := fmt.Appendf(nil, "key-%02d-%05d", round, i)
			b.Set(engines.Main, key, fmt.Appendf(nil, "value %d of round %d, padded to be a value of some size", i, round))
		}
		if err := s.Apply(&b, engines.NoSync); err != nil {
			s.Close()
			t.Fatal(err)
		}
	}
	if c, ok := s.(engines.Compacter); ok {
		if err := c.Compact(); err != nil {
			s.Close()
			t.Fatal(err)
		}
	}
	for _, full := range []bool{false, true} {
		if err := v.Verify(full); err != nil {
			s.Close()
			t.Fatalf("healthy store, Verify(full=%v): %v", full, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = f.Open(dir); err != nil {
		t.Fatal(err)
	}
	v, _ = engines.AsVerifier(s)
	for _, full := range []bool{false, true} {
		if err := v.Verify(full); err != nil {
			s.Close()
			t.Fatalf("healthy store reopened, Verify(full=%v): %v", full, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	path, size := largestDataFile(t, dir)
	fault := Fault{Kind: "flip", Path: path, Flips: []int64{size / 2}}
	if err := fault.Apply(dir); err != nil {
		t.Fatal(err)
	}
	s, err = f.Open(dir)
	if err != nil {
		if !errors.Is(err, engines.ErrCorrupt) {
			t.Fatalf("after %v: Open failed without ErrCorrupt: %v", fault, err)
		}
		t.Logf("after %v: Open refused the store: %v", fault, err)
		return
	}
	defer s.Close()
	v, _ = engines.AsVerifier(s)
	if err := v.Verify(false); err != nil {
		t.Logf("after %v: the quick check found it: %v", fault, err)
	}
	err = v.Verify(true)
	if !errors.Is(err, engines.ErrCorrupt) {
		t.Fatalf("after %v: Open succeeded and the full check reported %v, want ErrCorrupt", fault, err)
	}
	t.Logf("after %v: the full check found it: %v", fault, err)
}

// largestDataFile is the largest of the engine's files under dir, relative
// to dir (idxbench's own marker and integrity files aside), a sorted table
// (.sst) when there is one: those hold the data the full checks read.
func largestDataFile(t *testing.T, dir string) (string, int64) {
	t.Helper()
	var best string
	var size int64 = -1
	bestSST := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		switch d.Name() {
		case engines.MarkerFile, engines.SealFile, engines.BallastFile, engines.DamagedFile:
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sst := filepath.Ext(path) == ".sst"
		if sst && !bestSST || sst == bestSST && fi.Size() > size {
			best, size, bestSST = path, fi.Size(), sst
		}
		return nil
	})
	if err != nil || best == "" {
		t.Fatalf("no file to damage under %s: %v", dir, err)
	}
	rel, err := filepath.Rel(dir, best)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(best); err != nil {
		t.Fatal(err)
	}
	return rel, size
}
