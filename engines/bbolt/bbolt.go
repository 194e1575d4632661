package bbolt

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/idxbench/idxbench/engines"
)

// Name is the name the engine registers under.
const Name = "bbolt"

func init() {
	engines.Register(engines.Engine{
		Name:     Name,
		Doc:      "go.etcd.io/bbolt B+tree, one bucket per keyspace; views are read transactions; recovery point = consistent file copy (O(file)), rollback = copy back + reopen (O(data))",
		Real:     true,
		Open:     func(dir string, opts engines.Options) (engines.Store, error) { return Open(dir, opts) },
		Describe: Describe,
	})
}

const (
	dataFile    = "data.db"
	rpDir       = "rp"
	lockTimeout = 200 * time.Millisecond
	// A recovery point's .meta file starts with metaMagic, then (from v2)
	// a line "crc32c=XXXXXXXX size=N meta=XXXXXXXX": the CRC-32C and size
	// of its .db copy and the CRC-32C of the caller's meta, which follows.
	// v1 files, without the line, are still read.
	metaMagicV1 = "idxbench bbolt recovery point v1\n"
	metaMagic   = "idxbench bbolt recovery point v2\n"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// bucketNames are the buckets of engines.Main, Back and Meta.
var bucketNames = [engines.NumKeyspaces][]byte{[]byte("main"), []byte("back"), []byte("meta")}

// Store is the bbolt engine's engines.Store.
type Store struct {
	dir string
	cfg config

	// wmu serialises the writer-side calls: Apply, recovery points,
	// rollback, drop, close. It also guards db replacement during rollback.
	wmu sync.Mutex
	// mu guards db against replacement while readers use it.
	mu     sync.RWMutex
	db     *bolt.DB // nil once closed
	rps    []engines.RecoveryPoint
	views  atomic.Int64
	ops    []seqOp // Apply's reusable sort buffer
	copied int64   // bytes written by recovery-point and rollback copies
	// written accumulates PageAlloc of databases closed by rollbacks, so the
	// counter runs across reopens of the file.
	written  int64
	commits  int64
	baseline bolt.Stats // db.Stats() right after the current db opened
	// mapped is a lower bound of the size bbolt has mapped; Apply refuses
	// a batch that could make bbolt remap while views are open (see
	// errRemapWithViews).
	mapped int64
	// rpSums holds the CRC-32C and size of each recovery point's copy,
	// checked when a rollback copies it back (absent for v1 points).
	rpSums map[uint64]rpSum
	// fail is set when bbolt panicked: bbolt trusts its pages, so a panic
	// means a damaged one, and the store refuses further calls.
	fail engines.Failure
}

type rpSum struct {
	crc  uint32
	size int64
}

var _ engines.Store = (*Store)(nil)

// Open opens or creates the store in dir.
func Open(dir string, opts engines.Options) (*Store, error) {
	cfg, err := parseOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("bbolt: open %q: %w", dir, err)
	}
	created, err := engines.ClaimDir(dir, Name)
	if err != nil {
		return nil, fmt.Errorf("bbolt: open: %w", err)
	}
	sealed, err := engines.CheckIntegrity(dir)
	if err != nil {
		return nil, fmt.Errorf("bbolt: open: %w", err)
	}
	s := &Store{dir: dir, cfg: cfg, rpSums: map[uint64]rpSum{}}
	if err := os.MkdirAll(s.rpPath(), 0o755); err != nil {
		return nil, fmt.Errorf("bbolt: open %q: %w", dir, engines.DiskError(err))
	}
	if s.rps, err = s.loadRecoveryPoints(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.dataPath()); !created && len(s.rps) > 0 && errors.Is(err, fs.ErrNotExist) {
		// A store with recovery points had a data file; bbolt would
		// quietly start an empty one.
		return nil, fmt.Errorf("bbolt: open %q: the store has recovery points but its data file is missing: %w", s.dataPath(), engines.ErrCorrupt)
	}
	if err := s.openDB(sealed); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) dataPath() string { return filepath.Join(s.dir, dataFile) }
