package engines

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DiskError adds ErrDiskFull to err when it is a full disk (ENOSPC or
// EDQUOT), so callers can test for either; other errors come back as they
// are.
func DiskError(err error) error {
	if err == nil || errors.Is(err, ErrDiskFull) {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return err
}

// Transient reports whether err comes from the environment rather than
// from the store's contents: a full disk, an I/O error, permissions, a
// read-only filesystem, a lock someone else holds. A store that fails to
// open with such an error must not be taken for damaged.
func Transient(err error) bool {
	for _, e := range []error{ErrDiskFull, syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EACCES,
		syscall.EPERM, syscall.EROFS, syscall.EAGAIN, syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Failure holds what made a store unusable: a panic its adapter recovered,
// or an error the engine treats as fatal. Once set, the adapter returns it
// from every call but Close instead of touching the engine again. The zero
// value holds nothing.
type Failure struct {
	err atomic.Pointer[error]
	// Logger receives the panic's stack. Nil: slog.Default.
	Logger *slog.Logger
}

// Err is the recorded failure, or nil.
func (f *Failure) Err() error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Set records err, which should wrap ErrFailed, unless a failure is
// already recorded; it returns the recorded one.
func (f *Failure) Set(err error) error {
	f.err.CompareAndSwap(nil, &err)
	return f.Err()
}

// Recover, deferred first thing in an adapter method, turns a panic from
// the engine into an error that wraps ErrFailed (and the panic value, when
// it is an error, so a full disk still tests as syscall.ENOSPC), names the
// engine, the store's directory and the operation, records it and stores
// it in *errp. It is the last resort: an adapter prevents the panics it can
// foresee.
func (f *Failure) Recover(engine, dir, op string, errp *error) {
	r := recover()
	if r == nil {
		return
	}
	var err error
	if e, ok := r.(error); ok {
		err = fmt.Errorf("%s store %q: %s: the engine panicked: %w: %w", engine, dir, op, ErrFailed, DiskError(e))
	} else {
		err = fmt.Errorf("%s store %q: %s: the engine panicked: %w: %v", engine, dir, op, ErrFailed, r)
	}
	l := f.Logger
	if l == nil {
		l = slog.Default()
	}
	l.Error("engine panic contained; the store refuses further calls", "engine", engine, "dir", dir, "op", op,
		"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	*errp = f.Set(err)
}

// SpaceGuard keeps a reserve of free space on a store's filesystem for the
// writes an engine cannot fail gracefully: an engine that writes through
// memory-mapped sparse files dies of SIGBUS when the filesystem cannot back
// a page, and one that treats a failed log write as fatal panics. The
// adapter asks Admit before every write it starts; Admit refuses, with an
// error wrapping ErrDiskFull and syscall.ENOSPC, a write that would leave
// less than the reserve free.
//
// A store's reserve protects against the store itself filling the disk.
// Stores sharing a filesystem fill it together: opened with the same
// DiskSpace (Options.DiskSpace), each refuses writes once the free space
// falls below the sum of their reserves. Another process can still take
// the space between two checks.
type SpaceGuard struct {
	dir     string
	engine  string
	reserve atomic.Int64
	pool    *DiskSpace
	dev     uint64 // the filesystem's device, to pool by

	mu     sync.Mutex
	free   int64     // free bytes at the last statfs
	since  int64     // bytes admitted since
	statAt time.Time // when

	// statfs returns the free bytes of dir's filesystem (a test seam).
	statfs func(dir string) (int64, error)
}

// NewSpaceGuard returns a guard keeping reserve bytes free on the
// filesystem holding dir, pooled with the other guards of pool on that
// filesystem (pool may be nil). Release it when the store closes.
func NewSpaceGuard(engine, dir string, reserve int64, pool *DiskSpace) *SpaceGuard {
	g := &SpaceGuard{dir: dir, engine: engine, statfs: FreeBytes}
	g.reserve.Store(reserve)
	var st syscall.Stat_t
	if pool != nil && syscall.Stat(dir, &st) == nil {
		g.pool, g.dev = pool, uint64(st.Dev)
		pool.add(g)
	}
	return g
}

// Release takes the guard's reserve out of its pool.
func (g *SpaceGuard) Release() {
	if g.pool != nil {
		g.pool.remove(g)
	}
}

// need is the free space the guard keeps: its own reserve, or the pool's
// on its filesystem.
func (g *SpaceGuard) need() int64 {
	if g.pool != nil {
		return g.pool.total(g.dev)
	}
	return g.reserve.Load()
}

// DiskSpace pools the free-space reserves of the stores opened with it
// (Options.DiskSpace), per filesystem, so that stores filling one disk
// together keep room for all of them. The zero value is ready to use.
type DiskSpace struct {
	mu     sync.Mutex
	guards map[*SpaceGuard]struct{}
}

func (d *DiskSpace) add(g *SpaceGuard) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.guards == nil {
		d.guards = map[*SpaceGuard]struct{}{}
	}
	d.guards[g] = struct{}{}
}

func (d *DiskSpace) remove(g *SpaceGuard) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.guards, g)
}

// total sums the reserves of the pooled guards on device dev.
func (d *DiskSpace) total(dev uint64) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for g := range d.guards {
		if g.dev == dev {
			n += g.reserve.Load()
		}
	}
	return n
}

// SetReserve changes the reserve (an engine whose needs grow with its
// size raises it as it grows).
func (g *SpaceGuard) SetReserve(n int64) { g.reserve.Store(n) }

// Reserve is the guard's own reserve (without the pool's).
func (g *SpaceGuard) Reserve() int64 { return g.reserve.Load() }

// guardRecheck bounds how long a free-space reading is trusted.
const guardRecheck = 250 * time.Millisecond

// Admit reports whether a write of about n bytes leaves the reserve free.
// It calls statfs only when the bytes admitted since the last call could
// have used a quarter of the margin above the reserve, or the reading is
// older than a quarter second, so a busy writer pays for a syscall rarely.
func (g *SpaceGuard) Admit(n int64) error {
	reserve := g.need()
	g.mu.Lock()
	defer g.mu.Unlock()
	if margin := g.free - reserve; g.since+n < margin/4 && time.Since(g.statAt) < guardRecheck {
		g.since += n
		return nil
	}
	free, err := g.statfs(g.dir)
	if err != nil {
		return fmt.Errorf("%s store %q: free space: %w", g.engine, g.dir, err)
	}
	g.free, g.since, g.statAt = free, 0, time.Now()
	if free-n < reserve {
		pooled := ""
		if own := g.reserve.Load(); own != reserve {
			pooled = fmt.Sprintf(" (%d for this store, the rest for the stores beside it)", own)
		}
		return fmt.Errorf("%s store %q: %d bytes free on its filesystem; %d more would leave less than the %d bytes kept%s for writes the engines cannot fail safely: %w: %w",
			g.engine, g.dir, free, n, reserve, pooled, ErrDiskFull, syscall.ENOSPC)
	}
	g.since = n
	return nil
}

// FreeBytes returns the space available to unprivileged writers on the
// filesystem holding dir.
func FreeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %q: %w", dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// JoinStoreErrors reports the failures of several stores (errs[i] of the
// store named names[i]; nil for none) as one error on one line: stores that
// failed for the same kind of fault (ErrDiskFull, ErrCorrupt, ErrFailed,
// ErrClosed) are reported once, with the others' names, so a disk that
// fills under eight slices says so once; failures of different kinds are
// all kept. The result wraps every error it reports.
func JoinStoreErrors(errs []error, names []string, what string) error {
	type group struct {
		first  error
		class  error
		others []string
	}
	var groups []*group
	for i, err := range errs {
		if err == nil {
			continue
		}
		class := faultClass(err)
		var g *group
		for _, h := range groups {
			if class != nil && h.class == class {
				g = h
				break
			}
		}
		if g == nil {
			groups = append(groups, &group{first: err, class: class})
			continue
		}
		g.others = append(g.others, names[i])
	}
	var out []error
	for _, g := range groups {
		if len(g.others) == 0 {
			out = append(out, g.first)
			continue
		}
		out = append(out, fmt.Errorf("%w (the same in %d more %s: %s)", g.first, len(g.others), what, strings.Join(g.others, ", ")))
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return oneLine(out)
}

// oneLine joins errors with "; " (errors.Join would put each on a line).
type oneLine []error

func (e oneLine) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e oneLine) Unwrap() []error { return e }

// faultClass is the sentinel err wraps, or nil.
func faultClass(err error) error {
	for _, c := range []error{ErrDiskFull, ErrCorrupt, ErrFailed, ErrClosed} {
		if errors.Is(err, c) {
			return c
		}
	}
	return nil
}
