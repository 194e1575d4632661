package pebble

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"

	"github.com/idxbench/idxbench/engines"
)

// Name is the name the adapter registers under.
const Name = "pebble"

func init() {
	engines.Register(engines.Engine{
		Name: Name,
		Doc:  "cockroachdb/pebble LSM; recovery points are flushed checkpoints (hard-linked sstables), rollback re-links one and reopens",
		Real: true,
		Open: func(dir string, opts engines.Options) (engines.Store, error) { return Open(dir, opts) },
		Describe: func(opts engines.Options) string {
			s, err := newSettings(opts)
			if err != nil {
				return "invalid: " + err.Error()
			}
			return s.String()
		},
	})
}

// Layout of a store directory. Everything in it was created by the adapter;
// engines.ClaimDir's marker file says so.
const (
	liveFile       = "LIVE"        // names the live database's directory; absent means firstLive
	firstLive      = "data"        // the live database of a store never rolled back
	livePrefix     = "data"        // every live database directory's name starts so: data, data-000001, …
	checkpointsDir = "checkpoints" // one pebble checkpoint per recovery point
	// rpRecordFile is written last into a checkpoint: proof it completed,
	// its meta, and the size and CRC-32C of its files (sstables and blob
	// files: size only), checked before a rollback clones it
	// (engines.RecordFiles). Checkpoints of earlier versions have
	// rpMarkerFile instead, holding only the meta.
	rpRecordFile = "IDXBENCH-RP2"
	rpMarkerFile = "IDXBENCH-RP"
	idDigits     = 20 // checkpoint directory names are zero-padded ids, so they sort
)

// Store is a pebble database holding the three keyspaces of one index slice,
// each under a one-byte key prefix.
//
// Apply is one pebble batch. A view is a pebble snapshot. A recovery point is
// a flush followed by a pebble checkpoint (sstables hard-linked, WAL and
// MANIFEST copied) in checkpoints/<id>, completed by a record holding the
// meta and the size and checksum of the checkpoint's files. Creating one costs a memtable flush plus a directory of links;
// keeping one pins the sstables it links (space, not time). Rolling back
// builds a new database directory from the checkpoint (links for sstables,
// copies for the rest, so the checkpoint is never opened and stays
// reusable), makes it live and opens it: O(number of files), not O(data).
type Store struct {
	dir string
	set settings
	f   *faults // space guard, failure, pebble's listener (faults.go)

	// mu guards db against a concurrent rollback or close: readers and Apply
	// hold it shared, RollbackTo and Close exclusively.
	mu     sync.RWMutex
	db     *pebbledb.DB
	live   string // the directory db lives in, relative to dir
	closed bool

	// retiring counts databases a rollback replaced that are still closing
	// in the background; retireErr collects what their closing reported.
	retiring  sync.WaitGroup
	retireMu  sync.Mutex
	retireErr error

	// rpMu serialises recovery-point bookkeeping.
	rpMu   sync.Mutex
	points []engines.RecoveryPoint // retained, oldest first

	// writtenBase is what earlier incarnations of db (before a rollback's
	// reopen) wrote, so EngineBytesWritten keeps counting since Open.
	writtenBase int64
}

var _ engines.Store = (*Store)(nil)

// Open opens or creates the pebble store in dir. It refuses a directory that
// holds anything but a pebble store this adapter created (ErrForeignDir), and
// reports a store it cannot read as ErrCorrupt, naming the path.
func Open(dir string, opts engines.Options) (*Store, error) {
	set, err := newSettings(opts)
	if err != nil {
		return nil, err
	}
	return open(dir, set)
}

func open(dir string, set settings) (*Store, error) {
	created, err := engines.ClaimDir(dir, Name)
	if err != nil {
		return nil, fmt.Errorf("open pebble store %q: %w", dir, err)
	}
	if _, err := engines.CheckIntegrity(dir); err != nil {
		return nil, fmt.Errorf("open pebble store: %w", err)
	}
	s := &Store{dir: dir, set: set, live: firstLive, f: newFaults(dir, set.diskReserveBytes, set.diskSpace, set.logger)}
	s.f.fail.Logger = set.logger
	s.f.holdBallast()
	if err := s.open(created); err != nil {
		s.f.guard.Release()
		return nil, err
	}
	return s, nil
}

