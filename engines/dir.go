package engines

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"
)

// MarkerFile is the name of the file that marks a directory as an idxbench
// store and says which engine owns it. Every adapter claims its directory with
// ClaimDir before writing anything else into it, so a store directory can be
// recognised (and safely removed) without knowing the engine's file layout.
const MarkerFile = "IDXBENCH-STORE"

// markerPrefix starts the single line a marker file holds.
const markerPrefix = "idxbench store engine="

// ClaimDir makes dir an engine's store directory, creating it if missing.
//
//   - dir missing, or an empty directory: it is created, the marker naming
//     engine is written durably, and created is true.
//   - dir holds a marker naming engine: nothing is written, created is false.
//   - dir holds a marker naming another engine, or files but no marker: an
//     error wrapping ErrForeignDir that names the path (and the other engine).
//   - dir is a file: an error wrapping syscall.ENOTDIR naming the path.
//   - dir cannot be created or written: an error naming the path.
//
// ClaimDir never deletes or overwrites anything.
func ClaimDir(dir, engine string) (created bool, err error) {
	if !validEngineName(engine) {
		return false, fmt.Errorf("claim %q: invalid engine name %q", dir, engine)
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, fmt.Errorf("create store directory %q: %w", dir, err)
		}
		if err := syncParent(dir); err != nil {
			return false, fmt.Errorf("create store directory %q: %w", dir, err)
		}
		if err := writeMarker(dir, engine); err != nil {
			return false, err
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("store directory %q: %w", dir, err)
	case !fi.IsDir():
		return false, &fs.PathError{Op: "use as store directory", Path: dir, Err: syscall.ENOTDIR}
	}

	owner, err := ReadMarker(dir)
	switch {
	case err == nil && owner == engine:
		if err := checkWritable(dir); err != nil {
			return false, err
		}
		return false, nil
	case err == nil:
		return false, fmt.Errorf("store directory %q belongs to engine %q, not %q: %w", dir, owner, engine, ErrForeignDir)
	case !errors.Is(err, fs.ErrNotExist):
		return false, err
	}

	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("store directory %q: %w", dir, err)
	}
	if name := firstForeign(ents); name != "" {
		return false, fmt.Errorf("store directory %q is not empty and has no %s marker (found %q): %w",
			dir, MarkerFile, name, ErrForeignDir)
	}
	if err := writeMarker(dir, engine); err != nil {
		return false, err
	}
	return true, nil
}

// firstForeign returns the first entry that is not a marker temp file, or
// "". A marker temp file left by a crash inside writeMarker does not make a
// directory foreign: it was ours.
func firstForeign(ents []fs.DirEntry) string {
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), MarkerFile+".tmp") {
			return e.Name()
		}
	}
	return ""
}

// ReadMarker returns the engine named by dir's marker file. The error wraps
// fs.ErrNotExist when dir has no marker.
func ReadMarker(dir string) (engine string, err error) {
	path := filepath.Join(dir, MarkerFile)
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read store marker: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read store marker %q: %w", path, err)
	}
	line = strings.TrimRight(line, "\r\n")
	name, ok := strings.CutPrefix(line, markerPrefix)
	if !ok || !validEngineName(name) {
		return "", fmt.Errorf("store marker %q is not an idxbench marker (%q): %w", path, line, ErrForeignDir)
	}
	return name, nil
}

// validEngineName accepts non-empty names of printable characters without
// spaces, the names a marker line can carry unambiguously.
func validEngineName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

func writeMarker(dir, engine string) error {
	if err := WriteFileAtomic(filepath.Join(dir, MarkerFile), []byte(markerPrefix+engine+"\n")); err != nil {
		return fmt.Errorf("claim store directory %q: %w", dir, err)
	}
	return nil
}

// checkWritable fails, naming dir, when the process cannot create files in
// it, so an engine does not discover a read-only directory half-way through
// opening.
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, MarkerFile+".tmp-probe-*")
	if err != nil {
		return fmt.Errorf("store directory %q is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("store directory %q: %w", dir, err)
	}
	return nil
}

