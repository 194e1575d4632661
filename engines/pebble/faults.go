package pebble

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/idxbench/idxbench/engines"
)

// How the adapter keeps pebble's failures inside the store.
//
// Pebble treats a failed write to its WAL or MANIFEST as fatal: a WAL it
// cannot rotate panics (with DB.mu released, so the unwinding unlocks an
// unlocked mutex and the runtime aborts), a failed commit or MANIFEST
// update calls Logger.Fatalf. A flush or compaction that fails is only a
// background error, retried. So the adapter keeps the disk from filling
// under the WAL and MANIFEST, and lets only the writes pebble can fail
// safely run into a full disk:
//
//   - A SpaceGuard keeps a reserve free (disk_reserve_bytes). Apply,
//     CreateRecoveryPoint and Compact ask it first and fail with
//     engines.ErrDiskFull (and syscall.ENOSPC) when the write would dip
//     into the reserve.
//   - guardFS, pebble's filesystem, asks the same guard before every write
//     of an sstable, blob file or checkpoint copy: those fail at the
//     reserve (errNoRoom), as background errors, or as the caller's error
//     for a checkpoint. WAL, MANIFEST, OPTIONS and marker files pass
//     unchecked and so always find the reserve.
//   - A flush that failed for lack of space blocks Apply until one
//     succeeds, so memtables cannot pile up into a write stall that would
//     never end; CreateRecoveryPoint's flush wait ends on that failure too.
//   - DataCorruption (an sstable block whose checksum fails) no longer calls
//     Fatalf: the store is marked damaged on disk and failed.
//   - The reserve protects against the store's own writes. Space another
//     process takes at the wrong moment would still fail a WAL or MANIFEST
//     write, so the store also holds a ballast (engines.BallastFile,
//     ballastBytes allocated) and pebble's own hook for a full disk,
//     vfs.OnDiskFull, gives it back: pebble retries the write once, it
//     succeeds, and from then on the store refuses writes (ErrDiskFull).
//   - Anything left (a Fatalf on the caller's goroutine) is recovered at the
//     adapter boundary by engines.Failure.
//
// An I/O error (EIO) on the WAL or MANIFEST is left as pebble handles it:
// a failed commit is contained (ErrFailed), but a WAL that cannot be
// rotated, or a MANIFEST update a flush or compaction cannot write, still
// ends the process. No reserve prevents an I/O error.

// faults is the store's failure state shared with pebble's event listener
// and filesystem, which outlive a rollback's reopen.
type faults struct {
	dir   string
	guard *engines.SpaceGuard
	fail  engines.Failure

	// flushFull is set while the last flush failed for lack of space.
	flushFull atomic.Pointer[error]

	// bgMu guards bgCh, closed (and replaced) at each background error
	// caused by a full disk.
	bgMu  sync.Mutex
	bgCh  chan struct{}
	bgErr error

	// ballastGone is set once the ballast was given back to a write that
	// found the disk full.
	ballastGone atomic.Bool
	log         *slog.Logger
}

// ballastBytes is the space the ballast holds: a WAL block and its
// rotation, a MANIFEST edit or snapshot, many times over.
const ballastBytes = 4 << 20

func newFaults(dir string, reserve int64, pool *engines.DiskSpace, log *slog.Logger) *faults {
	return &faults{dir: dir, guard: engines.NewSpaceGuard(Name, dir, reserve, pool), bgCh: make(chan struct{}),
		log: log.With("engine", Name, "dir", dir)}
}

// holdBallast makes sure the ballast file holds ballastBytes, allocated.
// Without room for it (or fallocate), the store goes on without one.
func (f *faults) holdBallast() {
	path := filepath.Join(f.dir, engines.BallastFile)
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err == nil {
		err = syscall.Fallocate(int(file.Fd()), 0, 0, ballastBytes)
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.Remove(path)
		f.log.Warn("no ballast: a full disk caused by others may fail a WAL write", "err", err)
	}
}

// onDiskFull is pebble's vfs.OnDiskFull callback: a write found the disk
// full (not the guard: its refusals are no ENOSPC), so the ballast goes,
// pebble retries the write, and the store refuses writes from now on.
func (f *faults) onDiskFull() {
	if f.ballastGone.Swap(true) {
		return
	}
	err := os.Remove(filepath.Join(f.dir, engines.BallastFile))
	f.log.Error("the disk filled under the store; its ballast was released for the write in progress, and it refuses writes until reopened", "err", err)
}

// check returns the error every call but Close returns once the store has
// failed.
func (f *faults) check() error { return f.fail.Err() }

// admit asks the guard for n bytes of writes that end in the WAL, and
// refuses while a flush cannot complete for lack of space.
func (f *faults) admit(n int64) error {
	if f.ballastGone.Load() {
		return fmt.Errorf("pebble store %q: the disk filled under the store (its ballast is spent); writes are refused until it is reopened: %w: %w",
			f.dir, engines.ErrDiskFull, syscall.ENOSPC)
	}
	if p := f.flushFull.Load(); p != nil {
		return diskFullError{fmt.Errorf("pebble store %q: writes refused until a memtable flush succeeds: %v", f.dir, *p)}
	}
	return f.guard.Admit(n)
}

// diskFullWatch returns a channel closed at the next background error
// caused by a full disk.
func (f *faults) diskFullWatch() <-chan struct{} {
	f.bgMu.Lock()
	defer f.bgMu.Unlock()
	return f.bgCh
}

func (f *faults) lastDiskFull() error {
	f.bgMu.Lock()
	defer f.bgMu.Unlock()
	return f.bgErr
}