func (s *Store) open(created bool) error {
	if !created {
		if err := s.settleLive(); err != nil {
			return fmt.Errorf("open pebble store %q: %w", s.dir, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(s.dir, checkpointsDir), 0o755); err != nil {
		return fmt.Errorf("open pebble store %q: %w", s.dir, engines.DiskError(err))
	}
	if err := s.loadRecoveryPoints(); err != nil {
		return fmt.Errorf("open pebble store %q: %w", s.dir, err)
	}
	db, err := s.openDB(!created)
	if err != nil {
		return err
	}
	s.db = db
	return nil
}

// openDB opens the live database. mustExist is set for a store that was
// created before: a missing database there means the store lost its files.
func (s *Store) openDB(mustExist bool) (db *pebbledb.DB, err error) {
	path := filepath.Join(s.dir, s.live)
	defer s.f.fail.Recover(Name, s.dir, "open", &err)
	o := s.set.pebbleOptions(s.f, path)
	o.ErrorIfNotExists = mustExist
	db, err = pebbledb.Open(path, o)
	if err == nil {
		return db, nil
	}
	if mustExist && !environmental(err) && !engines.Transient(err) {
		// The store existed, so a database pebble cannot read (missing or
		// undecodable MANIFEST, CURRENT or OPTIONS, a corrupt WAL) is a
		// corrupt store. Nothing is removed.
		return nil, fmt.Errorf("open pebble store %q: %w: %w", path, engines.ErrCorrupt, err)
	}
	return nil, fmt.Errorf("open pebble store %q: %w", path, engines.DiskError(err))
}

// settleLive reads which directory holds the live database and removes
// the other database directories: a rollback's new database that a crash
// stopped before it became live, or an old one a crash stopped before it
// was removed.
func (s *Store) settleLive() error {
	name, err := os.ReadFile(filepath.Join(s.dir, liveFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case !strings.HasPrefix(string(name), livePrefix) || strings.ContainsAny(string(name), "/\\") || len(name) > 64:
		return fmt.Errorf("%w: %s names %q", engines.ErrCorrupt, liveFile, name)
	default:
		s.live = string(name)
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), livePrefix) && e.Name() != s.live {
			if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// nextLive names the directory the next rollback builds its database in.
func nextLive(live string) string {
	gen := uint64(0)
	if n, ok := strings.CutPrefix(live, livePrefix+"-"); ok {
		gen, _ = strconv.ParseUint(n, 10, 64)
	}
	return fmt.Sprintf("%s-%06d", livePrefix, gen+1)
}

// environmental reports whether an open error comes from the environment
// (permissions, a full disk, another open of the same store holding its
// lock) rather than from the store's contents.
func environmental(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOSPC) ||
		errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EROFS) ||
		strings.Contains(err.Error(), "lock held by current process")
}

// Apply implements engines.Store.
func (s *Store) Apply(b *engines.Batch, d engines.Durability) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.f.fail.Recover(Name, s.dir, "apply", &err)
	if s.closed {
		return engines.ErrClosed
	}
	if err := s.f.check(); err != nil {
		return err
	}
	// What the batch adds to the WAL: keys, values and a few bytes of
	// framing per operation.
	if err := s.f.admit(int64(b.Bytes()) + 16*int64(b.Len()) + 64); err != nil {
		return fmt.Errorf("pebble apply batch of %d ops: %w", b.Len(), err)
	}
	pb := s.db.NewBatch()
	defer pb.Close()
	for i := range b.Len() {
		op := b.Op(i)
		var dop *pebbledb.DeferredBatchOp
		if op.Kind == engines.OpSet {
			dop = pb.SetDeferred(len(op.Key)+1, len(op.Value))
			copy(dop.Value, op.Value)
		} else {
			dop = pb.DeleteDeferred(len(op.Key) + 1)
		}
		dop.Key[0] = byte(op.Keyspace)
		copy(dop.Key[1:], op.Key)
		// Finish only indexes the op in an indexed batch; this one is not.
		if err := dop.Finish(); err != nil {
			return fmt.Errorf("pebble apply batch of %d ops: %w", b.Len(), err)
		}
	}
	wo := pebbledb.NoSync
	if d == engines.Sync {
		wo = pebbledb.Sync
	}
	if err := pb.Commit(wo); err != nil {
		return fmt.Errorf("pebble apply batch of %d ops in %q: %w", b.Len(), s.dir, s.f.engineErr(err))
	}
	return nil
}

// Get implements engines.Store.
func (s *Store) Get(ks engines.Keyspace, key []byte) (_ []byte, _ bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.f.fail.Recover(Name, s.dir, "get", &err)
	if s.closed {
		return nil, false, engines.ErrClosed
	}
	if err := s.f.check(); err != nil {
		return nil, false, err
	}
	return get(s.f, s.db, ks, key)
}

// getter is what pebble's DB and Snapshot share for point reads.
type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

func get(f *faults, r getter, ks engines.Keyspace, key []byte) ([]byte, bool, error) {
	var buf [64]byte
	pk := append(append(buf[:0], byte(ks)), key...)
	v, closer, err := r.Get(pk)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pebble store %q: get %s key %q: %w", f.dir, ks, key, f.engineErr(err))
	}
	out := bytes.Clone(v)
	if out == nil {
		out = []byte{}
	}
	return out, true, closer.Close()
}

