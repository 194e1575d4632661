package badger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	badgerdb "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"

	"github.com/idxbench/idxbench/engines"
)

// Name is the name the adapter registers under.
const Name = "badger"

func init() {
	engines.Register(engines.Engine{
		Name: Name,
		Doc:  "dgraph-io/badger LSM in managed (versioned) mode; a recovery point is a versioned meta key plus a sync, rollback rewrites what changed since it",
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

const liveDir = "data" // the badger database inside the store directory

// Keys under reservedPrefix are the adapter's own; no Keyspace has this
// value, so views never see them.
const reservedPrefix = 0xff

var (
	// rpPrefix ++ big-endian id → meta, committed at the recovery point's
	// version T.
	rpPrefix = []byte{reservedPrefix, 'r'}
	// rollbackKey → big-endian id while a rollback is in progress; Open
	// finishes a rollback a crash interrupted.
	rollbackKey = []byte{reservedPrefix, 'b'}
)

func rpKey(id uint64) []byte { return binary.BigEndian.AppendUint64(bytes.Clone(rpPrefix), id) }

// recoveryPoint is a retained recovery point and its version.
type recoveryPoint struct {
	id   uint64
	ts   uint64 // the version the recovery point's key was committed at
	meta []byte
}

// Store is a badger database, opened in managed mode, holding the three
// keyspaces of one index slice under a one-byte key prefix.
//
// Every Apply is one transaction committed at the next version (badger's
// WriteBatch is not atomic: it splits itself into several transactions).
// A view is a read transaction at the last committed version. A recovery
// point is one more commit, the meta under a reserved key, followed by a
// Sync: O(1). Badger keeps every version newer than the discard timestamp,
// which the adapter holds at the oldest retained recovery point (and the
// oldest open view), so the contents as of any retained point stay
// readable. RollbackTo(id) walks the versions written since the point's
// version T and, for each key changed, writes its value as of T (or a
// delete) at a new version, idempotent if a crash interrupts it (Open
// finishes it). The writes are O(keys changed since T); the walk skips only
// whole tables with no version above T, so once compactions have mixed old
// and new versions it reads close to the whole store.
// Retained recovery points cost space: superseded versions younger than
// the oldest point are not compacted away.
//
// Batch size: a badger transaction holds at most ~15% of the memtable
// (about 100 k small entries at the 64 MiB default). A larger batch fails
// with an error wrapping badger.ErrTxnTooBig that names its size, and the
// store is unchanged; raise MemtableBytes for larger batches. The adapter
// never splits a batch, since that would give up atomicity.
type Store struct {
	dir string
	set settings

	// guard keeps free space for the writes badger makes through memory
	// mappings of sparse files (memtable logs, value logs, new tables):
	// a page the filesystem cannot back there is a SIGBUS, not an error.
	guard *engines.SpaceGuard
	// fail holds a panic contained at the adapter boundary.
	fail engines.Failure

	// mu guards db against Close: everything else holds it shared.
	mu     sync.RWMutex
	db     *badgerdb.DB
	closed bool

	// ts is the last committed version; views read at it. Only the writer
	// (Apply, recovery-point calls) advances it.
	ts atomic.Uint64

	// rpMu guards the recovery points, the open views' read versions and
	// the discard timestamp derived from both.
	rpMu    sync.Mutex
	points  []recoveryPoint // oldest first
	views   map[uint64]int  // read version → open views at it
	applies int
}

var _ engines.Store = (*Store)(nil)

// Open opens or creates the badger store in dir.
func Open(dir string, opts engines.Options) (*Store, error) {
	set, err := newSettings(opts)
	if err != nil {
		return nil, err
	}
	created, err := engines.ClaimDir(dir, Name)
	if err != nil {
		return nil, fmt.Errorf("open badger store %q: %w", dir, err)
	}
	sealed, err := engines.CheckIntegrity(dir)
	if err != nil {
		return nil, fmt.Errorf("open badger store: %w", err)
	}
	path := filepath.Join(dir, liveDir)
	if !created {
		// Badger would quietly create an empty database where a store's
		// files went missing.
		if _, err := os.Stat(filepath.Join(path, "MANIFEST")); err != nil {
			return nil, fmt.Errorf("open badger store %q: %w: %w", path, engines.ErrCorrupt, err)
		}
	}
	if err := removeEmptyLogs(path); err != nil {
		return nil, fmt.Errorf("open badger store %q: %w", path, err)
	}
	bopts := set.badgerOptions(path)
	// A seal checked every table's CRC-32C already: block by block is
	// for a store a crash left unsealed.
	if err := checkFiles(path, bopts, set.verifyTables && !sealed); err != nil {
		return nil, fmt.Errorf("open badger store %q: %w", path, err)
	}
	db, err := openManaged(bopts)
	if err != nil {
		if !created && !environmental(err) && !engines.Transient(err) {
			return nil, fmt.Errorf("open badger store %q: %w: %w", path, engines.ErrCorrupt, err)
		}
		return nil, fmt.Errorf("open badger store %q: %w", path, engines.DiskError(err))
	}
	s := &Store{dir: dir, set: set, db: db, views: map[uint64]int{},
		guard: engines.NewSpaceGuard(Name, dir, set.diskReserveBytes, set.diskSpace)}
	s.fail.Logger = set.logger
	s.ts.Store(db.MaxVersion())
	s.updateReserve()
	if err := s.recover(); err != nil {
		s.guard.Release()
		return nil, errors.Join(fmt.Errorf("open badger store %q: %w", path, err), db.Close())
	}
	return s, nil
}

// openManaged opens the database, turning a panic of badger's (its own
// checks of what it reads) into an error.
func openManaged(o badgerdb.Options) (db *badgerdb.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("badger panicked opening it: %v", r)
		}
	}()
	return badgerdb.OpenManaged(o)
}

// updateReserve sets the guard's reserve: the configured base (memtables
// waiting to be flushed, their logs, the flush at Close) plus the size of
// the LSM tree. Compactions write their new tables through mappings
// before they remove the old ones, several run at once, and they go on
// after writes stop: in the worst case they rewrite the whole tree, and a
// table the disk cannot hold is a SIGBUS. (The test that fills a disk
// found a quarter of the tree too little.)
func (s *Store) updateReserve() {
	var lsm int64
	for _, l := range s.db.Levels() {
		lsm += l.Size
	}
	s.guard.SetReserve(s.set.diskReserveBytes + lsm)
}

// environmental reports whether an open error comes from the environment
// (permissions, a full disk, another process holding the directory lock)
// rather than from the store's contents.
func environmental(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOSPC) ||
		errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EROFS) ||
		// badger flattens the flock error into text.
		strings.Contains(err.Error(), "Cannot acquire directory lock")
}

