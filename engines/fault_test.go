package engines

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sealedStore writes a small store layout in a new directory, seals it
// (checksumming all but *.sst) and returns the directory.
func sealedStore(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s")
	if _, err := ClaimDir(dir, "test"); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"data/000001.sst": "table bytes",
		"data/000002.log": "log bytes",
		"LIVE":            "data",
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := Seal(dir, SealBySuffix(".sst")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSeal(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(dir string) error
		corrupt bool   // CheckIntegrity must fail with ErrCorrupt
		names   string // ... naming this file
	}{
		{name: "untouched"},
		{name: "seal removed (a crash)", damage: func(dir string) error { return os.Remove(filepath.Join(dir, SealFile)) }},
		{name: "new file", damage: func(dir string) error { return os.WriteFile(filepath.Join(dir, "data", "new"), nil, 0o644) }},
		{name: "file removed", damage: func(dir string) error { return os.Remove(filepath.Join(dir, "LIVE")) }, corrupt: true, names: "LIVE"},
		{name: "log flipped", damage: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "data", "000002.log"), []byte("LOG bytes"), 0o644)
		}, corrupt: true, names: "000002.log"},
		{name: "table cut short", damage: func(dir string) error { return os.Truncate(filepath.Join(dir, "data", "000001.sst"), 3) }, corrupt: true, names: "000001.sst"},
		// Tables are checked by size only: their engine checksums them.
		{name: "table flipped, same size", damage: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "data", "000001.sst"), []byte("TABLE bytes"), 0o644)
		}},
		{name: "seal damaged", damage: func(dir string) error {
			path := filepath.Join(dir, SealFile)
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			data[len(sealHeader)+2] ^= 1
			return os.WriteFile(path, data, 0o644)
		}, corrupt: true, names: SealFile},
		{name: "seal cut short", damage: func(dir string) error { return os.Truncate(filepath.Join(dir, SealFile), 20) }, corrupt: true, names: SealFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := sealedStore(t)
			if tc.damage != nil {
				if err := tc.damage(dir); err != nil {
					t.Fatal(err)
				}
			}
			sealed, err := CheckIntegrity(dir)
			if !tc.corrupt {
				if want := tc.damage == nil || !strings.Contains(tc.name, "removed (a crash)"); sealed != want {
					t.Fatalf("sealed = %t, want %t", sealed, want)
				}
				if err != nil {
					t.Fatalf("CheckIntegrity: %v", err)
				}
				if _, err := os.Stat(filepath.Join(dir, SealFile)); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("the seal stays after a successful check: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("CheckIntegrity = %v, want ErrCorrupt naming %s", err, tc.names)
			}
			// Refused stores keep their seal: the next attempt refuses too.
			if _, err2 := CheckIntegrity(dir); !errors.Is(err2, ErrCorrupt) {
				t.Fatalf("second CheckIntegrity = %v, want ErrCorrupt again", err2)
			}
		})
	}
}

func TestMarkDamaged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	if _, err := ClaimDir(dir, "test"); err != nil {
		t.Fatal(err)
	}
	if sealed, err := CheckIntegrity(dir); err != nil || sealed {
		t.Fatalf("new store: sealed %t, %v", sealed, err)
	}
	if err := MarkDamaged(dir, errors.New("block 7 of 000009.sst: checksum mismatch\nmore")); err != nil {
		t.Fatal(err)
	}
	_, err := CheckIntegrity(dir)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "000009.sst: checksum mismatch more") {
		t.Fatalf("CheckIntegrity after MarkDamaged = %v", err)
	}
	// The store still belongs to its engine, so it can be removed.
	if err := RemoveStoreDir(dir, "test"); err != nil {
		t.Fatal(err)
	}
}

func TestDiskError(t *testing.T) {
	for _, tc := range []struct {
		err       error
		full, eio bool
	}{
		{err: &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, full: true},
		{err: fmt.Errorf("wrapped: %w", syscall.EDQUOT), full: true},
		{err: &fs.PathError{Op: "write", Path: "x", Err: syscall.EIO}, eio: true},
		{err: errors.New("other")},
	} {
		got := DiskError(tc.err)
		if errors.Is(got, ErrDiskFull) != tc.full || !errors.Is(got, tc.err) {
			t.Errorf("DiskError(%v) = %v: ErrDiskFull %t, want %t", tc.err, got, errors.Is(got, ErrDiskFull), tc.full)
		}
		if Transient(got) != (tc.full || tc.eio) {
			t.Errorf("Transient(%v) = %t", got, Transient(got))
		}
	}
	if DiskError(nil) != nil {
		t.Error("DiskError(nil) != nil")
	}
	if Transient(fmt.Errorf("x: %w", ErrCorrupt)) {
		t.Error("corruption taken for transient")
	}
}