// NewView implements engines.Store.
func (s *Store) NewView() (_ engines.View, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.f.fail.Recover(Name, s.dir, "new view", &err)
	if s.closed {
		return nil, engines.ErrClosed
	}
	if err := s.f.check(); err != nil {
		return nil, err
	}
	return &view{f: s.f, snap: s.db.NewSnapshot()}, nil
}

type view struct {
	f      *faults
	snap   *pebbledb.Snapshot
	closed bool
}

func (v *view) Get(ks engines.Keyspace, key []byte) (_ []byte, _ bool, err error) {
	if v.closed {
		return nil, false, engines.ErrClosed
	}
	defer v.f.fail.Recover(Name, v.f.dir, "view get", &err)
	return get(v.f, v.snap, ks, key)
}

func (v *view) NewIter(ks engines.Keyspace, lower, upper []byte) (engines.Iterator, error) {
	if v.closed {
		return nil, engines.ErrClosed
	}
	opts := &pebbledb.IterOptions{
		LowerBound: append([]byte{byte(ks)}, lower...),
	}
	if upper != nil {
		opts.UpperBound = append([]byte{byte(ks)}, upper...)
	} else {
		opts.UpperBound = []byte{byte(ks) + 1}
	}
	if bytes.Compare(opts.UpperBound, opts.LowerBound) < 0 {
		// An empty range. Pebble wants lower ≤ upper: clamping a seek key
		// to inverted bounds would leave it below the lower one.
		opts.UpperBound = opts.LowerBound
	}
	it, err := v.snap.NewIter(opts)
	if err != nil {
		return nil, fmt.Errorf("pebble store %q: iterator over %s: %w", v.f.dir, ks, v.f.engineErr(err))
	}
	return &iter{f: v.f, it: it, ks: ks}, nil
}

func (v *view) Close() error {
	if v.closed {
		return engines.ErrClosed
	}
	v.closed = true
	return v.snap.Close()
}

// iter strips the keyspace prefix from pebble's keys and adds it to seeks.
// Pebble clamps seek keys to the bounds itself.
type iter struct {
	f   *faults
	it  *pebbledb.Iterator
	ks  engines.Keyspace
	buf []byte
}

func (i *iter) First() bool { return i.it.First() }

func (i *iter) SeekGE(key []byte) bool {
	i.buf = append(append(i.buf[:0], byte(i.ks)), key...)
	return i.it.SeekGE(i.buf)
}
func (i *iter) Next() bool    { return i.it.Next() }
func (i *iter) Valid() bool   { return i.it.Valid() }
func (i *iter) Key() []byte   { return i.it.Key()[1:] }
func (i *iter) Value() []byte { return i.it.Value() }
func (i *iter) Err() error    { return i.err(i.it.Error()) }
func (i *iter) Close() error  { return i.err(i.it.Close()) }

// err names the store and classifies what pebble's iterator reports (a
// block whose checksum failed is corruption).
func (i *iter) err(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("pebble store %q: iterate %s: %w", i.f.dir, i.ks, i.f.engineErr(err))
}

