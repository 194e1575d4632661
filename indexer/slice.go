package indexer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/projector/collate"
	"github.com/idxbench/idxbench/workload/upr"
)

// Meta keyspace keys.
var (
	// metaTS holds the timestamp vector the slice's contents correspond
	// to; every applied batch rewrites it.
	metaTS = []byte("ts")
	// metaSnapshots holds the ids of the retained recovery points
	// (uvarint count, then uvarint ids), rewritten before each new one.
	metaSnapshots = []byte("snapshots")
)

// appendMainKey appends a main-keyspace key: the encoded secondary key, the
// document id and the id's length as a big-endian uint16, so the entry can
// be split again without decoding the key.
func appendMainKey(dst, encKey, docid []byte) []byte {
	dst = append(dst, encKey...)
	dst = append(dst, docid...)
	return binary.BigEndian.AppendUint16(dst, uint16(len(docid)))
}

// splitMainKey is the inverse of appendMainKey.
func splitMainKey(k []byte) (encKey, docid []byte, err error) {
	if len(k) < 2 {
		return nil, nil, fmt.Errorf("main key %q too short", k)
	}
	n := int(binary.BigEndian.Uint16(k[len(k)-2:]))
	if len(k) < 2+n {
		return nil, nil, fmt.Errorf("main key %q: docid length %d too long", k, n)
	}
	return k[:len(k)-2-n], k[len(k)-2-n : len(k)-2], nil
}

// slice is one partition of an index instance: one Store. The flusher is its
// only writer; scans read it through views held by snapshots.
type slice struct {
	name    string // "<index>/p<N>", for errors
	dir     string
	primary bool
	store   engines.Store

	// Writer state: owned by the slice's running flush job, or, when no
	// job runs, by whoever holds the flush lock.
	ts      *upr.TsVbuuid // what the contents correspond to
	work    []item        // this flush's key versions, vb by vb
	batch   engines.Batch
	pending map[string][]byte // this flush's back-index values; nil = absent
	keyBuf  []byte
	mainBuf []byte
	cache   *backCache // nil when Config.BackIndexCacheBytes is 0
	rps     []uint64   // retained recovery points, oldest first
	nextRP  uint64
	failed  error // a flush job failed: the contents are unknown

	// Dispatch state (the flush lock guards it): what the jobs handed out
	// so far leave behind. tail is closed when the last job handed out is
	// done (nil: none was).
	dirty   bool // changed since the last in-memory snapshot
	unsaved bool // changed since the last recovery point
	tail    chan struct{}
	spares  [][]item // emptied job buffers to reuse; ix.mu guards it
	lastJob int      // key versions in the last job handed out; ix.mu guards it

	// Open views: a slice is destroyed or rolled back only after the
	// last one closes.
	mu      sync.Mutex
	views   int
	drained chan struct{} // closed when views drops to 0, if someone waits

	// rebuilt is why openSlice found the store damaged and replaced it by
	// an empty one (nil when it did not).
	rebuilt error
}

// damaged reports whether err says a store's files are damaged, as opposed
// to a transient failure (a full disk, an I/O error, a lock): only damage
// justifies throwing a store away.
func damaged(err error) bool {
	return errors.Is(err, engines.ErrCorrupt) && !engines.Transient(err)
}

// openSlice opens the slice's store. A store the engine finds damaged —
// on open, or reading the slice's vector or recovery points — is replaced
// by an empty one (replaceWithEmpty: only a directory carrying the
// engine's marker is removed), so the slice starts over at the zero vector
// and the streams replay it; s.rebuilt says why. Any other failure is
// returned, naming the slice.
func openSlice(cfg *Config, name, dir string, primary bool) (*slice, error) {
	if err := removeLeftovers(dir, cfg.Engine.Name); err != nil {
		return nil, fmt.Errorf("open slice %q: %w", name, err)
	}
	s, err := loadSlice(cfg, name, dir, primary, nil)
	if err == nil || !damaged(err) {
		return s, err
	}
	st, rerr := replaceWithEmpty(cfg, dir, nil)
	if rerr != nil {
		return nil, fmt.Errorf("open slice %q: %w; rebuilding it failed: %w", name, err, rerr)
	}
	s, rerr = loadSlice(cfg, name, dir, primary, st)
	if rerr != nil {
		return nil, fmt.Errorf("open slice %q: rebuilt after %v: %w", name, err, rerr)
	}
	s.rebuilt = err
	return s, nil
}

