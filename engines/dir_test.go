package engines

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestClaimDir(t *testing.T) {
	root := t.TempDir()

	t.Run("missing", func(t *testing.T) {
		dir := filepath.Join(root, "a", "b")
		created, err := ClaimDir(dir, "pebble")
		if err != nil || !created {
			t.Fatalf("ClaimDir = %v, %v; want true, nil", created, err)
		}
		if got, err := ReadMarker(dir); err != nil || got != "pebble" {
			t.Fatalf("ReadMarker = %q, %v", got, err)
		}
		created, err = ClaimDir(dir, "pebble")
		if err != nil || created {
			t.Fatalf("second ClaimDir = %v, %v; want false, nil", created, err)
		}
	})

	t.Run("empty", func(t *testing.T) {
		dir := filepath.Join(root, "empty")
		must(t, os.Mkdir(dir, 0o755))
		created, err := ClaimDir(dir, "bbolt")
		if err != nil || !created {
			t.Fatalf("ClaimDir = %v, %v; want true, nil", created, err)
		}
	})

	t.Run("other-engine", func(t *testing.T) {
		dir := filepath.Join(root, "other")
		if _, err := ClaimDir(dir, "badger"); err != nil {
			t.Fatal(err)
		}
		must(t, os.WriteFile(filepath.Join(dir, "000001.vlog"), []byte("data"), 0o644))
		_, err := ClaimDir(dir, "pebble")
		if !errors.Is(err, ErrForeignDir) {
			t.Fatalf("err = %v, want ErrForeignDir", err)
		}
		for _, want := range []string{dir, `"badger"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "000001.vlog")); err != nil {
			t.Errorf("foreign file touched: %v", err)
		}
	})

	t.Run("non-empty-unmarked", func(t *testing.T) {
		dir := filepath.Join(root, "photos")
		must(t, os.Mkdir(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "cat.jpg"), []byte("meow"), 0o644))
		_, err := ClaimDir(dir, "memory")
		if !errors.Is(err, ErrForeignDir) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("err = %v, want ErrForeignDir naming %s", err, dir)
		}
		if _, err := os.Stat(filepath.Join(dir, MarkerFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("marker written into a foreign directory")
		}
	})

	t.Run("garbage-marker", func(t *testing.T) {
		dir := filepath.Join(root, "garbage")
		must(t, os.Mkdir(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, MarkerFile), []byte("hello\n"), 0o644))
		if _, err := ClaimDir(dir, "memory"); !errors.Is(err, ErrForeignDir) {
			t.Fatalf("err = %v, want ErrForeignDir", err)
		}
	})

	t.Run("file", func(t *testing.T) {
		path := filepath.Join(root, "file")
		must(t, os.WriteFile(path, []byte("x"), 0o644))
		_, err := ClaimDir(path, "memory")
		if !errors.Is(err, syscall.ENOTDIR) || !strings.Contains(err.Error(), path) {
			t.Fatalf("err = %v, want ENOTDIR naming %s", err, path)
		}
		_, err = ClaimDir(filepath.Join(path, "sub"), "memory")
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("err = %v, want an error naming %s", err, path)
		}
	})

	t.Run("unwritable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root can write into read-only directories")
		}
		dir := filepath.Join(root, "ro")
		must(t, os.Mkdir(dir, 0o555))
		_, err := ClaimDir(dir, "memory")
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Fatalf("err = %v, want an error naming %s", err, dir)
		}
	})

	t.Run("crash-leftover-temp-marker", func(t *testing.T) {
		dir := filepath.Join(root, "leftover")
		must(t, os.Mkdir(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, MarkerFile+".tmp123"), nil, 0o644))
		if created, err := ClaimDir(dir, "memory"); err != nil || !created {
			t.Fatalf("ClaimDir = %v, %v; want true, nil", created, err)
		}
	})
}

func TestRemoveStoreDir(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "s")
	if _, err := ClaimDir(dir, "bbolt"); err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o644))

	if err := RemoveStoreDir(dir, "pebble"); !errors.Is(err, ErrForeignDir) {
		t.Fatalf("remove with the wrong engine: err = %v, want ErrForeignDir", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Fatalf("wrong-engine remove deleted files: %v", err)
	}
	if err := RemoveStoreDir(dir, "bbolt"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dir still exists: %v", err)
	}
	if err := RemoveStoreDir(dir, "bbolt"); err != nil {
		t.Fatalf("removing a missing dir: %v", err)
	}

	unmarked := filepath.Join(root, "u")
	must(t, os.Mkdir(unmarked, 0o755))
	if err := RemoveStoreDir(unmarked, "bbolt"); !errors.Is(err, ErrForeignDir) {
		t.Fatalf("unmarked: err = %v, want ErrForeignDir", err)
	}

	// A kill inside writeMarker leaves only the marker's temp file: the
	// directory was ours and goes; with anything else beside it, it stays.
	torn := filepath.Join(root, "t")
	must(t, os.Mkdir(torn, 0o755))
	must(t, os.WriteFile(filepath.Join(torn, MarkerFile+".tmp123"), []byte("idxbench store engine=bb"), 0o600))
	must(t, os.WriteFile(filepath.Join(unmarked, MarkerFile+".tmp9"), nil, 0o600))
	must(t, os.WriteFile(filepath.Join(unmarked, "theirs"), nil, 0o600))
	if err := RemoveStoreDir(unmarked, "bbolt"); !errors.Is(err, ErrForeignDir) {
		t.Fatalf("marker temp file beside a foreign one: err = %v, want ErrForeignDir", err)
	}
	if err := RemoveStoreDir(torn, "bbolt"); err != nil {
		t.Fatalf("torn claim: %v", err)
	}
	if _, err := os.Stat(torn); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("torn claim still there: %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, data := range []string{"first", "second, longer", ""} {
		if err := WriteFileAtomic(path, []byte(data)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != data {
			t.Fatalf("read back %q, %v; want %q", got, err, data)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), nil); err == nil ||
		!strings.Contains(err.Error(), filepath.Join(dir, "missing")) {
		t.Fatalf("err = %v, want an error naming the path", err)
	}
}

func TestCopyAndLinkTree(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "src")
	must(t, os.MkdirAll(filepath.Join(src, "sub", "deep"), 0o755))
	files := map[string]string{
		"a":              "alpha",
		"sub/b":          strings.Repeat("b", 100000),
		"sub/deep/c":     "",
		"sub/deep/d.sst": "delta",
	}
	for name, data := range files {
		must(t, os.WriteFile(filepath.Join(src, name), []byte(data), 0o644))
	}

	dst := filepath.Join(root, "dst")
	if err := LinkOrCopyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || !bytes.Equal(got, []byte(data)) {
			t.Errorf("%s: got %d bytes, %v; want %d bytes", name, len(got), err, len(data))
		}
	}
	if err := LinkOrCopyTree(src, dst); !errors.Is(err, os.ErrExist) {
		t.Errorf("linking onto an existing destination: err = %v, want ErrExist", err)
	}

	// Hard links are counted once.
	srcUse, err := DiskUsage(src)
	if err != nil {
		t.Fatal(err)
	}
	bothUse, err := DiskUsage(root)
	if err != nil {
		t.Fatal(err)
	}
	if srcUse < 100000 {
		t.Errorf("DiskUsage(src) = %d, want at least the 100000-byte file", srcUse)
	}
	if bothUse > srcUse+64<<10 {
		t.Errorf("DiskUsage(root) = %d counts linked files twice (src alone %d)", bothUse, srcUse)
	}

	cp := filepath.Join(root, "copy")
	if err := CopyFileSync(filepath.Join(src, "sub", "b"), cp); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(cp); string(got) != files["sub/b"] {
		t.Errorf("CopyFileSync: got %d bytes", len(got))
	}
	if err := CopyFileSync(filepath.Join(src, "nope"), cp); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("copying a missing file: err = %v", err)
	}
	if _, err := DiskUsage(filepath.Join(root, "nope")); err == nil {
		t.Errorf("DiskUsage of a missing dir: no error")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzReadMarker checks that any marker content either names an engine that
// round-trips through ClaimDir, or is refused as foreign; never a panic.
func FuzzReadMarker(f *testing.F) {
	f.Add([]byte("idxbench store engine=pebble\n"))
	f.Add([]byte("idxbench store engine=\n"))
	f.Add([]byte("idxbench store engine=a\r\nmore"))
	f.Add([]byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, MarkerFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		name, err := ReadMarker(dir)
		if err != nil {
			if !errors.Is(err, ErrForeignDir) {
				t.Fatalf("err = %v, want ErrForeignDir", err)
			}
			return
		}
		if name == "" || strings.ContainsAny(name, "\r\n") {
			t.Fatalf("ReadMarker = %q", name)
		}
		if _, err := ClaimDir(dir, name); err != nil {
			t.Fatalf("ClaimDir(%q) on its own marker: %v", name, err)
		}
	})
}