// CreateRecoveryPoint implements engines.Store: flush, checkpoint with the
// WAL flushed, then the record holding meta, written atomically last.
func (s *Store) CreateRecoveryPoint(id uint64, meta []byte) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.f.fail.Recover(Name, s.dir, "create recovery point", &err)
	if s.closed {
		return engines.ErrClosed
	}
	if err := s.f.check(); err != nil {
		return err
	}
	s.rpMu.Lock()
	defer s.rpMu.Unlock()
	if n := len(s.points); n > 0 && id <= s.points[n-1].ID {
		return fmt.Errorf("pebble recovery point %d in %q: ids must increase (newest is %d)", id, s.dir, s.points[n-1].ID)
	}
	path := s.checkpointPath(id)
	// A directory left by a creation that crashed before its marker is ours
	// to remove; Checkpoint wants a fresh one.
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("pebble recovery point %d: %w", id, err)
	}
	// The flush writes up to a memtable of sstables; the checkpoint's
	// copies (WAL, MANIFEST) ask the guard as they go.
	if err := s.f.admit(s.set.memtableBytes); err != nil {
		return fmt.Errorf("pebble recovery point %d: %w", id, err)
	}
	if err := s.flush(); err != nil {
		return fmt.Errorf("pebble recovery point %d: flush %q: %w", id, s.dir, err)
	}
	if err := s.db.Checkpoint(path, pebbledb.WithFlushedWAL()); err != nil {
		return errors.Join(fmt.Errorf("pebble recovery point %d: checkpoint %q: %w", id, path, s.f.engineErr(err)),
			os.RemoveAll(path))
	}
	rec, err := engines.RecordFiles(path, engines.SealBySuffix(".sst", ".blob"), meta)
	if err != nil {
		return errors.Join(fmt.Errorf("pebble recovery point %d: %w", id, engines.DiskError(err)), os.RemoveAll(path))
	}
	if err := engines.WriteFileAtomic(filepath.Join(path, rpRecordFile), rec); err != nil {
		return errors.Join(fmt.Errorf("pebble recovery point %d: %w", id, engines.DiskError(err)), os.RemoveAll(path))
	}
	s.points = append(s.points, engines.RecoveryPoint{ID: id, Meta: bytes.Clone(meta)})
	return nil
}

// flush flushes the memtable and waits for it, like DB.Flush, but gives up
// when a background error reports a full disk meanwhile: pebble retries a
// failed flush for as long as it fails, so DB.Flush would wait for as long
// as the disk stays full.
func (s *Store) flush() error {
	full := s.f.diskFullWatch()
	done, err := s.db.AsyncFlush()
	if err != nil {
		return s.f.engineErr(err)
	}
	select {
	case <-done:
		return nil
	case <-full:
		return fmt.Errorf("the flush failed for lack of space (pebble retries it in the background): %w", s.f.lastDiskFull())
	}
}

// readRecoveryPoint returns the meta of the checkpoint in path: its
// record's, or an older checkpoint's marker's. A damaged record is an
// error wrapping engines.ErrCorrupt; neither file an error wrapping
// fs.ErrNotExist (the checkpoint did not complete).
func readRecoveryPoint(path string) ([]byte, error) {
	file := filepath.Join(path, rpRecordFile)
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return os.ReadFile(filepath.Join(path, rpMarkerFile))
	}
	if err != nil {
		return nil, err
	}
	meta, err := engines.ReadRecord(data)
	if err != nil {
		return nil, fmt.Errorf("recovery point record %q: %w", file, err)
	}
	return meta, nil
}

