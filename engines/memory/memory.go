package memory

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/google/btree"

	"github.com/idxbench/idxbench/engines"
)

// Name is the name the engine registers under.
const Name = "memory"

func init() {
	engines.Register(engines.Engine{
		Name:     Name,
		Doc:      "in-memory reference engine (google/btree per keyspace); views and recovery points are O(1) copy-on-write clones; keeps nothing across Close",
		Real:     false,
		Open:     func(dir string, opts engines.Options) (engines.Store, error) { return Open(dir, opts) },
		Describe: Describe,
	})
}

// Describe renders the effective settings. The memory engine has no cache,
// memtable or compression: it says so rather than echoing numbers it ignores.
func Describe(opts engines.Options) string {
	return "memory: btree degree=32, no cache/memtable/compression, not durable"
}

// degree is the B-tree's branching parameter; 32 is google/btree's
// suggested general-purpose value.
const degree = 32

type item struct {
	key, value []byte
}

func less(a, b item) bool { return bytes.Compare(a.key, b.key) < 0 }

type trees [engines.NumKeyspaces]*btree.BTreeG[item]

func newTrees() trees {
	var t trees
	for i := range t {
		t[i] = btree.NewG(degree, less)
	}
	return t
}

// clone returns O(1) copy-on-write clones. Clone modifies the source tree's
// copy-on-write bookkeeping, so callers hold the store's write lock.
func (t *trees) clone() trees {
	var c trees
	for i := range t {
		c[i] = t[i].Clone()
	}
	return c
}

type recoveryPoint struct {
	id        uint64
	meta      []byte
	trees     trees
	liveBytes int64
}

// Store is the memory engine's engines.Store.
type Store struct {
	dir string

	// mu guards everything below. Apply, Clone (views, recovery points) and
	// rollback take it exclusively; Get shares it.
	mu        sync.RWMutex
	closed    bool
	trees     trees
	liveBytes int64 // key+value bytes currently stored, all keyspaces
	rps       []recoveryPoint
}

var _ engines.Store = (*Store)(nil)

// Open claims dir (see engines.ClaimDir) and returns an empty store.
func Open(dir string, opts engines.Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("memory: open %q: %w", dir, err)
	}
	if len(opts.Extra) > 0 {
		keys := make([]string, 0, len(opts.Extra))
		for k := range opts.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("memory: open %q: unknown engine option(s) %s (the memory engine takes none)", dir, strings.Join(keys, ", "))
	}
	if _, err := engines.ClaimDir(dir, Name); err != nil {
		return nil, fmt.Errorf("memory: open: %w", err)
	}
	return &Store{dir: dir, trees: newTrees()}, nil
}

func checkBatch(b *engines.Batch) error {
	for i := 0; i < b.Len(); i++ {
		op := b.Op(i)
		if op.Keyspace >= engines.NumKeyspaces {
			return fmt.Errorf("memory: batch op %d: invalid %v", i, op.Keyspace)
		}
		if op.Kind != engines.OpSet && op.Kind != engines.OpDelete {
			return fmt.Errorf("memory: batch op %d: invalid op kind %d", i, op.Kind)
		}
	}
	return nil
}

// Apply applies b's operations in order under the write lock. Durability is
// meaningless for a store that keeps nothing and is ignored.
func (s *Store) Apply(b *engines.Batch, _ engines.Durability) error {
	if err := checkBatch(b); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory: apply to %q: %w", s.dir, engines.ErrClosed)
	}
	for i := 0; i < b.Len(); i++ {
		op := b.Op(i)
		t := s.trees[op.Keyspace]
		switch op.Kind {
		case engines.OpSet:
			// The batch's buffer is reused by the caller: copy key and
			// value into one allocation.
			buf := make([]byte, len(op.Key)+len(op.Value))
			n := copy(buf, op.Key)
			copy(buf[n:], op.Value)
			it := item{key: buf[:n:n], value: buf[n:]}
			if old, ok := t.ReplaceOrInsert(it); ok {
				s.liveBytes -= int64(len(old.key) + len(old.value))
			}
			s.liveBytes += int64(len(it.key) + len(it.value))
		case engines.OpDelete:
			if old, ok := t.Delete(item{key: op.Key}); ok {
				s.liveBytes -= int64(len(old.key) + len(old.value))
			}
		}
	}
	return nil
}