// recover loads the recovery points, finishes an interrupted rollback and
// sets the discard timestamp, which badger keeps only in memory.
func (s *Store) recover() error {
	txn := s.db.NewTransactionAt(s.ts.Load(), false)
	defer txn.Discard()
	it := txn.NewIterator(badgerdb.IteratorOptions{Prefix: rpPrefix})
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if len(k) != len(rpPrefix)+8 {
			it.Close()
			return fmt.Errorf("%w: malformed recovery point key %x", engines.ErrCorrupt, k)
		}
		meta, err := item.ValueCopy(nil)
		if err != nil {
			it.Close()
			return fmt.Errorf("read recovery point: %w", err)
		}
		s.points = append(s.points, recoveryPoint{id: binary.BigEndian.Uint64(k[len(rpPrefix):]), ts: item.Version(), meta: meta})
	}
	it.Close()
	item, err := txn.Get(rollbackKey)
	switch {
	case errors.Is(err, badgerdb.ErrKeyNotFound):
	case err != nil:
		return fmt.Errorf("read rollback marker: %w", err)
	default:
		v, err := item.ValueCopy(nil)
		if err != nil || len(v) != 8 {
			return fmt.Errorf("%w: malformed rollback marker %x (%v)", engines.ErrCorrupt, v, err)
		}
		if err := s.rollbackLocked(binary.BigEndian.Uint64(v)); err != nil {
			return fmt.Errorf("finish interrupted rollback: %w", err)
		}
	}
	s.updateDiscardTsLocked()
	return nil
}

// updateDiscardTsLocked lets badger discard versions no retained recovery
// point and no open view can read.
func (s *Store) updateDiscardTsLocked() {
	d := s.ts.Load()
	if len(s.points) > 0 {
		d = min(d, s.points[0].ts)
	}
	for ts := range s.views {
		d = min(d, ts)
	}
	s.db.SetDiscardTs(d)
}