// verifyCheckpoint checks the checkpoint of recovery point id against its
// record (older checkpoints have none).
func (s *Store) verifyCheckpoint(id uint64) error {
	path := s.checkpointPath(id)
	data, err := os.ReadFile(filepath.Join(path, rpRecordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return engines.VerifyRecord(path, data, fmt.Sprintf("recovery point %d's record", id))
}

func (s *Store) checkpointPath(id uint64) string {
	return filepath.Join(s.dir, checkpointsDir, fmt.Sprintf("%0*d", idDigits, id))
}

// loadRecoveryPoints lists completed checkpoints and removes the ones whose
// creation did not finish (no marker): the adapter created them and nothing
// refers to them.
func (s *Store) loadRecoveryPoints() error {
	root := filepath.Join(s.dir, checkpointsDir)
	ents, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	s.points = s.points[:0]
	for _, e := range ents {
		id, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil || !e.IsDir() || len(e.Name()) != idDigits {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			return fmt.Errorf("%w: unexpected %q in %q", engines.ErrCorrupt, e.Name(), root)
		}
		meta, err := readRecoveryPoint(filepath.Join(root, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
				return fmt.Errorf("remove incomplete recovery point %d: %w", id, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("read recovery point %d: %w", id, err)
		}
		s.points = append(s.points, engines.RecoveryPoint{ID: id, Meta: meta})
	}
	slices.SortFunc(s.points, func(a, b engines.RecoveryPoint) int { return cmp.Compare(a.ID, b.ID) })
	return nil
}

// RecoveryPoints implements engines.Store.
func (s *Store) RecoveryPoints() ([]engines.RecoveryPoint, error) {
	s.rpMu.Lock()
	defer s.rpMu.Unlock()
	out := make([]engines.RecoveryPoint, len(s.points))
	for i, p := range s.points {
		out[i] = engines.RecoveryPoint{ID: p.ID, Meta: bytes.Clone(p.Meta)}
	}
	return out, nil
}

func (s *Store) indexOf(id uint64) int {
	return slices.IndexFunc(s.points, func(p engines.RecoveryPoint) bool { return p.ID == id })
}

// DropRecoveryPoint implements engines.Store. The marker goes first, so a
// crash mid-removal leaves an incomplete checkpoint that the next Open
// removes.
func (s *Store) DropRecoveryPoint(id uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return engines.ErrClosed
	}
	if err := s.f.check(); err != nil {
		return err
	}
	s.rpMu.Lock()
	defer s.rpMu.Unlock()
	i := s.indexOf(id)
	if i < 0 {
		return fmt.Errorf("pebble drop recovery point %d in %q: %w", id, s.dir, engines.ErrNoRecoveryPoint)
	}
	if err := s.removeCheckpoint(id); err != nil {
		return err
	}
	s.points = slices.Delete(s.points, i, i+1)
	return nil
}

func (s *Store) removeCheckpoint(id uint64) error {
	path := s.checkpointPath(id)
	for _, marker := range []string{rpRecordFile, rpMarkerFile} {
		if err := os.Remove(filepath.Join(path, marker)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pebble drop recovery point %d: %w", id, err)
		}
	}
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("pebble drop recovery point %d: %w", id, err)
	}
	return nil
}

// RollbackTo implements engines.Store. Recovery points newer than id are
// dropped first (if a crash follows, the store simply has fewer of them).
// The checkpoint is then cloned into a new database directory, the LIVE
// file is switched to it atomically, and it is opened. The replaced
// database closes in the background and its directory is removed: its
// Close waits for the compactions it has running, which would otherwise be
// most of a rollback's time. Close waits for it and reports its errors
// (leaked iterators, if views were left open).
func (s *Store) RollbackTo(id uint64) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { err = engines.NoteDamage(s.dir, err) }()
	defer s.f.fail.Recover(Name, s.dir, "rollback", &err)
	if s.closed {
		return engines.ErrClosed
	}
	if err := s.f.check(); err != nil {
		return err
	}
	s.rpMu.Lock()
	defer s.rpMu.Unlock()
	i := s.indexOf(id)
	if i < 0 {
		return fmt.Errorf("pebble rollback %q to %d: %w", s.dir, id, engines.ErrNoRecoveryPoint)
	}
	for _, p := range s.points[i+1:] {
		if err := s.removeCheckpoint(p.ID); err != nil {
			return fmt.Errorf("pebble rollback %q to %d: %w", s.dir, id, err)
		}
	}
	s.points = s.points[:i+1]

	if err := s.verifyCheckpoint(id); err != nil {
		return fmt.Errorf("pebble rollback %q to %d: %w", s.dir, id, err)
	}
	next := nextLive(s.live)
	nextPath := filepath.Join(s.dir, next)
	if err := os.RemoveAll(nextPath); err != nil {
		return fmt.Errorf("pebble rollback %q to %d: %w", s.dir, id, err)
	}
	if err := cloneCheckpoint(s.checkpointPath(id), nextPath); err != nil {
		// The live database is untouched and still open.
		return errors.Join(fmt.Errorf("pebble rollback %q to %d: clone checkpoint: %w", s.dir, id, engines.DiskError(err)),
			os.RemoveAll(nextPath))
	}
	if err := engines.WriteFileAtomic(filepath.Join(s.dir, liveFile), []byte(next)); err != nil {
		return errors.Join(fmt.Errorf("pebble rollback %q to %d: %w", s.dir, id, engines.DiskError(err)),
			os.RemoveAll(nextPath))
	}
	old, oldPath := s.db, filepath.Join(s.dir, s.live)
	s.writtenBase += engineBytesWritten(old.Metrics())
	s.retire(old, oldPath)
	s.db, s.live = nil, next
	db, err := s.openDB(true)
	if err != nil {
		// The rolled-back contents are on disk and live; only opening them
		// failed. The store cannot serve anything now.
		s.closed = true
		return fmt.Errorf("pebble rollback %q to %d: %w", s.dir, id, err)
	}
	s.db = db
	return nil
}

// retire closes a replaced database in the background and removes its
// directory.
func (s *Store) retire(db *pebbledb.DB, path string) {
	s.retiring.Add(1)
	go func() {
		defer s.retiring.Done()
		err := db.Close()
		if err != nil {
			err = fmt.Errorf("close replaced pebble database %q: %w", path, err)
		}
		err = errors.Join(err, os.RemoveAll(path))
		if err != nil {
			s.retireMu.Lock()
			s.retireErr = errors.Join(s.retireErr, err)
			s.retireMu.Unlock()
		}
	}()
}

// cloneCheckpoint makes dst a database pebble may open and modify without
// touching src: immutable files (sstables, blob files) are hard-linked,
// everything pebble rewrites or appends to (MANIFEST, WAL, OPTIONS, markers)
// is copied. The adapter's marker file stays behind.
func cloneCheckpoint(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if name == rpMarkerFile || name == rpRecordFile || e.IsDir() {
			continue
		}
		from, to := filepath.Join(src, name), filepath.Join(dst, name)
		if strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob") {
			if err := os.Link(from, to); err == nil {
				continue
			}
		}
		if err := engines.CopyFileSync(from, to); err != nil {
			return err
		}
	}
	return engines.SyncDir(dst)
}