// loadSlice opens the store in dir (unless st is already open) and reads
// the slice's vector and recovery points from it, then, for a store that
// held a vector already, runs the checks Config.VerifyOnOpen asks for. On
// failure st is closed.
func loadSlice(cfg *Config, name, dir string, primary bool, st engines.Store) (*slice, error) {
	existing := st == nil // not the empty store of a rebuild
	if st == nil {
		var err error
		if st, err = cfg.Engine.Open(dir, cfg.EngineOptions); err != nil {
			return nil, fmt.Errorf("open slice %q: %w", name, err)
		}
	}
	s := &slice{name: name, dir: dir, primary: primary, store: st, ts: upr.NewTsVbuuid(cfg.NumVbuckets), nextRP: 1}
	fail := func(err error) (*slice, error) {
		return nil, errors.Join(fmt.Errorf("open slice %q: %w", name, err), closeQuiet(st, err))
	}
	b, ok, err := st.Get(engines.Meta, metaTS)
	if err != nil {
		return fail(err)
	}
	// A store that never applied a batch is empty: its cache is complete.
	if !primary {
		s.cache = newBackCache(cfg.BackIndexCacheBytes, !ok)
	}
	if ok {
		if err := s.ts.UnmarshalBinary(b); err != nil {
			// The store read back a vector it never wrote.
			return fail(fmt.Errorf("meta %q: %w: %w", metaTS, engines.ErrCorrupt, err))
		}
		if s.ts.Len() != cfg.NumVbuckets {
			return fail(fmt.Errorf("store is over %d vbuckets, the indexer over %d", s.ts.Len(), cfg.NumVbuckets))
		}
	}
	rps, err := st.RecoveryPoints()
	if err != nil {
		return fail(err)
	}
	for _, rp := range rps {
		s.rps = append(s.rps, rp.ID)
		s.nextRP = max(s.nextRP, rp.ID+1)
	}
	if existing && ok {
		if err := verifySlice(cfg, s); err != nil {
			return nil, errors.Join(err, closeQuiet(st, err))
		}
	}
	return s, nil
}

// closeQuiet closes a store that failed with cause; a close error that
// only repeats a failure (the store is damaged, or refuses every call) is
// dropped.
func closeQuiet(st engines.Store, cause error) error {
	err := st.Close()
	if err == nil || damaged(cause) || errors.Is(err, engines.ErrFailed) {
		return nil
	}
	return err
}

// newView returns a view counted against the slice.
func (s *slice) newView() (*viewRef, error) {
	v, err := s.store.NewView()
	if err != nil {
		return nil, fmt.Errorf("slice %q: new view: %w", s.name, err)
	}
	s.mu.Lock()
	s.views++
	s.mu.Unlock()
	r := &viewRef{view: v, slice: s}
	r.refs.Store(1)
	return r, nil
}

func (s *slice) viewClosed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.views--
	if s.views == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// noViews returns a channel closed once no view of the slice is open.
func (s *slice) noViews() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	if s.views == 0 {
		close(ch)
		return ch
	}
	if s.drained == nil {
		s.drained = ch
	}
	return s.drained
}

// flushResult counts what one slice flush did.
type flushResult struct {
	applied int // data key versions applied
	changed int // of which changed the index
}

// apply writes s.work into the store, up to target, in batches of at most
// batchSize operations, each also recording the vector reached. Key
// versions for one document apply in order and see each other: a
// per-flush map of back-index values shadows the store.
func (s *slice) apply(target *upr.TsVbuuid, batchSize int, d engines.Durability) (flushResult, error) {
	var res flushResult
	if s.pending == nil {
		s.pending = make(map[string][]byte)
	}
	clear(s.pending)
	defer clear(s.pending)
	s.batch.Reset()
	reached := s.ts.Clone()
	commit := func(final bool) error {
		if final {
			reached = target
		}
		meta, err := reached.MarshalBinary()
		if err != nil {
			return err
		}
		s.batch.Set(engines.Meta, metaTS, meta)
		if err := s.store.Apply(&s.batch, d); err != nil {
			return fmt.Errorf("slice %q: apply: %w", s.name, err)
		}
		s.batch.Reset()
		s.ts = reached.Clone()
		return nil
	}
	for i := range s.work {
		it := &s.work[i]
		if i > 0 && s.work[i-1].vb != it.vb {
			setPoint(reached, int(s.work[i-1].vb), pointOf(target, int(s.work[i-1].vb)))
		}
		changed, err := s.applyOne(it)
		if err != nil {
			return res, err
		}
		res.applied++
		if changed {
			res.changed++
		}
		if s.batch.Len() >= batchSize {
			p := pointOf(target, int(it.vb))
			p.seqno = it.seqno
			setPoint(reached, int(it.vb), p)
			if err := commit(false); err != nil {
				return res, err
			}
		}
	}
	if err := commit(true); err != nil {
		return res, err
	}
	return res, nil
}