// Apply implements engines.Store.
func (s *Store) Apply(b *engines.Batch, d engines.Durability) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.fail.Recover(Name, s.dir, "apply", &err)
	if s.closed {
		return engines.ErrClosed
	}
	if err := s.fail.Err(); err != nil {
		return err
	}
	// The batch lands in the memtable's log and, for large values, the
	// value log: both written through mappings.
	if err := s.guard.Admit(2*int64(b.Bytes()) + 32*int64(b.Len()) + 64); err != nil {
		return fmt.Errorf("badger apply batch of %d ops: %w", b.Len(), err)
	}
	n := b.Len()
	// Badger keeps references to keys and entries until the commit: one
	// buffer holds every prefixed key, one slice every entry.
	keys := make([]byte, 0, b.Bytes()+n)
	entries := make([]badgerdb.Entry, n)
	ts := s.ts.Load()
	txn := s.db.NewTransactionAt(ts, true)
	defer txn.Discard()
	for i := range n {
		op := b.Op(i)
		off := len(keys)
		keys = append(append(keys, byte(op.Keyspace)), op.Key...)
		key := keys[off:len(keys):len(keys)]
		var err error
		if op.Kind == engines.OpSet {
			entries[i] = badgerdb.Entry{Key: key, Value: op.Value}
			err = txn.SetEntry(&entries[i])
		} else {
			err = txn.Delete(key)
		}
		if errors.Is(err, badgerdb.ErrTxnTooBig) {
			return fmt.Errorf("badger apply in %q: batch of %d ops and %d bytes exceeds one transaction (at most %d entries or %d bytes with a %d-byte memtable; raise the memtable size): %w",
				s.dir, n, b.Bytes(), s.db.MaxBatchCount(), s.db.MaxBatchSize(), s.set.memtableBytes, err)
		}
		if err != nil {
			return fmt.Errorf("badger apply in %q: %s key %q: %w", s.dir, op.Keyspace, op.Key, err)
		}
	}
	if err := txn.CommitAt(ts+1, nil); err != nil {
		return fmt.Errorf("badger apply batch of %d ops in %q: %w", n, s.dir, engines.DiskError(err))
	}
	s.ts.Store(ts + 1)
	if d == engines.Sync {
		if err := s.db.Sync(); err != nil {
			return fmt.Errorf("badger sync %q: %w", s.dir, engines.DiskError(err))
		}
	}
	// Without recovery points nothing would ever raise the discard
	// timestamp, and old versions would pile up.
	s.rpMu.Lock()
	if s.applies++; s.applies%64 == 0 {
		if len(s.points) == 0 {
			s.updateDiscardTsLocked()
		}
		s.updateReserve()
	}
	s.rpMu.Unlock()
	return nil
}

// Get implements engines.Store.
func (s *Store) Get(ks engines.Keyspace, key []byte) (_ []byte, _ bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.fail.Recover(Name, s.dir, "get", &err)
	if s.closed {
		return nil, false, engines.ErrClosed
	}
	if err := s.fail.Err(); err != nil {
		return nil, false, err
	}
	txn := s.db.NewTransactionAt(s.ts.Load(), false)
	defer txn.Discard()
	return get(txn, ks, key)
}