// Get returns a copy of key's value in ks.
func (s *Store) Get(ks engines.Keyspace, key []byte) ([]byte, bool, error) {
	if ks >= engines.NumKeyspaces {
		return nil, false, fmt.Errorf("memory: get: invalid %v", ks)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, false, fmt.Errorf("memory: get from %q: %w", s.dir, engines.ErrClosed)
	}
	it, ok := s.trees[ks].Get(item{key: key})
	if !ok {
		return nil, false, nil
	}
	return slices.Clone(it.value), true, nil
}

// NewView clones the trees: the view is unaffected by later writes and pins
// only the tree nodes later writes copy.
func (s *Store) NewView() (engines.View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("memory: new view of %q: %w", s.dir, engines.ErrClosed)
	}
	return &view{trees: s.trees.clone()}, nil
}

// CreateRecoveryPoint keeps a clone of the trees under id, in memory only.
func (s *Store) CreateRecoveryPoint(id uint64, meta []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory: recovery point %d of %q: %w", id, s.dir, engines.ErrClosed)
	}
	if n := len(s.rps); n > 0 && id <= s.rps[n-1].id {
		return fmt.Errorf("memory: recovery point %d of %q: ids must increase (newest is %d)", id, s.dir, s.rps[n-1].id)
	}
	s.rps = append(s.rps, recoveryPoint{id: id, meta: slices.Clone(meta), trees: s.trees.clone(), liveBytes: s.liveBytes})
	return nil
}

// RecoveryPoints lists the retained recovery points, oldest first.
func (s *Store) RecoveryPoints() ([]engines.RecoveryPoint, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("memory: recovery points of %q: %w", s.dir, engines.ErrClosed)
	}
	out := make([]engines.RecoveryPoint, len(s.rps))
	for i, rp := range s.rps {
		out[i] = engines.RecoveryPoint{ID: rp.id, Meta: slices.Clone(rp.meta)}
	}
	return out, nil
}

func (s *Store) findLocked(id uint64) (int, error) {
	i, ok := slices.BinarySearchFunc(s.rps, id, func(rp recoveryPoint, id uint64) int {
		switch {
		case rp.id < id:
			return -1
		case rp.id > id:
			return 1
		}
		return 0
	})
	if !ok {
		return 0, fmt.Errorf("memory: recovery point %d of %q: %w", id, s.dir, engines.ErrNoRecoveryPoint)
	}
	return i, nil
}

// RollbackTo makes the trees clones of recovery point id's and drops the
// newer points.
func (s *Store) RollbackTo(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory: rollback %q to %d: %w", s.dir, id, engines.ErrClosed)
	}
	i, err := s.findLocked(id)
	if err != nil {
		return err
	}
	s.trees = s.rps[i].trees.clone()
	s.liveBytes = s.rps[i].liveBytes
	s.rps = s.rps[:i+1]
	return nil
}

// DropRecoveryPoint forgets recovery point id.
func (s *Store) DropRecoveryPoint(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory: drop recovery point %d of %q: %w", id, s.dir, engines.ErrClosed)
	}
	i, err := s.findLocked(id)
	if err != nil {
		return err
	}
	s.rps = slices.Delete(s.rps, i, i+1)
	return nil
}

// Metrics reports the marker's disk use, no engine writes, and the live
// key and value bytes as memory (tree overhead not counted).
func (s *Store) Metrics() (engines.Metrics, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return engines.Metrics{}, fmt.Errorf("memory: metrics of %q: %w", s.dir, engines.ErrClosed)
	}
	disk, err := engines.DiskUsage(s.dir)
	if err != nil {
		return engines.Metrics{}, fmt.Errorf("memory: %w", err)
	}
	m := engines.Metrics{
		DiskBytes:          disk,
		EngineBytesWritten: -1,
		MemoryBytes:        s.liveBytes,
		Extra: map[string]float64{
			"recovery_points": float64(len(s.rps)),
		},
	}
	for ks := engines.Keyspace(0); ks < engines.NumKeyspaces; ks++ {
		m.Extra[ks.String()+"_entries"] = float64(s.trees[ks].Len())
	}
	return m, nil
}