func (s *Store) rpPath() string   { return filepath.Join(s.dir, rpDir) }
func (s *Store) rpFile(id uint64) string {
	return filepath.Join(s.rpPath(), fmt.Sprintf("%020d.db", id))
}
func (s *Store) rpMeta(id uint64) string {
	return filepath.Join(s.rpPath(), fmt.Sprintf("%020d.meta", id))
}

// openDB opens data.db, creating the buckets of a new file, and turns what
// bbolt reports about a damaged file into ErrCorrupt. verified says the
// file's checksum was just checked (a seal, a recovery point's copy); if
// not, checkTree walks its pages first, else checkFile reads its meta
// pages: bbolt must not map a file whose pages it cannot trust.
func (s *Store) openDB(verified bool) (err error) {
	path := s.dataPath()
	check := checkTree
	if verified {
		check = checkFile
	}
	if err := check(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	db, err := openBolt(path, s.cfg)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			db.Close()
			err = fmt.Errorf("bbolt: open %q: bbolt panicked reading it (%v): %w", path, r, engines.ErrCorrupt)
		}
	}()
	var txid int
	err = db.View(func(tx *bolt.Tx) error {
		txid = tx.ID()
		for _, name := range bucketNames {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("bucket %q: %w", name, bolterrors.ErrBucketNotFound)
			}
		}
		return nil
	})
	// Transactions 0 and 1 are the two meta pages of a new file: only
	// then may buckets be missing (a crash came before the first commit).
	if errors.Is(err, bolterrors.ErrBucketNotFound) && txid > 1 {
		err = fmt.Errorf("%w: %w", engines.ErrCorrupt, err)
	}
	if errors.Is(err, bolterrors.ErrBucketNotFound) {
		// A new file, or one a crash left before its first commit.
		err = db.Update(func(tx *bolt.Tx) error {
			for _, name := range bucketNames {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			err = db.Sync()
		}
	}
	if err != nil {
		db.Close()
		return fmt.Errorf("bbolt: open %q: %w", path, engines.DiskError(err))
	}
	var size int64
	_ = db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	s.db = db
	s.baseline = db.Stats()
	s.mapped = mappedSize(max(size, int64(s.cfg.initialMmapSize)))
	return nil
}

// mappedSize is the size bbolt maps for a file of size bytes: powers of
// two from 32 KiB to 1 GiB, then whole GiBs (bbolt's DB.mmapSize).
func mappedSize(size int64) int64 {
	for i := 15; i <= 30; i++ {
		if size <= 1<<i {
			return 1 << i
		}
	}
	const step = 1 << 30
	if r := size % step; r > 0 {
		size += step - r
	}
	return size
}

// errRemapWithViews refuses a batch that may grow the file past what bbolt
// has mapped while views are open: bbolt would then wait, inside Commit, for
// every read transaction to end, which never happens if the goroutine
// holding a view is waiting for this Apply.
var errRemapWithViews = errors.New("the file may outgrow its memory mapping while views are open (bbolt would block until they close); close views or raise initial_mmap_size")

// openBolt calls bolt.Open, recovering a panic bbolt raises on a garbage
// file. The recovery is confined to opening (meta pages, freelist); a file
// descriptor and its lock leak in that case, which is why the lock wait is
// bounded.
func openBolt(path string, cfg config) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("bbolt: open %q: bbolt panicked reading it (%v): %w", path, r, engines.ErrCorrupt)
		}
	}()
	db, err = bolt.Open(path, 0o644, cfg.boltOptions())
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrInvalidMapping):
		return nil, fmt.Errorf("bbolt: open %q: %w: %w", path, engines.ErrCorrupt, err)
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("bbolt: open %q: file is locked by another process or store: %w", path, err)
	}
	// Creating the file writes its first pages: a full disk shows here.
	return nil, fmt.Errorf("bbolt: open %q: %w", path, engines.DiskError(err))
}