func get(txn *badgerdb.Txn, ks engines.Keyspace, key []byte) ([]byte, bool, error) {
	item, err := txn.Get(append([]byte{byte(ks)}, key...))
	if errors.Is(err, badgerdb.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("badger get %s key %q: %w", ks, key, engines.DiskError(err))
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, false, fmt.Errorf("badger get %s key %q: %w", ks, key, engines.DiskError(err))
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// NewView implements engines.Store.
func (s *Store) NewView() (_ engines.View, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.fail.Recover(Name, s.dir, "new view", &err)
	if s.closed {
		return nil, engines.ErrClosed
	}
	if err := s.fail.Err(); err != nil {
		return nil, err
	}
	s.rpMu.Lock()
	ts := s.ts.Load()
	s.views[ts]++
	s.rpMu.Unlock()
	return &view{s: s, ts: ts, txn: s.db.NewTransactionAt(ts, false)}, nil
}

type view struct {
	s      *Store
	ts     uint64
	txn    *badgerdb.Txn
	closed bool
}

func (v *view) Get(ks engines.Keyspace, key []byte) (_ []byte, _ bool, err error) {
	if v.closed {
		return nil, false, engines.ErrClosed
	}
	defer v.s.fail.Recover(Name, v.s.dir, "view get", &err)
	return get(v.txn, ks, key)
}

func (v *view) NewIter(ks engines.Keyspace, lower, upper []byte) (engines.Iterator, error) {
	if v.closed {
		return nil, engines.ErrClosed
	}
	prefix := []byte{byte(ks)}
	it := &iter{
		it:    v.txn.NewIterator(badgerdb.IteratorOptions{Prefix: prefix}),
		lower: append(prefix, lower...),
		upper: upper,
	}
	if upper != nil {
		it.upper = append([]byte{byte(ks)}, upper...)
	}
	return it, nil
}

func (v *view) Close() error {
	if v.closed {
		return engines.ErrClosed
	}
	v.closed = true
	v.txn.Discard()
	s := v.s
	s.rpMu.Lock()
	if s.views[v.ts]--; s.views[v.ts] == 0 {
		delete(s.views, v.ts)
	}
	s.rpMu.Unlock()
	return nil
}

// iter turns badger's prefix iterator into a bounded one. lower and upper
// carry the keyspace prefix; upper nil means the end of the keyspace.
type iter struct {
	it           *badgerdb.Iterator
	lower, upper []byte
	seek         []byte
	val          []byte
	err          error
}

func (i *iter) First() bool {
	i.it.Seek(i.lower)
	return i.Valid()
}

func (i *iter) SeekGE(key []byte) bool {
	i.seek = append(append(i.seek[:0], i.lower[0]), key...)
	if bytes.Compare(i.seek, i.lower) < 0 {
		i.seek = append(i.seek[:0], i.lower...)
	}
	i.it.Seek(i.seek)
	return i.Valid()
}

func (i *iter) Next() bool {
	if !i.Valid() {
		return false
	}
	i.it.Next()
	return i.Valid()
}

func (i *iter) Valid() bool {
	if i.err != nil || !i.it.Valid() {
		return false
	}
	// The iterator's Prefix option keeps it inside the keyspace.
	return i.upper == nil || bytes.Compare(i.it.Item().Key(), i.upper) < 0
}

func (i *iter) Key() []byte { return i.it.Item().Key()[1:] }

func (i *iter) Value() []byte {
	v, err := i.it.Item().ValueCopy(i.val[:0])
	if err != nil {
		i.err = fmt.Errorf("badger read value of %q: %w", i.Key(), err)
		return nil
	}
	i.val = v
	return v
}

func (i *iter) Err() error { return i.err }

func (i *iter) Close() error {
	i.it.Close()
	return i.err
}

// CreateRecoveryPoint implements engines.Store: the meta is committed at
// the next version T under a reserved key, and the database synced.
func (s *Store) CreateRecoveryPoint(id uint64, meta []byte) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.fail.Recover(Name, s.dir, "create recovery point", &err)
	if s.closed {
		return engines.ErrClosed
	}
	if err := s.fail.Err(); err != nil {
		return err
	}
	if err := s.guard.Admit(int64(len(meta)) + 64); err != nil {
		return fmt.Errorf("badger recovery point %d: %w", id, err)
	}
	s.rpMu.Lock()
	defer s.rpMu.Unlock()
	if n := len(s.points); n > 0 && id <= s.points[n-1].id {
		return fmt.Errorf("badger recovery point %d in %q: ids must increase (newest is %d)", id, s.dir, s.points[n-1].id)
	}
	meta = bytes.Clone(meta)
	t, err := s.commit(func(txn *badgerdb.Txn) error { return txn.Set(rpKey(id), meta) })
	if err != nil {
		return fmt.Errorf("badger recovery point %d in %q: %w", id, s.dir, engines.DiskError(err))
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("badger recovery point %d: sync %q: %w", id, s.dir, engines.DiskError(err))
	}
	s.points = append(s.points, recoveryPoint{id: id, ts: t, meta: meta})
	s.updateDiscardTsLocked()
	return nil
}

// commit runs fill in a transaction committed at the next version and
// returns that version.
func (s *Store) commit(fill func(*badgerdb.Txn) error) (uint64, error) {
	ts := s.ts.Load()
	txn := s.db.NewTransactionAt(ts, true)
	defer txn.Discard()
	if err := fill(txn); err != nil {
		return 0, err
	}
	if err := txn.CommitAt(ts+1, nil); err != nil {
		return 0, err
	}
	s.ts.Store(ts + 1)
	return ts + 1, nil
}

// RecoveryPoints implements engines.Store.
func (s *Store) RecoveryPoints() ([]engines.RecoveryPoint, error) {
	s.rpMu.Lock()
	defer s.rpMu.Unlock()
	out := make([]engines.RecoveryPoint, len(s.points))
	for i, p := range s.points {
		out[i] = engines.RecoveryPoint{ID: p.id, Meta: bytes.Clone(p.meta)}
	}
	return out, nil
}

func (s *Store) indexOf(id uint64) int {
	return slices.IndexFunc(s.points, func(p recoveryPoint) bool { return p.id == id })
}

// DropRecoveryPoint implements engines.Store. Deleting the key is enough;
// what the point pinned goes with the next compactions once the discard
// timestamp moves past it.
func (s *Store) DropRecoveryPoint(id uint64) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.fail.Recover(Name, s.dir, "drop recovery point", &err)
	if s.closed {
		return engines.ErrClosed
	}
	if err := s.fail.Err(); err != nil {
		return err
	}
	s.rpMu.Lock()
	defer s.rpMu.Unlock()
	i := s.indexOf(id)
	if i < 0 {
		return fmt.Errorf("badger drop recovery point %d in %q: %w", id, s.dir, engines.ErrNoRecoveryPoint)
	}
	if _, err := s.commit(func(txn *badgerdb.Txn) error { return txn.Delete(rpKey(id)) }); err != nil {
		return fmt.Errorf("badger drop recovery point %d in %q: %w", id, s.dir, err)
	}
	s.points = slices.Delete(s.points, i, i+1)
	s.updateDiscardTsLocked()
	return nil
}