// RemoveStoreDir removes dir and everything under it, but only when its
// marker names engine, or when it holds nothing but the temp file of a
// marker a crash interrupted: a directory somebody else owns is never
// deleted. A missing dir is not an error.
func RemoveStoreDir(dir, engine string) error {
	owner, err := ReadMarker(dir)
	if errors.Is(err, fs.ErrNotExist) {
		ents, rerr := os.ReadDir(dir)
		switch {
		case errors.Is(rerr, fs.ErrNotExist):
			return nil
		case rerr == nil && len(ents) > 0 && firstForeign(ents) == "":
			// A claim interrupted while writing the marker: ours.
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("remove store directory %q: %w", dir, err)
			}
			return nil
		}
		return fmt.Errorf("remove store directory %q: it has no %s marker: %w", dir, MarkerFile, ErrForeignDir)
	}
	if err != nil {
		return fmt.Errorf("remove store directory %q: %w", dir, err)
	}
	if owner != engine {
		return fmt.Errorf("remove store directory %q: it belongs to engine %q, not %q: %w", dir, owner, engine, ErrForeignDir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove store directory %q: %w", dir, err)
	}
	return nil
}

// DiskUsage returns the space everything under dir takes, counted by
// allocated blocks (st_blocks × 512) rather than file sizes, so preallocated
// and sparse files count for what they really use. A file with several hard
// links under dir is counted once. Files that vanish during the walk (an
// engine compacting concurrently) are skipped.
func DiskUsage(dir string) (int64, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != dir {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			total += fi.Size()
			return nil
		}
		if st.Nlink > 1 && !fi.IsDir() {
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		total += st.Blocks * 512
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("disk usage of %q: %w", dir, err)
	}
	return total, nil
}

// WriteFileAtomic replaces path with data so that after a crash path holds
// either its old contents or data, never a mix: it writes a temporary file in
// the same directory, fsyncs it, renames it over path and fsyncs the
// directory.
func WriteFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".tmp*")
	if err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %q: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making the creation, removal and renaming of
// its entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	return nil
}

func syncParent(path string) error {
	return SyncDir(filepath.Dir(filepath.Clean(path)))
}

// CopyFileSync copies src to dst (created or truncated), fsyncs dst and its
// directory. dst is complete and durable when CopyFileSync returns nil; after
// a failure or a crash it may be partial, so callers copy to a temporary name
// and rename.
func CopyFileSync(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %q: %w", src, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("copy %q: %w", src, err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return fmt.Errorf("copy %q to %q: %w", src, dst, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("copy %q to %q: %w", src, dst, cerr)
		}
	}()
	// io.Copy between two *os.File uses copy_file_range on Linux, so the data
	// need not pass through user space.
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copy %q to %q: %w", src, dst, err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("sync %q: %w", dst, err)
	}
	return syncParent(dst)
}

// LinkOrCopyTree recreates the tree under src at dst (which must not exist):
// directories are created, regular files are hard-linked, or copied when
// linking fails (another filesystem, no link support). Every directory
// created is fsynced. Linked files share their data with src, so callers must
// treat both copies as immutable; engines use this for files they never
// modify in place (sstables, value logs, recovery-point snapshots).
func LinkOrCopyTree(src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("link tree %q to %q: destination exists: %w", src, dst, fs.ErrExist)
	}
	var dirs []string
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if err := os.Mkdir(target, fi.Mode().Perm()|0o700); err != nil {
				return err
			}
			dirs = append(dirs, target)
			return nil
		case d.Type().IsRegular():
			if err := os.Link(path, target); err == nil {
				return nil
			}
			return CopyFileSync(path, target)
		default:
			return fmt.Errorf("%q is neither a directory nor a regular file", path)
		}
	})
	if err != nil {
		return fmt.Errorf("link tree %q to %q: %w", src, dst, err)
	}
	// Deepest first, so each directory's entry in its parent is synced after
	// the directory's own contents.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := SyncDir(dirs[i]); err != nil {
			return fmt.Errorf("link tree %q to %q: %w", src, dst, err)
		}
	}
	return syncParent(dst)
}