// Close drops the contents and the recovery points. Views taken before
// Close keep working: they own their clones.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory: close %q: %w", s.dir, engines.ErrClosed)
	}
	s.closed = true
	s.trees = trees{}
	s.rps = nil
	return nil
}

// Destroy closes the store and removes its directory.
func (s *Store) Destroy() error {
	s.mu.Lock()
	s.closed = true
	s.trees = trees{}
	s.rps = nil
	s.mu.Unlock()
	if err := engines.RemoveStoreDir(s.dir, Name); err != nil {
		return fmt.Errorf("memory: destroy: %w", err)
	}
	return nil
}

type view struct {
	mu     sync.Mutex
	trees  trees
	closed bool
}

func (v *view) tree(ks engines.Keyspace) (*btree.BTreeG[item], error) {
	if ks >= engines.NumKeyspaces {
		return nil, fmt.Errorf("memory: view: invalid %v", ks)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil, fmt.Errorf("memory: view: %w", engines.ErrClosed)
	}
	return v.trees[ks], nil
}

func (v *view) Get(ks engines.Keyspace, key []byte) ([]byte, bool, error) {
	t, err := v.tree(ks)
	if err != nil {
		return nil, false, err
	}
	it, ok := t.Get(item{key: key})
	if !ok {
		return nil, false, nil
	}
	return slices.Clone(it.value), true, nil
}

func (v *view) NewIter(ks engines.Keyspace, lower, upper []byte) (engines.Iterator, error) {
	t, err := v.tree(ks)
	if err != nil {
		return nil, err
	}
	return &iter{t: t, lower: slices.Clone(lower), upper: slices.Clone(upper)}, nil
}

func (v *view) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return fmt.Errorf("memory: close view: %w", engines.ErrClosed)
	}
	v.closed = true
	v.trees = trees{}
	return nil
}

// chunk is how many items an iterator copies out of the tree per descent:
// btree has callbacks, not cursors, so the iterator refills a small buffer
// from the last key it returned.
const chunk = 128

type iter struct {
	t            *btree.BTreeG[item]
	lower, upper []byte
	buf          []item
	pos          int
	exhausted    bool // no items beyond buf
	closed       bool
}

// fill loads up to chunk items ≥ from (> from when after), within bounds.
func (it *iter) fill(from []byte, after bool) {
	it.buf, it.pos = it.buf[:0], 0
	if it.lower != nil && bytes.Compare(from, it.lower) < 0 {
		from, after = it.lower, false
	}
	it.exhausted = true
	it.t.AscendGreaterOrEqual(item{key: from}, func(x item) bool {
		if after && bytes.Equal(x.key, from) {
			return true
		}
		if it.upper != nil && bytes.Compare(x.key, it.upper) >= 0 {
			return false
		}
		if len(it.buf) == chunk {
			it.exhausted = false
			return false
		}
		it.buf = append(it.buf, x)
		return true
	})
}

func (it *iter) First() bool {
	it.fill(it.lower, false)
	return it.Valid()
}

func (it *iter) SeekGE(key []byte) bool {
	it.fill(key, false)
	return it.Valid()
}

func (it *iter) Next() bool {
	if !it.Valid() {
		return false
	}
	it.pos++
	if it.pos == len(it.buf) && !it.exhausted {
		it.fill(it.buf[len(it.buf)-1].key, true)
	}
	return it.Valid()
}

func (it *iter) Valid() bool   { return !it.closed && it.pos < len(it.buf) }
func (it *iter) Key() []byte   { return it.buf[it.pos].key }
func (it *iter) Value() []byte { return it.buf[it.pos].value }
func (it *iter) Err() error    { return nil }

func (it *iter) Close() error {
	it.closed = true
	it.buf = nil
	return nil
}