// RollbackTo implements engines.Store.
func (s *Store) RollbackTo(id uint64) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.fail.Recover(Name, s.dir, "rollback", &err)
	if s.closed {
		return engines.ErrClosed
	}
	if err := s.fail.Err(); err != nil {
		return err
	}
	// The marker's commit; the rewrite asks for its writes as it goes
	// (rewriter.put), so a rollback with nothing to rewrite needs no room.
	if err := s.guard.Admit(256); err != nil {
		return fmt.Errorf("badger rollback to %d: %w", id, err)
	}
	s.rpMu.Lock()
	defer s.rpMu.Unlock()
	if err := s.rollbackLocked(id); err != nil {
		return fmt.Errorf("badger rollback %q to %d: %w", s.dir, id, engines.DiskError(err))
	}
	return nil
}

// rollbackLocked rolls back in three commits' worth of steps, each
// durable before the next: (1) the rollback marker is set and newer
// recovery points deleted; (2) every key changed since the point's version
// T is rewritten to its state at T, in as many batches as it takes, all
// at one new version; (3) the marker is deleted. A crash before (3) leaves
// the marker, and Open runs the rollback again: step (2) reads the state at
// T, which nothing after T changes, so redoing it is harmless.
func (s *Store) rollbackLocked(id uint64) error {
	t, err := s.markRollback(id)
	if err != nil {
		return err
	}
	w := s.ts.Load() + 1
	if err := s.rewriteSince(t, w); err != nil {
		return err
	}
	// Durable before the marker goes: after a power loss, the log pages
	// need not reach the disk in the order they were written.
	if err := s.db.Sync(); err != nil {
		return err
	}
	s.ts.Store(w)
	if _, err := s.commit(func(txn *badgerdb.Txn) error { return txn.Delete(rollbackKey) }); err != nil {
		return fmt.Errorf("clear rollback marker: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return err
	}
	s.updateDiscardTsLocked()
	return nil
}

// markRollback is a rollback's first step: it durably records that a
// rollback to id is under way and deletes the recovery points newer than
// id. It returns the version of recovery point id.
func (s *Store) markRollback(id uint64) (uint64, error) {
	i := s.indexOf(id)
	if i < 0 {
		return 0, engines.ErrNoRecoveryPoint
	}
	newer := s.points[i+1:]
	if _, err := s.commit(func(txn *badgerdb.Txn) error {
		if err := txn.Set(rollbackKey, binary.BigEndian.AppendUint64(nil, id)); err != nil {
			return err
		}
		for _, p := range newer {
			if err := txn.Delete(rpKey(p.id)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("mark rollback: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return 0, err
	}
	s.points = s.points[:i+1]
	return s.points[i].ts, nil
}

// rewriteSince writes, at version w, the state as of version t of every
// key in the three keyspaces that has a version newer than t.
//
// Two iterators walk each keyspace in key order: changed lists every
// version above t (newest first, so a key's first item is its current
// state), and old is a plain iterator at t that follows along, giving each
// changed key's state at t. old moves with Next while the next changed key
// is close and with Seek when it is far, so no key costs a point lookup.
// The writes go to badger in batches written while the walk goes on
// (rewriter).
func (s *Store) rewriteSince(t, w uint64) error {
	cur := s.db.NewTransactionAt(w-1, false)
	defer cur.Discard()
	atT := s.db.NewTransactionAt(t, false)
	defer atT.Discard()

	r := newRewriter(s.db, w, s.guard)
	for ks := range engines.NumKeyspaces {
		prefix := []byte{byte(ks)}
		changed := cur.NewIterator(badgerdb.IteratorOptions{Prefix: prefix, AllVersions: true, SinceTs: t})
		old := atT.NewIterator(badgerdb.IteratorOptions{Prefix: prefix})
		err := rewriteKeyspace(changed, old, r)
		changed.Close()
		old.Close()
		if err != nil {
			return errors.Join(fmt.Errorf("%s: %w", ks, err), r.abort())
		}
	}
	return r.finish()
}

// maxInflight is how many batches of a rollback's writes may be being
// written while the walk fills the next one.
const maxInflight = 2

// deletedMeta is the pb.KV meta of a deletion: badger's bitDelete, as
// its backup format (Backup, KVLoader) carries it.
var deletedMeta = []byte{1}

// rewriter sends a rollback's writes to badger, all at version w (readers
// see none of it until s.ts moves to w, and the writes are idempotent, so
// they need not be one transaction). It uses badger's KVLoader, the
// restore path, rather than transactions: the writes reach the memtable
// in the walk's key order (a transaction's go in map order, and random
// inserts into a large skiplist cost a cache miss per level), without a
// transaction's per-key bookkeeping, and batches are written
// asynchronously while the walk goes on, at most maxInflight at a time.
// Values are copied into an arena that only grows, since badger keeps
// references to them until their batch is written; KVLoader copies keys.
type rewriter struct {
	ldr   *badgerdb.KVLoader
	kv    pb.KV
	w     uint64
	arena []byte
	// guard admits the writes ahead, admitChunk bytes at a time; room
	// is what is left of the last admission.
	guard *engines.SpaceGuard
	room  int64
}

// admitChunk is how many bytes of rewrites the rewriter asks the space
// guard for at once.
const admitChunk = 256 << 10

func newRewriter(db *badgerdb.DB, w uint64, guard *engines.SpaceGuard) *rewriter {
	return &rewriter{ldr: db.NewKVLoader(maxInflight), w: w, guard: guard}
}

// keep returns a copy of b in the arena (nil for an empty b).
func (r *rewriter) keep(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	if cap(r.arena)-len(r.arena) < len(b) {
		r.arena = make([]byte, 0, max(256<<10, len(b)))
	}
	n := len(r.arena)
	r.arena = append(r.arena, b...)
	return r.arena[n:len(r.arena):len(r.arena)]
}

// put adds one write; value must stay unchanged until finish.
func (r *rewriter) put(key, value []byte, del bool) error {
	if n := int64(len(key) + len(value) + 32); n > r.room {
		if err := r.guard.Admit(max(n, admitChunk)); err != nil {
			return err
		}
		r.room = max(n, admitChunk)
	}
	r.room -= int64(len(key) + len(value) + 32)
	r.kv = pb.KV{Key: key, Value: value, Version: r.w}
	if del {
		r.kv.Meta = deletedMeta
	}
	return r.ldr.Set(&r.kv)
}

// finish sends what is left and waits until every write is done.
func (r *rewriter) finish() error { return r.ldr.Finish() }

// abort waits for the writes already sent (what it sends too is harmless:
// a rollback is redone whole).
func (r *rewriter) abort() error { return r.ldr.Finish() }

// nextBeforeSeek is how many Next calls old may make towards a changed key
// before it seeks instead. A Seek repositions every level's iterator
// (decoding a block in each when the cache misses: ~10–20 µs), a Next
// within a block costs well under a microsecond.
const nextBeforeSeek = 32

func rewriteKeyspace(changed, old *badgerdb.Iterator, r *rewriter) error {
	var last []byte
	seeked := false
	for changed.Rewind(); changed.Valid(); changed.Next() {
		item := changed.Item()
		if last != nil && bytes.Equal(item.Key(), last) {
			continue // an older version of a key already handled
		}
		key := item.KeyCopy(last[:0])
		last = key

		// Position old at the first key ≥ key as of t.
		if !seeked {
			old.Seek(key)
			seeked = true
		}
		for range nextBeforeSeek {
			if !old.Valid() || bytes.Compare(old.Item().Key(), key) >= 0 {
				break
			}
			old.Next()
		}
		if old.Valid() && bytes.Compare(old.Item().Key(), key) < 0 {
			old.Seek(key)
		}
		existed := old.Valid() && bytes.Equal(old.Item().Key(), key)
		deletedNow := item.IsDeletedOrExpired()

		var err error
		switch {
		case !existed && !deletedNow:
			err = r.put(key, nil, true)
		case existed:
			err = old.Item().Value(func(was []byte) error {
				if !deletedNow && item.ValueSize() == int64(len(was)) {
					// Index entries are presence-only (empty values), so
					// this read is rare.
					same := false
					if err := item.Value(func(v []byte) error { same = bytes.Equal(v, was); return nil }); err != nil || same {
						return err
					}
				}
				return r.put(key, r.keep(was), false)
			})
		}
		if err != nil {
			return fmt.Errorf("rewrite %x: %w", key, err)
		}
	}
	return nil
}

// Metrics implements engines.Store. Badger counts bytes written only in
// process-global expvars, so EngineBytesWritten is -1; MemoryBytes is what
// the block and index caches hold plus one memtable.
func (s *Store) Metrics() (_ engines.Metrics, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.fail.Recover(Name, s.dir, "metrics", &err)
	if s.closed {
		return engines.Metrics{}, engines.ErrClosed
	}
	if err := s.fail.Err(); err != nil {
		return engines.Metrics{}, err
	}
	disk, err := engines.DiskUsage(s.dir)
	if err != nil {
		return engines.Metrics{}, fmt.Errorf("badger metrics %q: %w", s.dir, err)
	}
	lsm, vlog := s.db.Size()
	// Ristretto's metrics methods treat a nil receiver (cache disabled) as
	// zero.
	bc, ic := s.db.BlockCacheMetrics(), s.db.IndexCacheMetrics()
	mem := s.set.memtableBytes +
		int64(bc.CostAdded()-bc.CostEvicted()) + int64(ic.CostAdded()-ic.CostEvicted())
	extra := map[string]float64{
		"lsm_bytes":  float64(lsm),
		"vlog_bytes": float64(vlog),
		"version":    float64(s.ts.Load()),
	}
	if lv := s.db.Levels(); len(lv) > 0 {
		extra["l0_tables"] = float64(lv[0].NumTables)
	}
	return engines.Metrics{DiskBytes: disk, EngineBytesWritten: -1, MemoryBytes: mem, Extra: extra}, nil
}

// Verify implements engines.Verifier. The quick check compares every table
// the LSM tree holds with its file (present, of the recorded size); the
// full one is badger's VerifyChecksum, which reads every table of every
// level and checks each block's checksum.
func (s *Store) Verify(full bool) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.fail.Recover(Name, s.dir, "verify", &err)
	if s.closed {
		return engines.ErrClosed
	}
	if err := s.fail.Err(); err != nil {
		return err
	}
	if full {
		if err := s.db.VerifyChecksum(); err != nil {
			return fmt.Errorf("badger verify %q: %w: %w", s.dir, engines.ErrCorrupt, err)
		}
		return nil
	}
	dir := s.db.Opts().Dir
	for _, t := range s.db.Tables() {
		path := filepath.Join(dir, table.IDToFilename(t.ID))
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("badger verify: table %q: %w: %w", path, engines.ErrCorrupt, err)
		}
		if fi.Size() < int64(t.OnDiskSize) {
			return fmt.Errorf("badger verify: table %q is %d bytes, the tree says %d: %w", path, fi.Size(), t.OnDiskSize, engines.ErrCorrupt)
		}
	}
	return nil
}

// Compact implements engines.Compacter with badger's Flatten, which
// compacts every level into one.
func (s *Store) Compact() (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.fail.Recover(Name, s.dir, "compact", &err)
	if s.closed {
		return engines.ErrClosed
	}
	if err := s.fail.Err(); err != nil {
		return err
	}
	// Flattening rewrites the tree: room for all of it.
	lsm, _ := s.db.Size()
	if err := s.guard.Admit(lsm); err != nil {
		return fmt.Errorf("badger compact: %w", err)
	}
	if err := s.db.Flatten(1); err != nil {
		return fmt.Errorf("badger compact %q: %w", s.dir, engines.DiskError(err))
	}
	return nil
}

// Close implements engines.Store. Badger flushes the memtable to a table
// first. A store closed cleanly is sealed (engines.Seal): the next Open
// checks every file's size and CRC-32C before badger reads any (badger
// would take a damaged log or MANIFEST for one a crash cut short and drop
// what follows, and exits on some damaged tables), and then need not
// verify the tables block by block (checkTables), which costs ten times
// more.
func (s *Store) Close() error { return s.close(true) }

func (s *Store) close(seal bool) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return engines.ErrClosed
	}
	s.closed = true
	defer s.guard.Release()
	failed := s.fail.Err() != nil
	defer s.fail.Recover(Name, s.dir, "close", &err)
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close badger store %q: %w", s.dir, engines.DiskError(err))
	}
	if seal && !failed {
		if err := engines.Seal(s.dir, engines.SealAll); err != nil {
			// The store is closed and intact; only the check at the next
			// Open is lost, as after a crash.
			s.set.logger.Warn("store closed without a seal", "engine", Name, "dir", s.dir, "err", err)
		}
	}
	return nil
}