// Metrics implements engines.Store.
func (s *Store) Metrics() (_ engines.Metrics, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.f.fail.Recover(Name, s.dir, "metrics", &err)
	if s.closed {
		return engines.Metrics{}, engines.ErrClosed
	}
	if err := s.f.check(); err != nil {
		return engines.Metrics{}, err
	}
	disk, err := engines.DiskUsage(s.dir)
	if err != nil {
		return engines.Metrics{}, fmt.Errorf("pebble metrics %q: %w", s.dir, err)
	}
	// The ballast is space held, not the store's data.
	if fi, err := os.Stat(filepath.Join(s.dir, engines.BallastFile)); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			disk -= st.Blocks * 512
		}
	}
	m := s.db.Metrics()
	total := m.Total()
	return engines.Metrics{
		DiskBytes:          disk,
		EngineBytesWritten: s.writtenBase + engineBytesWritten(m),
		MemoryBytes:        m.BlockCache.Size + int64(m.MemTable.Size),
		Extra: map[string]float64{
			"write_amp":    total.WriteAmp(),
			"l0_files":     float64(m.Levels[0].TablesCount),
			"l0_sublevels": float64(m.Levels[0].Sublevels),
			"compactions":  float64(m.Compact.Count),
			"flushes":      float64(m.Flush.Count),
			"read_amp":     float64(m.ReadAmp()),
		},
	}, nil
}

// engineBytesWritten is WAL bytes plus flushed and compacted table and blob
// bytes: m.Total() folds the WAL bytes into TableBytesFlushed.
func engineBytesWritten(m *pebbledb.Metrics) int64 {
	t := m.Total()
	return int64(t.TableBytesFlushed + t.TableBytesCompacted + t.BlobBytesFlushed + t.BlobBytesCompacted)
}

