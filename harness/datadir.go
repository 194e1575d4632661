package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ownerMarker marks a directory idxbench created (or was given empty and
// claimed). The harness only ever deletes directories that carry it.
const ownerMarker = ".idxbench-owned"

// claimDataDir makes dir usable for cell data: it creates it when missing,
// claims it when empty, accepts it when an earlier run claimed it, and
// refuses anything else: a file, a directory holding files idxbench did not
// put there, or a directory it cannot write. created says whether dir itself
// was made here (and so may be removed at the end).
func claimDataDir(dir string) (created bool, err error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, fmt.Errorf("data dir %s: %w", dir, err)
		}
		created = true
	case err != nil:
		return false, fmt.Errorf("data dir %s: %w", dir, err)
	case !fi.IsDir():
		return false, fmt.Errorf("data dir %s is a file, not a directory", dir)
	default:
		ents, err := os.ReadDir(dir)
		if err != nil {
			return false, fmt.Errorf("data dir %s: %w", dir, err)
		}
		if len(ents) > 0 && !isOwned(dir) {
			return false, fmt.Errorf("data dir %s is not empty and was not created by idxbench; give an empty or new directory", dir)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ownerMarker), []byte("created by idxbench\n"), 0o644); err != nil {
		if created {
			os.Remove(dir)
		}
		return false, fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	return created, nil
}

func isOwned(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ownerMarker))
	return err == nil
}

// makeOwnedDir creates a fresh subdirectory of parent, marked as ours.
func makeOwnedDir(parent, pattern string) (string, error) {
	dir, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerMarker), []byte("created by idxbench\n"), 0o644); err != nil {
		os.Remove(dir)
		return "", err
	}
	return dir, nil
}

// removeOwnedDir deletes dir and everything under it, but only when it
// carries the owner marker.
func removeOwnedDir(dir string) error {
	if !isOwned(dir) {
		return fmt.Errorf("refusing to remove %s: not created by idxbench", dir)
	}
	return os.RemoveAll(dir)
}

// lockFile marks a directory a live run is using (its pid inside).
const lockFile = ".idxbench-lock"

// lockDir takes dir for this run, atomically: a directory another live
// idxbench run holds is refused naming its pid; a lock left by a process
// that is gone is taken over. It returns the release.
func lockDir(dir, what string) (release func(), err error) {
	path := filepath.Join(dir, lockFile)
	for range 3 {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			if err := f.Close(); err != nil {
				os.Remove(path)
				return nil, fmt.Errorf("%s %s: lock: %w", what, dir, err)
			}
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%s %s: lock: %w", what, dir, err)
		}
		if pid, ok := lockedBy(dir); ok {
			return nil, fmt.Errorf("%s %s is in use by another idxbench run (pid %d)", what, dir, pid)
		}
		// Left by a run that is gone (or torn while being written): take
		// it over.
		os.Remove(path)
	}
	return nil, fmt.Errorf("%s %s: could not take its lock", what, dir)
}

// lockedBy returns the pid of a live run holding dir, if any.
func lockedBy(dir string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(dir, lockFile))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 || !processAlive(pid) {
		return 0, false
	}
	return pid, true
}

// processAlive reports whether a process with pid exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