// loadRecoveryPoints lists rp/, keeping points whose .meta and .db both
// exist, and removes what an interrupted create or drop left behind.
func (s *Store) loadRecoveryPoints() ([]engines.RecoveryPoint, error) {
	ents, err := os.ReadDir(s.rpPath())
	if err != nil {
		return nil, fmt.Errorf("bbolt: list recovery points in %q: %w", s.rpPath(), err)
	}
	have := map[string]bool{}
	for _, e := range ents {
		have[e.Name()] = true
	}
	var rps []engines.RecoveryPoint
	var orphans []string
	for _, e := range ents {
		name := e.Name()
		stem, ext, _ := strings.Cut(name, ".")
		id, perr := strconv.ParseUint(stem, 10, 64)
		switch {
		case perr != nil || (ext != "db" && ext != "meta"):
			// Temporary files of an interrupted create, or not ours.
			if strings.Contains(name, ".tmp") {
				orphans = append(orphans, name)
				continue
			}
			return nil, fmt.Errorf("bbolt: unexpected file %q in %q: %w", name, s.rpPath(), engines.ErrForeignDir)
		case ext == "db" && !have[stem+".meta"], ext == "meta" && !have[stem+".db"]:
			orphans = append(orphans, name)
		case ext == "meta":
			data, err := os.ReadFile(filepath.Join(s.rpPath(), name))
			if err != nil {
				return nil, fmt.Errorf("bbolt: read recovery point %d: %w", id, err)
			}
			meta, sum, err := parseRPMeta(data)
			if err != nil {
				return nil, fmt.Errorf("bbolt: recovery point file %q: %w: %w", filepath.Join(s.rpPath(), name), err, engines.ErrCorrupt)
			}
			if sum != nil {
				s.rpSums[id] = *sum
			}
			rps = append(rps, engines.RecoveryPoint{ID: id, Meta: meta})
		}
	}
	for _, name := range orphans {
		if err := os.Remove(filepath.Join(s.rpPath(), name)); err != nil {
			return nil, fmt.Errorf("bbolt: remove incomplete recovery point file: %w", err)
		}
	}
	slices.SortFunc(rps, func(a, b engines.RecoveryPoint) int { return cmpU64(a.ID, b.ID) })
	return rps, nil
}

// parseRPMeta splits a .meta file into the caller's meta and, from v2 on,
// the checksum of the recovery point's copy.
func parseRPMeta(data []byte) ([]byte, *rpSum, error) {
	if meta, ok := bytes.CutPrefix(data, []byte(metaMagicV1)); ok {
		return meta, nil, nil
	}
	rest, ok := bytes.CutPrefix(data, []byte(metaMagic))
	if !ok {
		return nil, nil, errors.New("bad header")
	}
	line, meta, ok := bytes.Cut(rest, []byte("\n"))
	var sum rpSum
	var metaCRC uint32
	if n, err := fmt.Sscanf(string(line), "crc32c=%08x size=%d meta=%08x", &sum.crc, &sum.size, &metaCRC); !ok || err != nil || n != 3 {
		return nil, nil, fmt.Errorf("bad checksum line %q", line)
	}
	if got := crc32.Checksum(meta, castagnoli); got != metaCRC {
		return nil, nil, fmt.Errorf("meta checksum %08x, was %08x", got, metaCRC)
	}
	return meta, &sum, nil
}

func formatRPMeta(meta []byte, sum rpSum) []byte {
	return append(fmt.Appendf([]byte(metaMagic), "crc32c=%08x size=%d meta=%08x\n", sum.crc, sum.size, crc32.Checksum(meta, castagnoli)), meta...)
}