// Compact implements engines.Compacter: a manual compaction of every
// keyspace, waiting for it to finish.
func (s *Store) Compact() (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.f.fail.Recover(Name, s.dir, "compact", &err)
	if s.closed {
		return engines.ErrClosed
	}
	if err := s.f.check(); err != nil {
		return err
	}
	if err := s.db.Compact(context.Background(), []byte{0}, []byte{byte(engines.NumKeyspaces)}, true); err != nil {
		return fmt.Errorf("pebble compact %q: %w", s.dir, s.f.engineErr(err))
	}
	return nil
}

// Verify implements engines.Verifier. The quick check compares every live
// sstable the manifest lists with its file (present, of the recorded
// size); the full one is pebble's CheckLevels, which reads every key of
// every level — each block loaded from disk has its checksum verified —
// and checks the keys' order and the level invariants.
func (s *Store) Verify(full bool) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.f.fail.Recover(Name, s.dir, "verify", &err)
	if s.closed {
		return engines.ErrClosed
	}
	if err := s.f.check(); err != nil {
		return err
	}
	if full {
		if err := s.db.CheckLevels(nil); err != nil {
			return fmt.Errorf("pebble verify %q: %w: %w", s.dir, engines.ErrCorrupt, err)
		}
		return nil
	}
	levels, err := s.db.SSTables()
	if err != nil {
		return fmt.Errorf("pebble verify %q: list sstables: %w", s.dir, err)
	}
	for _, level := range levels {
		for _, t := range level {
			if t.Virtual || t.BackingType != pebbledb.BackingTypeLocal {
				continue
			}
			path := filepath.Join(s.dir, s.live, fmt.Sprintf("%06d.sst", uint64(t.BackingSSTNum)))
			fi, err := os.Stat(path)
			if err != nil {
				return fmt.Errorf("pebble verify: sstable %q: %w: %w", path, engines.ErrCorrupt, err)
			}
			if uint64(fi.Size()) != t.Size {
				return fmt.Errorf("pebble verify: sstable %q is %d bytes, the manifest says %d: %w", path, fi.Size(), t.Size, engines.ErrCorrupt)
			}
		}
	}
	return nil
}

// Close implements engines.Store. A store closed cleanly is sealed
// (engines.Seal): the next Open checks every file's size, and the
// checksum of every file but the sstables and blob files (which pebble
// checksums block by block), before pebble reads any. A WAL damaged in the
// middle would otherwise pass for one a crash cut short.
func (s *Store) Close() error { return s.close(true) }

func (s *Store) close(seal bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.retiring.Wait()
		return engines.ErrClosed
	}
	s.closed = true
	var err error
	if s.db != nil {
		if err = s.closeDB(s.db); err != nil {
			err = fmt.Errorf("close pebble store %q: %w", s.dir, err)
		}
	}
	s.retiring.Wait()
	s.f.guard.Release()
	err = errors.Join(err, s.retireErr)
	if seal && err == nil && s.f.check() == nil {
		if serr := engines.Seal(s.dir, engines.SealBySuffix(".sst", ".blob")); serr != nil {
			// The store is closed and intact; only the check at the next
			// Open is lost, as after a crash.
			s.set.logger.Warn("store closed without a seal", "engine", Name, "dir", s.dir, "err", serr)
		}
	}
	return err
}

// failedCloseTimeout bounds how long Close waits for the engine of a store
// that failed: after a contained panic its locks may be held forever.
const failedCloseTimeout = 10 * time.Second

// closeDB closes db. The engine of a failed store is closed on another
// goroutine, under recover and with a time limit, so Close returns.
func (s *Store) closeDB(db *pebbledb.DB) error {
	if s.f.check() == nil {
		return s.f.engineErr(db.Close())
	}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("closing the failed engine panicked: %v", r)
			}
		}()
		done <- db.Close()
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(failedCloseTimeout):
		return fmt.Errorf("closing the failed engine did not finish within %v; it is left open", failedCloseTimeout)
	}
}

// Destroy implements engines.Store.
func (s *Store) Destroy() error {
	err := s.close(false)
	if errors.Is(err, engines.ErrClosed) {
		err = nil
	}
	return errors.Join(err, engines.RemoveStoreDir(s.dir, Name))
}