// engineErr classifies an error pebble returned: corruption gains
// engines.ErrCorrupt (and marks the store damaged on disk, since pebble
// finds it lazily and a reopen would serve the rest), a full disk
// engines.ErrDiskFull.
func (f *faults) engineErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, errNoRoom) && !errors.Is(err, syscall.ENOSPC) {
		// A refusal of guardFS's, which must not look like ENOSPC to
		// pebble (see refuse), reaches the caller as one.
		return diskFullError{err}
	}
	if pebbledb.IsCorruptionError(err) && !errors.Is(err, engines.ErrCorrupt) {
		err = fmt.Errorf("%w: %w", engines.ErrCorrupt, err)
		_ = engines.MarkDamaged(f.dir, err)
	}
	return engines.DiskError(err)
}

// listener is pebble's event listener for the store.
func (f *faults) listener(s settings) *pebbledb.EventListener {
	log := s.logger.With("engine", Name, "dir", f.dir)
	return &pebbledb.EventListener{
		BackgroundError: func(err error) {
			log.Error("background error", "err", err)
			if isDiskFull(err) {
				f.bgMu.Lock()
				f.bgErr = engines.DiskError(err)
				close(f.bgCh)
				f.bgCh = make(chan struct{})
				f.bgMu.Unlock()
			}
		},
		FlushEnd: func(info pebbledb.FlushInfo) {
			if info.Err != nil && isDiskFull(info.Err) {
				err := engines.DiskError(info.Err)
				f.flushFull.Store(&err)
				return
			}
			f.flushFull.Store(nil)
		},
		DataCorruption: func(info pebbledb.DataCorruptionInfo) {
			err := fmt.Errorf("pebble store %q: %s is damaged: %w: %w: %w", f.dir, info.Path, engines.ErrCorrupt, engines.ErrFailed, info.Details)
			log.Error("data corruption", "path", info.Path, "err", info.Details)
			_ = engines.MarkDamaged(f.dir, err)
			f.fail.Set(err)
		},
	}
}

// diskFullError is err, which says the disk is full in words, made to say
// it to errors.Is too (engines.ErrDiskFull, syscall.ENOSPC) without
// repeating it in the message.
type diskFullError struct{ error }

func (e diskFullError) Unwrap() []error { return []error{e.error, engines.ErrDiskFull, syscall.ENOSPC} }

func isDiskFull(err error) bool {
	return errors.Is(engines.DiskError(err), engines.ErrDiskFull) || errors.Is(err, errNoRoom)
}

// errNoRoom marks the refusals of guardFS.
var errNoRoom = errors.New("reserve kept for the WAL and MANIFEST")

// refusalPause slows pebble's retries of a flush or compaction the guard
// refused: pebble retries a failed flush at once, which would spin a core
// for as long as the disk stays full.
const refusalPause = 100 * time.Millisecond

// guardFS is the filesystem pebble writes through. Writes pebble can fail
// safely (sstables, blob files, anything under a checkpoint directory) ask
// the space guard first; the WAL, MANIFEST, OPTIONS, CURRENT, LOCK and
// marker files of the live database pass unchecked.
type guardFS struct {
	vfs.FS
	f    *faults
	live string // the live database directory, cleaned
}

func (g guardFS) guarded(name string) bool {
	if filepath.Clean(filepath.Dir(name)) != g.live {
		return true // a checkpoint being written
	}
	base := filepath.Base(name)
	switch {
	case strings.HasSuffix(base, ".log"), strings.HasPrefix(base, "MANIFEST-"), strings.HasPrefix(base, "OPTIONS-"),
		strings.HasPrefix(base, "marker."), base == "CURRENT", base == "LOCK", strings.HasSuffix(base, ".dbtmp"):
		return false
	}
	return true
}

func (g guardFS) refuse(name string, n int64) error {
	err := g.f.guard.Admit(n)
	if err == nil && g.f.ballastGone.Load() {
		err = errors.New("the ballast is spent")
	}
	if err == nil {
		return nil
	}
	if filepath.Clean(filepath.Dir(name)) == g.live {
		time.Sleep(refusalPause)
	}
	// Not wrapping ENOSPC: vfs.OnDiskFull would take the refusal for a
	// full disk and spend the ballast.
	return fmt.Errorf("write %q: %w (%v)", name, errNoRoom, err)
}

func (g guardFS) wrap(name string, file vfs.File, err error) (vfs.File, error) {
	if err != nil || !g.guarded(name) {
		return file, err
	}
	return &guardFile{File: file, g: g, name: name}, nil
}

func (g guardFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if g.guarded(name) {
		if err := g.refuse(name, 0); err != nil {
			return nil, err
		}
	}
	file, err := g.FS.Create(name, category)
	return g.wrap(name, file, err)
}

func (g guardFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	file, err := g.FS.OpenReadWrite(name, category, opts...)
	return g.wrap(name, file, err)
}

func (g guardFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := g.FS.ReuseForWrite(oldname, newname, category)
	return g.wrap(newname, file, err)
}

// guardFile asks the guard before each write.
type guardFile struct {
	vfs.File
	g    guardFS
	name string
}

func (f *guardFile) Write(p []byte) (int, error) {
	if err := f.g.refuse(f.name, int64(len(p))); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *guardFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.g.refuse(f.name, int64(len(p))); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *guardFile) Preallocate(off, n int64) error {
	if err := f.g.refuse(f.name, n); err != nil {
		return err
	}
	return f.File.Preallocate(off, n)
}