// errWriter remembers the first error of w.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// contain is deferred by every method that reaches into bbolt. bbolt
// trusts its pages and panics on a damaged one (a bad page type, an
// element past the page), so a panic there means damage: it becomes an
// error wrapping engines.ErrCorrupt and engines.ErrFailed, the store is
// marked damaged on disk (the next Open refuses it rather than serving it
// again) and refuses further calls.
func (s *Store) contain(op string, errp *error) {
	r := recover()
	if r == nil {
		return
	}
	err := fmt.Errorf("bbolt: %s %q: bbolt panicked (%v), which a damaged page causes: %w: %w",
		op, s.dataPath(), r, engines.ErrCorrupt, engines.ErrFailed)
	_ = engines.MarkDamaged(s.dir, err)
	*errp = s.fail.Set(err)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Apply runs one read-write transaction with the batch's operations sorted
// by (keyspace, key), batch order kept among equal keys.
func (s *Store) Apply(b *engines.Batch, d engines.Durability) (err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	defer s.contain("apply", &err)
	s.mu.RLock()
	db := s.db
	s.mu.RUnlock()
	if db == nil {
		return fmt.Errorf("bbolt: apply to %q: %w", s.dir, engines.ErrClosed)
	}
	if err := s.fail.Err(); err != nil {
		return err
	}
	ops := s.ops[:0]
	for i := 0; i < b.Len(); i++ {
		op := b.Op(i)
		if op.Keyspace >= engines.NumKeyspaces {
			return fmt.Errorf("bbolt: batch op %d: invalid %v", i, op.Keyspace)
		}
		ops = append(ops, seqOp{Op: op, seq: i})
	}
	// Sorting by (keyspace, key, batch position) is a stable sort by
	// (keyspace, key) at pdqsort's speed.
	slices.SortFunc(ops, func(a, b seqOp) int {
		if a.Keyspace != b.Keyspace {
			return int(a.Keyspace) - int(b.Keyspace)
		}
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	s.ops = ops
	defer clear(s.ops) // do not pin the caller's batch buffer
	// Only this goroutine (holding wmu) commits, and only Commit reads
	// NoSync, so setting it here is race-free.
	db.NoSync = d == engines.NoSync
	err = db.Update(func(tx *bolt.Tx) error {
		// A file larger than the last known mapping means bbolt remapped.
		size := tx.Size()
		s.mapped = max(s.mapped, mappedSize(size))
		// Worst case every operation dirties its own leaf and branch page
		// and the freelist has none to reuse.
		if grow := int64(2*len(ops)+64) * int64(s.cfg.pageSize); s.views.Load() > 0 && size+grow >= s.mapped {
			return errRemapWithViews
		}
		var bk [engines.NumKeyspaces]*bolt.Bucket
		for i := range bk {
			bk[i] = tx.Bucket(bucketNames[i])
		}
		for _, op := range ops {
			var err error
			if op.Kind == engines.OpSet {
				v := op.Value
				if v == nil {
					v = []byte{}
				}
				err = bk[op.Keyspace].Put(op.Key, v)
			} else {
				err = bk[op.Keyspace].Delete(op.Key)
			}
			if err != nil {
				return fmt.Errorf("%v key %q: %w", op.Keyspace, op.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bbolt: apply %d ops to %q: %w", len(ops), s.dir, engines.DiskError(err))
	}
	s.commits++
	return nil
}

// seqOp is a batch operation and its position in the batch.
type seqOp struct {
	engines.Op
	seq int
}

// lookup reads key from bucket b; the value is copied out of the mmap.
func lookup(b *bolt.Bucket, key []byte) ([]byte, bool) {
	k, v := b.Cursor().Seek(key)
	if k == nil || !bytes.Equal(k, key) {
		return nil, false
	}
	return bytes.Clone(v), true
}

// Get reads key in a short read transaction.
func (s *Store) Get(ks engines.Keyspace, key []byte) (value []byte, ok bool, err error) {
	if ks >= engines.NumKeyspaces {
		return nil, false, fmt.Errorf("bbolt: get: invalid %v", ks)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.contain("get", &err)
	if s.db == nil {
		return nil, false, fmt.Errorf("bbolt: get from %q: %w", s.dir, engines.ErrClosed)
	}
	if err := s.fail.Err(); err != nil {
		return nil, false, err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		value, ok = lookup(tx.Bucket(bucketNames[ks]), key)
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("bbolt: get %v key %q from %q: %w", ks, key, s.dir, err)
	}
	return value, ok, nil
}

// NewView begins a read transaction held until the view is closed; see the
// package comment for what that pins.
func (s *Store) NewView() (_ engines.View, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.contain("new view", &err)
	if s.db == nil {
		return nil, fmt.Errorf("bbolt: new view of %q: %w", s.dir, engines.ErrClosed)
	}
	if err := s.fail.Err(); err != nil {
		return nil, err
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("bbolt: new view of %q: %w", s.dir, err)
	}
	v := &view{s: s, tx: tx}
	for i := range v.buckets {
		v.buckets[i] = tx.Bucket(bucketNames[i])
	}
	s.views.Add(1)
	return v, nil
}

// CreateRecoveryPoint writes a consistent copy of the file and then the
// meta file; see the package comment.
func (s *Store) CreateRecoveryPoint(id uint64, meta []byte) (err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	defer s.contain("recovery point", &err)
	s.mu.RLock()
	db := s.db
	s.mu.RUnlock()
	if db == nil {
		return fmt.Errorf("bbolt: recovery point %d of %q: %w", id, s.dir, engines.ErrClosed)
	}
	if err := s.fail.Err(); err != nil {
		return err
	}
	if n := len(s.rps); n > 0 && id <= s.rps[n-1].ID {
		return fmt.Errorf("bbolt: recovery point %d of %q: ids must increase (newest is %d)", id, s.dir, s.rps[n-1].ID)
	}
	final := s.rpFile(id)
	tmp := final + ".tmp"
	var sum rpSum
	err = db.View(func(tx *bolt.Tx) error {
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		h := crc32.New(castagnoli)
		// bbolt formats the writer's error with %s; keep it to return
		// (a full disk must still test as ENOSPC).
		w := &errWriter{w: f}
		n, err := tx.WriteTo(io.MultiWriter(w, h))
		if w.err != nil {
			err = w.err
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		s.copied += n
		sum = rpSum{crc: h.Sum32(), size: n}
		return err
	})
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = engines.SyncDir(s.rpPath())
	}
	if err == nil {
		err = engines.WriteFileAtomic(s.rpMeta(id), formatRPMeta(meta, sum))
	}
	if err != nil {
		os.Remove(tmp)
		os.Remove(final)
		return fmt.Errorf("bbolt: recovery point %d of %q: %w", id, s.dir, engines.DiskError(err))
	}
	s.rpSums[id] = sum
	s.rps = append(s.rps, engines.RecoveryPoint{ID: id, Meta: bytes.Clone(meta)})
	return nil
}

// RecoveryPoints lists the retained recovery points, oldest first.
func (s *Store) RecoveryPoints() ([]engines.RecoveryPoint, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed() {
		return nil, fmt.Errorf("bbolt: recovery points of %q: %w", s.dir, engines.ErrClosed)
	}
	out := make([]engines.RecoveryPoint, len(s.rps))
	for i, rp := range s.rps {
		out[i] = engines.RecoveryPoint{ID: rp.ID, Meta: bytes.Clone(rp.Meta)}
	}
	return out, nil
}

func (s *Store) closed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db == nil
}

func (s *Store) find(id uint64) (int, error) {
	i, ok := slices.BinarySearchFunc(s.rps, id, func(rp engines.RecoveryPoint, id uint64) int { return cmpU64(rp.ID, id) })
	if !ok {
		return 0, fmt.Errorf("bbolt: recovery point %d of %q: %w", id, s.dir, engines.ErrNoRecoveryPoint)
	}
	return i, nil
}

// dropLocked removes recovery point i's meta (after which it is no longer
// listed, even after a crash) and then its copy.
func (s *Store) dropLocked(i int) error {
	id := s.rps[i].ID
	if err := os.Remove(s.rpMeta(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("bbolt: drop recovery point %d of %q: %w", id, s.dir, err)
	}
	s.rps = slices.Delete(s.rps, i, i+1)
	delete(s.rpSums, id)
	if err := engines.SyncDir(s.rpPath()); err != nil {
		return fmt.Errorf("bbolt: drop recovery point %d: %w", id, err)
	}
	if err := os.Remove(s.rpFile(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("bbolt: drop recovery point %d of %q: %w", id, s.dir, err)
	}
	return nil
}

// RollbackTo drops the newer recovery points, then replaces data.db by a
// copy of recovery point id's file and reopens it.
func (s *Store) RollbackTo(id uint64) (err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	defer func() { err = engines.NoteDamage(s.dir, err) }()
	defer s.contain("rollback", &err)
	if s.closed() {
		return fmt.Errorf("bbolt: rollback %q to %d: %w", s.dir, id, engines.ErrClosed)
	}
	if err := s.fail.Err(); err != nil {
		return err
	}
	i, err := s.find(id)
	if err != nil {
		return err
	}
	if n := s.views.Load(); n > 0 {
		// Closing the database would wait for the views' transactions.
		return fmt.Errorf("bbolt: rollback %q to %d: %d views are open; close them first", s.dir, id, n)
	}
	for len(s.rps) > i+1 {
		if err := s.dropLocked(len(s.rps) - 1); err != nil {
			return err
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.written += s.pageAllocLocked()
	err = s.db.Close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("bbolt: rollback %q to %d: close: %w", s.dir, id, err)
	}
	tmp := s.dataPath() + ".tmp"
	if err := s.copyRecoveryPoint(id, tmp); err != nil {
		os.Remove(tmp)
		err = fmt.Errorf("bbolt: rollback %q to %d: %w", s.dir, id, engines.DiskError(err))
		// data.db is untouched: keep serving it.
		return errors.Join(err, s.openDB(true))
	}
	if fi, err := os.Stat(tmp); err == nil {
		s.copied += fi.Size()
	}
	if err := os.Rename(tmp, s.dataPath()); err != nil {
		return fmt.Errorf("bbolt: rollback %q to %d: %w", s.dir, id, err)
	}
	if err := engines.SyncDir(s.dir); err != nil {
		return fmt.Errorf("bbolt: rollback %q to %d: %w", s.dir, id, err)
	}
	_, verified := s.rpSums[id]
	if err := s.openDB(verified); err != nil {
		return fmt.Errorf("bbolt: rollback to %d: %w", id, err)
	}
	return nil
}

// copyRecoveryPoint copies recovery point id's file to dst (fsynced),
// checking it against the checksum recorded when it was written: a copy
// that changed since is refused with engines.ErrCorrupt naming it, and the
// live file is left alone.
func (s *Store) copyRecoveryPoint(id uint64, dst string) (err error) {
	src := s.rpFile(id)
	sum, ok := s.rpSums[id]
	if !ok {
		return engines.CopyFileSync(src, dst)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil {
		return err
	} else if fi.Size() != sum.size {
		return fmt.Errorf("recovery point %d: %q has %d bytes, %d when it was written: %w", id, src, fi.Size(), sum.size, engines.ErrCorrupt)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	h := crc32.New(castagnoli)
	if _, err := io.Copy(out, io.TeeReader(in, h)); err != nil {
		return err
	}
	if got := h.Sum32(); got != sum.crc {
		return fmt.Errorf("recovery point %d: %q has changed since it was written (CRC-32C %08x, was %08x): %w", id, src, got, sum.crc, engines.ErrCorrupt)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return engines.SyncDir(filepath.Dir(dst))
}

// DropRecoveryPoint removes recovery point id's files.
func (s *Store) DropRecoveryPoint(id uint64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed() {
		return fmt.Errorf("bbolt: drop recovery point %d of %q: %w", id, s.dir, engines.ErrClosed)
	}
	if err := s.fail.Err(); err != nil {
		return err
	}
	i, err := s.find(id)
	if err != nil {
		return err
	}
	return s.dropLocked(i)
}

// pageAllocLocked is the bytes of pages the current db allocated since it
// was opened. The caller holds mu.
func (s *Store) pageAllocLocked() int64 {
	st := s.db.Stats()
	return st.TxStats.GetPageAlloc() - s.baseline.TxStats.GetPageAlloc()
}

// Metrics reports allocated disk bytes (recovery points included), an
// estimate of bytes written (see the package comment) and bbolt's page
// statistics.
func (s *Store) Metrics() (_ engines.Metrics, err error) {
	if err := s.fail.Err(); err != nil {
		return engines.Metrics{}, err
	}
	s.wmu.Lock()
	commits, copied, written := s.commits, s.copied, s.written
	nrps := len(s.rps)
	s.wmu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.contain("metrics", &err)
	if s.db == nil {
		return engines.Metrics{}, fmt.Errorf("bbolt: metrics of %q: %w", s.dir, engines.ErrClosed)
	}
	disk, err := engines.DiskUsage(s.dir)
	if err != nil {
		return engines.Metrics{}, fmt.Errorf("bbolt: %w", err)
	}
	st := s.db.Stats()
	var fileBytes int64
	_ = s.db.View(func(tx *bolt.Tx) error { fileBytes = tx.Size(); return nil })
	return engines.Metrics{
		DiskBytes:          disk,
		EngineBytesWritten: written + s.pageAllocLocked() + commits*int64(s.cfg.pageSize) + copied,
		MemoryBytes:        -1,
		Extra: map[string]float64{
			"file_bytes":      float64(fileBytes),
			"free_pages":      float64(st.FreePageN),
			"pending_pages":   float64(st.PendingPageN),
			"freelist_bytes":  float64(st.FreelistInuse),
			"open_read_txs":   float64(st.OpenTxN),
			"recovery_points": float64(nrps),
			"commits":         float64(commits),
		},
	}, nil
}

// Verify implements engines.Verifier. The quick check reads both meta
// pages and checks the file against them (checkFile: the size, the root
// and freelist pages); the full one is Check.
func (s *Store) Verify(full bool) error {
	if full {
		return s.Check()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return fmt.Errorf("bbolt: verify %q: %w", s.dir, engines.ErrClosed)
	}
	return checkFile(s.dataPath())
}

// Check walks every page of the file and reports the first inconsistency
// as an error wrapping engines.ErrCorrupt.
func (s *Store) Check() (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer func() { err = engines.NoteDamage(s.dir, err) }()
	defer s.contain("check", &err)
	if s.db == nil {
		return fmt.Errorf("bbolt: check %q: %w", s.dir, engines.ErrClosed)
	}
	if err := s.fail.Err(); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("bbolt: check %q: %w: %w", s.dataPath(), engines.ErrCorrupt, errors.Join(errs...))
		}
		return nil
	})
}

// Close closes the database; its files stay. A store closed cleanly is
// sealed (engines.Seal): the next Open checks data.db and the .meta files
// against their checksums, and every file against its size, before bbolt
// maps anything. Recovery-point copies carry their own checksum in their
// .meta, checked when a rollback copies one back.
func (s *Store) Close() error { return s.close(true) }

func (s *Store) close(seal bool) (err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return fmt.Errorf("bbolt: close %q: %w", s.dir, engines.ErrClosed)
	}
	if n := s.views.Load(); n > 0 {
		return fmt.Errorf("bbolt: close %q: %d views are open; close them first", s.dir, n)
	}
	db := s.db
	s.db = nil
	err = func() (err error) {
		defer s.contain("close", &err)
		return db.Close()
	}()
	if err != nil {
		return fmt.Errorf("bbolt: close %q: %w", s.dir, err)
	}
	if seal && s.fail.Err() == nil {
		if err := engines.Seal(s.dir, sealPolicy); err != nil {
			// The store is closed and intact; only the check at the next
			// Open is lost, as after a crash.
			s.cfg.logger.Warn("store closed without a seal", "engine", Name, "dir", s.dir, "err", err)
		}
	}
	return nil
}

// sealPolicy checksums every file but the recovery-point copies, which
// carry their own checksum.
func sealPolicy(rel string) bool {
	return !(strings.HasPrefix(filepath.ToSlash(rel), rpDir+"/") && strings.HasSuffix(rel, ".db"))
}

// Destroy closes the store (if open) and removes its directory.
func (s *Store) Destroy() error {
	if err := s.close(false); err != nil && !errors.Is(err, engines.ErrClosed) {
		return err
	}
	if err := engines.RemoveStoreDir(s.dir, Name); err != nil {
		return fmt.Errorf("bbolt: destroy: %w", err)
	}
	return nil
}

// view is a read transaction. Get and NewIter may be called from several
// goroutines; each iterator belongs to one.
type view struct {
	s       *Store
	mu      sync.Mutex
	tx      *bolt.Tx // nil once closed
	buckets [engines.NumKeyspaces]*bolt.Bucket
}

func (v *view) bucket(ks engines.Keyspace) (*bolt.Bucket, error) {
	if ks >= engines.NumKeyspaces {
		return nil, fmt.Errorf("bbolt: view: invalid %v", ks)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tx == nil {
		return nil, fmt.Errorf("bbolt: view of %q: %w", v.s.dir, engines.ErrClosed)
	}
	return v.buckets[ks], nil
}

func (v *view) Get(ks engines.Keyspace, key []byte) (_ []byte, _ bool, err error) {
	b, err := v.bucket(ks)
	if err != nil {
		return nil, false, err
	}
	defer v.s.contain("view get", &err)
	val, ok := lookup(b, key)
	return val, ok, nil
}

func (v *view) NewIter(ks engines.Keyspace, lower, upper []byte) (engines.Iterator, error) {
	b, err := v.bucket(ks)
	if err != nil {
		return nil, err
	}
	return &iter{s: v.s, c: b.Cursor(), lower: bytes.Clone(lower), upper: bytes.Clone(upper)}, nil
}

func (v *view) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tx == nil {
		return fmt.Errorf("bbolt: close view of %q: %w", v.s.dir, engines.ErrClosed)
	}
	err := v.tx.Rollback()
	v.tx = nil
	v.s.views.Add(-1)
	if err != nil {
		return fmt.Errorf("bbolt: close view of %q: %w", v.s.dir, err)
	}
	return nil
}

// iter walks a bbolt cursor within [lower, upper). Keys and values point
// into the mmap and stay valid while the view is open.
//
// First and SeekGE run under recover (contain): a panic of the cursor (a
// damaged page) ends the iteration with the error contain makes of it.
// Next does not: a deferred recover per entry made 1000-entry scans a
// quarter slower, and the pages Next walks were verified when the store
// opened (the seal's checksum after a clean Close, checkTree after a
// crash, a recovery point's checksum after a rollback) and bbolt wrote
// every page since.
type iter struct {
	s            *Store
	c            *bolt.Cursor
	lower, upper []byte
	k, v         []byte
	err          error
}

// contain is deferred by the positioning calls; see Store.contain.
func (it *iter) contain(ok *bool) {
	if r := recover(); r != nil {
		it.err = fmt.Errorf("bbolt: iterate %q: bbolt panicked (%v), which a damaged page causes: %w: %w",
			it.s.dataPath(), r, engines.ErrCorrupt, engines.ErrFailed)
		_ = engines.MarkDamaged(it.s.dir, it.err)
		it.err = it.s.fail.Set(it.err)
		it.k, it.v, *ok = nil, nil, false
	}
}

func (it *iter) set(k, v []byte) bool {
	if k == nil || (it.upper != nil && bytes.Compare(k, it.upper) >= 0) {
		it.k, it.v = nil, nil
		return false
	}
	it.k, it.v = k, v
	return true
}

func (it *iter) First() (ok bool) {
	if it.err != nil {
		return false
	}
	defer it.contain(&ok)
	if it.lower != nil {
		return it.set(it.c.Seek(it.lower))
	}
	return it.set(it.c.First())
}

func (it *iter) SeekGE(key []byte) (ok bool) {
	if it.err != nil {
		return false
	}
	defer it.contain(&ok)
	if it.lower != nil && bytes.Compare(key, it.lower) < 0 {
		key = it.lower
	}
	return it.set(it.c.Seek(key))
}

func (it *iter) Next() bool {
	if it.k == nil {
		return false
	}
	return it.set(it.c.Next())
}

func (it *iter) Valid() bool   { return it.k != nil }
func (it *iter) Key() []byte   { return it.k }
func (it *iter) Value() []byte { return it.v }
func (it *iter) Err() error    { return it.err }
func (it *iter) Close() error {
	it.k, it.v, it.c = nil, nil, nil
	return it.err
}