// applyOne adds the operations of one key version to the batch and reports
// whether it changes the index.
func (s *slice) applyOne(it *item) (bool, error) {
	if len(it.docid) > 0xFFFF {
		return false, fmt.Errorf("slice %q: docid of %d bytes is too long", s.name, len(it.docid))
	}
	if s.primary {
		key := it.key
		if it.cmd != projector.Upsert || key == nil {
			var err error
			if s.keyBuf, err = collate.AppendComposite(s.keyBuf[:0], []any{string(it.docid)}); err != nil {
				return false, err
			}
			key = s.keyBuf
		}
		s.mainBuf = appendMainKey(s.mainBuf[:0], key, it.docid)
		if it.cmd == projector.Upsert {
			s.batch.Set(engines.Main, s.mainBuf, nil)
		} else {
			s.batch.Delete(engines.Main, s.mainBuf)
		}
		return true, nil
	}

	old, ok := s.pending[string(it.docid)]
	if !ok {
		old, ok = s.cache.get(it.docid)
	}
	if !ok {
		v, found, err := s.store.Get(engines.Back, it.docid)
		if err != nil {
			return false, fmt.Errorf("slice %q: back index of %q: %w", s.name, it.docid, err)
		}
		if found {
			old = v
			s.cache.put(it.docid, v)
		}
	}
	exists := old != nil
	switch it.cmd {
	case projector.Upsert:
		if it.key == nil {
			return false, fmt.Errorf("slice %q: upsert of %q at vb %d seqno %d has no key", s.name, it.docid, it.vb, it.seqno)
		}
		if exists && bytes.Equal(old, it.key) {
			return false, nil
		}
		if exists {
			s.keyBuf = appendMainKey(s.keyBuf[:0], old, it.docid)
			s.batch.Delete(engines.Main, s.keyBuf)
		}
		s.keyBuf = appendMainKey(s.keyBuf[:0], it.key, it.docid)
		s.batch.Set(engines.Main, s.keyBuf, nil)
		s.batch.Set(engines.Back, it.docid, it.key)
		s.pending[string(it.docid)] = it.key
		s.cache.put(it.docid, it.key)
		return true, nil
	case projector.Deletion, projector.UpsertDeletion:
		if !exists {
			return false, nil
		}
		s.keyBuf = appendMainKey(s.keyBuf[:0], old, it.docid)
		s.batch.Delete(engines.Main, s.keyBuf)
		s.batch.Delete(engines.Back, it.docid)
		s.pending[string(it.docid)] = nil
		s.cache.put(it.docid, nil)
		return true, nil
	}
	return false, fmt.Errorf("slice %q: unexpected command %v", s.name, it.cmd)
}

// persist writes the recovery-point list and creates recovery point at ts,
// then drops the oldest beyond keep.
func (s *slice) persist(ts *upr.TsVbuuid, keep int, d engines.Durability) error {
	id := s.nextRP
	ids := append(s.rps[:len(s.rps):len(s.rps)], id)
	// The list names what will be retained once the oldest are dropped.
	retained := ids[max(0, len(ids)-keep):]
	var list []byte
	list = binary.AppendUvarint(list, uint64(len(retained)))
	for _, x := range retained {
		list = binary.AppendUvarint(list, x)
	}
	s.batch.Reset()
	s.batch.Set(engines.Meta, metaSnapshots, list)
	if err := s.store.Apply(&s.batch, d); err != nil {
		return fmt.Errorf("slice %q: write snapshot list: %w", s.name, err)
	}
	s.batch.Reset()
	meta, err := ts.MarshalBinary()
	if err != nil {
		return err
	}
	if err := s.store.CreateRecoveryPoint(id, meta); err != nil {
		return fmt.Errorf("slice %q: create recovery point %d: %w", s.name, id, err)
	}
	s.nextRP++
	s.rps = ids
	for len(s.rps) > keep {
		if err := s.store.DropRecoveryPoint(s.rps[0]); err != nil {
			return fmt.Errorf("slice %q: drop recovery point %d: %w", s.name, s.rps[0], err)
		}
		s.rps = s.rps[1:]
	}
	return nil
}