// Destroy implements engines.Store.
func (s *Store) Destroy() error {
	err := s.close(false)
	if errors.Is(err, engines.ErrClosed) {
		err = nil
	}
	return errors.Join(err, engines.RemoveStoreDir(s.dir, Name))
}

// removeEmptyLogs deletes zero-length memtable files (*.mem, badger's
// write-ahead logs) and a zero-length newest value log. A process killed
// just after badger created one, before it sized and wrote it, leaves such
// a file, and badger then refuses to open the database ("while opening
// fid: N err: Create a new file"), after starting goroutines it leaves
// running. A zero-length log holds no writes, so removing it loses
// nothing (found by the crash test for memtables, by the corruption suite
// for value logs). An older value log of zero length cannot come from a
// crash, and values may point into it: that is damage.
func removeEmptyLogs(path string) error {
	ents, err := os.ReadDir(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	newestVlog, emptyVlogs := -1, map[int]string{}
	for _, e := range ents {
		name := e.Name()
		ext := filepath.Ext(name)
		if ext != ".mem" && ext != ".vlog" {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if ext == ".vlog" {
			fid, err := strconv.Atoi(strings.TrimSuffix(name, ext))
			if err != nil {
				continue // not badger's; badger reports it
			}
			newestVlog = max(newestVlog, fid)
			if fi.Size() == 0 {
				emptyVlogs[fid] = name
			}
			continue
		}
		if fi.Size() == 0 {
			if err := os.Remove(filepath.Join(path, name)); err != nil {
				return err
			}
		}
	}
	for fid, name := range emptyVlogs {
		if fid != newestVlog {
			return fmt.Errorf("value log %q is empty, and newer ones follow it: %w", filepath.Join(path, name), engines.ErrCorrupt)
		}
		if err := os.Remove(filepath.Join(path, name)); err != nil {
			return err
		}
	}
	return nil
}