func TestFailureRecover(t *testing.T) {
	f := Failure{Logger: slog.New(slog.DiscardHandler)}
	call := func(p any) (err error) {
		defer f.Recover("eng", "/s", "apply", &err)
		if err := f.Err(); err != nil {
			return err
		}
		if p != nil {
			panic(p)
		}
		return nil
	}
	if err := call(nil); err != nil {
		t.Fatal(err)
	}
	err := call(fmt.Errorf("rotate WAL: %w", syscall.ENOSPC))
	for _, want := range []error{ErrFailed, ErrDiskFull, syscall.ENOSPC} {
		if !errors.Is(err, want) {
			t.Errorf("recovered error %v does not wrap %v", err, want)
		}
	}
	if !strings.Contains(err.Error(), `eng store "/s": apply`) {
		t.Errorf("recovered error %q does not name the engine, store and operation", err)
	}
	// Later calls return the first failure without running.
	if err2 := call("second panic"); err2 != err {
		t.Fatalf("after a failure: %v, want the first one %v", err2, err)
	}
}

func TestSpaceGuard(t *testing.T) {
	free, calls := int64(100<<20), 0
	g := NewSpaceGuard("eng", "/s", 10<<20, nil)
	g.statfs = func(string) (int64, error) { calls++; return free, nil }

	if err := g.Admit(1 << 20); err != nil {
		t.Fatal(err)
	}
	// Small writes well inside the margin are admitted from the last
	// reading.
	for range 10 {
		if err := g.Admit(1 << 10); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Fatalf("%d statfs calls for writes far from the reserve, want 1", calls)
	}
	// A write that could use a quarter of the margin reads again, and is
	// refused when it would dip into the reserve.
	free = 15 << 20
	err := g.Admit(30 << 20)
	if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), `eng store "/s"`) {
		t.Fatalf("Admit past the reserve = %v, want ErrDiskFull and ENOSPC naming the store", err)
	}
	if calls != 2 {
		t.Fatalf("%d statfs calls, want 2", calls)
	}
	// Writes near the reserve read every time.
	if err := g.Admit(2 << 20); err != nil {
		t.Fatal(err)
	}
	if err := g.Admit(2 << 20); err != nil {
		t.Fatal(err)
	}
	if calls != 4 {
		t.Fatalf("%d statfs calls near the reserve, want 4", calls)
	}
	// A reading is trusted for a while only: space others take shows.
	free = 100 << 20
	if err := g.Admit(0); err != nil {
		t.Fatal(err)
	}
	free = 1 << 20
	g.statAt = time.Now().Add(-guardRecheck)
	if err := g.Admit(0); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Admit after the disk filled meanwhile = %v, want ErrDiskFull", err)
	}
	// A raised reserve applies at once.
	free = 50 << 20
	g.SetReserve(60 << 20)
	if err := g.Admit(0); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Admit under a raised reserve = %v, want ErrDiskFull", err)
	}
}

func TestFreeBytes(t *testing.T) {
	n, err := FreeBytes(t.TempDir())
	if err != nil || n <= 0 {
		t.Fatalf("FreeBytes = %d, %v", n, err)
	}
	if _, err := FreeBytes(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("FreeBytes of a missing directory: %v", err)
	}
}

// TestDiskSpacePool: stores pooled on one filesystem keep the sum of their
// reserves free; a released store's reserve leaves the pool.
func TestDiskSpacePool(t *testing.T) {
	var pool DiskSpace
	dir := t.TempDir()
	free := int64(25 << 20)
	statfs := func(string) (int64, error) { return free, nil }
	a := NewSpaceGuard("eng", dir, 10<<20, &pool)
	b := NewSpaceGuard("eng", dir, 10<<20, &pool)
	alone := NewSpaceGuard("eng", dir, 10<<20, nil)
	for _, g := range []*SpaceGuard{a, b, alone} {
		g.statfs = statfs
	}
	if err := alone.Admit(1 << 20); err != nil {
		t.Fatalf("an unpooled store with 25 MiB free and a 10 MiB reserve: %v", err)
	}
	err := a.Admit(6 << 20)
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "for the stores beside it") {
		t.Fatalf("a pooled store past the pool's 20 MiB: %v, want ErrDiskFull explaining the pool", err)
	}
	if err := a.Admit(4 << 20); err != nil {
		t.Fatalf("a pooled store within the pool's reserve: %v", err)
	}
	b.Release()
	a.statAt = time.Time{}
	if err := a.Admit(6 << 20); err != nil {
		t.Fatalf("after the other store left the pool: %v", err)
	}
}

func TestJoinStoreErrors(t *testing.T) {
	full := func(s string) error { return fmt.Errorf("store %s: %w", s, ErrDiskFull) }
	other := errors.New("store d: checksum mismatch in the meta page")
	err := JoinStoreErrors([]error{full("a"), nil, full("b"), other, full("c")}, []string{"a", "x", "b", "d", "c"}, "slices")
	want := "store a: disk full (the same in 2 more slices: b, c); store d: checksum mismatch in the meta page"
	if err == nil || !strings.HasPrefix(err.Error(), "store a: ") || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "(the same in 2 more slices: b, c); store d:") {
		t.Fatalf("got %q, want one line like %q", err, want)
	}
	if !errors.Is(err, ErrDiskFull) || !errors.Is(err, other) {
		t.Fatal("the joined error does not wrap what it reports")
	}
	if JoinStoreErrors([]error{nil, nil}, []string{"a", "b"}, "slices") != nil {
		t.Fatal("no failure joined into an error")
	}
}
