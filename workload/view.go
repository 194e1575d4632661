package workload

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/google/btree"

	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// ErrViewStale is returned (wrapped) by View.Scan for a vector the view can
// no longer answer exactly: below its floor (Forget), on a vbucket that
// failed over since the view was built, or where the bucket compacted
// history above both the view's head and its floor. Build a new view at
// that vector.
var ErrViewStale = errors.New("oracle view cannot answer at this vector")

// View answers what a scan of an index must return at a vector, cheaply
// enough to check every scan of a benchmark: where Expected walks the whole
// bucket, a View keeps each of its indexes' entries ordered as the indexer
// orders them (CompareKeys, then document id) and multi-versioned. Every
// version of an entry holds the seqno range of its document's vbucket in
// which it is in the index, [from, to): a document lives in one vbucket, so
// at vector ts the index holds exactly the versions with
// from ≤ ts[vb] < to. A scan at ts reads the ordered range and skips the
// versions ts does not see, so it costs about what the indexer's scan
// costs.
//
// The view moves forward only: answering at a vector above its head first
// applies the bucket's mutations in between (each body decoded once for
// all indexes). Any vector between its floor and its head can be answered,
// in any order, so scans that finish out of order need no sorting. Forget
// raises the floor and drops the versions no vector at or above it can see,
// which bounds the view's memory to the live entries plus the versions
// closed since the floor.
//
// Keys come from the same rules as Expected (the oracle's own JSON walk
// and WHERE evaluation). A View is not safe for concurrent use; it reads
// the bucket under the bucket's lock, so it may run beside the bucket's
// writer and feeds.
type View struct {
	b       *Bucket
	indexes map[string]*viewIndex
	order   []*viewIndex // for applying mutations in a stable order
	// head[vb]: the bucket's mutations up to it are applied; floor[vb]: no
	// vector below it is answered any more.
	head, floor []upr.Seqno
	// gen is each vbucket's failover generation when the view was built.
	gen []uint64
	// dead[vb] holds the versions of vb closed since the floor, in the
	// order they were closed (ascending to), for Forget.
	dead     []deadQueue
	versions int
	// checked is the last vector advance accepted, and failovers the
	// bucket's count then: scans mostly read the same snapshot as the
	// one before, which needs no new look at the bucket.
	checked   *upr.TsVbuuid
	failovers uint64
	// Scratch for collecting mutations under the bucket's lock.
	buf []viewMutation
}

type viewIndex struct {
	ci   *compiledIndex
	tree *btree.BTreeG[*version]
	// cur is each document's version at the head (open: to == openSeqno).
	cur map[string]*version
}

// version is one entry of an index over the seqno range [from, to) of its
// vbucket. A version with bound ≠ 0 is a search pivot, not an entry: it
// sorts just before (-1) or just after (+1) every entry whose leading key
// components equal key.
type version struct {
	key      []any
	docid    string
	vb       upr.Vbno
	from, to upr.Seqno
	bound    int8
}

const openSeqno = upr.Seqno(math.MaxUint64)

func (e *version) visibleAt(ts []upr.Seqno) bool {
	s := ts[e.vb]
	return e.from <= s && s < e.to
}

func compareVersions(a, b *version) int {
	switch {
	case a.bound != 0:
		return boundVersus(a, b)
	case b.bound != 0:
		return -boundVersus(b, a)
	}
	if c := CompareKeys(a.key, b.key); c != 0 {
		return c
	}
	if c := strings.Compare(a.docid, b.docid); c != 0 {
		return c
	}
	return cmp.Compare(a.from, b.from)
}

// boundVersus compares pivot p with entry e.
func boundVersus(p, e *version) int {
	if c := comparePrefix(e.key, p.key); c != 0 {
		return -c
	}
	return int(p.bound)
}

type deadVersion struct {
	ix *viewIndex
	v  *version
}

// deadQueue is a FIFO of closed versions.
type deadQueue struct {
	q     []deadVersion
	start int
}

func (d *deadQueue) push(x deadVersion) { d.q = append(d.q, x) }

func (d *deadQueue) popUpTo(to upr.Seqno, f func(deadVersion)) {
	for d.start < len(d.q) && d.q[d.start].v.to <= to {
		f(d.q[d.start])
		d.q[d.start] = deadVersion{}
		d.start++
	}
	if d.start > 64 && d.start*2 >= len(d.q) {
		n := copy(d.q, d.q[d.start:])
		clear(d.q[n:])
		d.q, d.start = d.q[:n], 0
	}
}

// viewMutation is one history item read for the view; id and body are
// views of the bucket's arena, which never changes once written.
type viewMutation struct {
	vb    upr.Vbno
	seqno upr.Seqno
	op    upr.Opcode
	id    []byte
	body  []byte
}

// NewView builds a view of indexes defns at vector ts (the same
// requirements as Expected), which becomes its floor and its head.
func (o *Oracle) NewView(defns []defn.IndexDefn, ts *upr.TsVbuuid) (*View, error) {
	v := &View{b: o.b, indexes: map[string]*viewIndex{}}
	for _, d := range defns {
		ci, err := compileIndex(d)
		if err != nil {
			return nil, err
		}
		if _, dup := v.indexes[d.Name]; dup {
			return nil, fmt.Errorf("oracle view: index %q given twice", d.Name)
		}
		ix := &viewIndex{ci: ci, tree: btree.NewG(32, func(a, b *version) bool { return compareVersions(a, b) < 0 }),
			cur: map[string]*version{}}
		v.indexes[d.Name] = ix
		v.order = append(v.order, ix)
	}
	b := o.b
	n := len(b.vbs)
	v.head, v.floor, v.gen, v.dead = make([]upr.Seqno, n), make([]upr.Seqno, n), make([]uint64, n), make([]deadQueue, n)
	b.mu.Lock()
	err := b.checkVectorLocked(ts)
	if err == nil {
		for vb := range b.vbs {
			bv := &b.vbs[vb]
			v.gen[vb] = bv.gen
			s := ts.Seqnos[vb]
			v.head[vb], v.floor[vb] = s, s
			if s == 0 {
				continue
			}
			for _, it := range b.dedupLocked(&bv.items, bv.items.find(s+1)) {
				if it.op == upr.OpMutation {
					v.buf = append(v.buf, viewMutation{vb: upr.Vbno(vb), seqno: it.seqno, op: it.op,
						id: b.arena.key(&it), body: b.arena.value(&it)})
				}
			}
		}
	}
	b.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("oracle view: %w", err)
	}
	v.applyBuf()
	return v, nil
}

// applyBuf applies the collected mutations, in order per vbucket.
func (v *View) applyBuf() {
	for i := range v.buf {
		m := &v.buf[i]
		var doc any
		if m.op == upr.OpMutation {
			doc = decodeBody(m.body)
		}
		for _, ix := range v.order {
			v.apply(ix, m, doc)
		}
		*m = viewMutation{}
	}
	v.buf = v.buf[:0]
}

// apply applies one mutation (doc is its decoded body) to one index.
func (v *View) apply(ix *viewIndex, m *viewMutation, doc any) {
	var key []any
	ok := false
	if m.op == upr.OpMutation {
		key, ok = ix.ci.key(string(m.id), doc)
	}
	old := ix.cur[string(m.id)]
	if old != nil && ok && CompareKeys(old.key, key) == 0 {
		return // the entry does not change
	}
	docid := ""
	if old != nil {
		docid = old.docid
		old.to = m.seqno
		v.dead[m.vb].push(deadVersion{ix, old})
		delete(ix.cur, old.docid)
	}
	if !ok {
		return
	}
	if docid == "" {
		docid = string(m.id)
	}
	e := &version{key: key, docid: docid, vb: m.vb, from: m.seqno, to: openSeqno}
	ix.tree.ReplaceOrInsert(e)
	ix.cur[docid] = e
	v.versions++
}

// Query is a scan as the view answers it: the entries of Index whose leading
// key components lie between Low and High (nil: unbounded; each may hold
// fewer values than the key, never more), in index order, at most Limit of
// them (0: no limit). A lookup is Low = High = the key, both inclusive.
type Query struct {
	Index                       string
	Low, High                   []any
	LowInclusive, HighInclusive bool
	Limit                       int
	// CountOnly counts the entries instead of returning them.
	CountOnly bool
}

// Answer is what a scan must return. Its keys are shared with the view: the
// caller must not modify them.
type Answer struct {
	Entries []defn.Entry
	Count   int
}

// Scan answers q at vector ts, first advancing the view to ts where ts is
// ahead of it. It fails with ErrViewStale when the view cannot answer at ts
// exactly.
func (v *View) Scan(q Query, ts *upr.TsVbuuid) (Answer, error) {
	ix := v.indexes[q.Index]
	if ix == nil {
		return Answer{}, fmt.Errorf("oracle view: no index %q", q.Index)
	}
	if err := v.advance(ts); err != nil {
		return Answer{}, err
	}
	var a Answer
	if q.Limit > 0 && !q.CountOnly {
		a.Entries = make([]defn.Entry, 0, min(q.Limit, 1024))
	}
	// The first version past High ends the scan: found once, it spares a
	// key comparison per version.
	var end *version
	if q.High != nil {
		p := &version{key: q.High, bound: -1}
		if q.HighInclusive {
			p.bound = +1
		}
		ix.tree.AscendGreaterOrEqual(p, func(e *version) bool { end = e; return false })
	}
	seqnos := ts.Seqnos
	first := true
	visit := func(e *version) bool {
		if e == end {
			return false
		}
		if first {
			first = false
			if end != nil && compareVersions(end, e) < 0 {
				return false // Low is past High: an empty range
			}
		}
		if !e.visibleAt(seqnos) {
			return true
		}
		a.Count++
		if !q.CountOnly {
			a.Entries = append(a.Entries, defn.Entry{Key: e.key, DocID: e.docid})
		}
		return q.Limit <= 0 || a.Count < q.Limit
	}
	if q.Low == nil {
		ix.tree.Ascend(visit)
	} else {
		p := &version{key: q.Low, bound: -1}
		if !q.LowInclusive {
			p.bound = +1
		}
		ix.tree.AscendGreaterOrEqual(p, visit)
	}
	return a, nil
}

// advance checks ts against the bucket and the view's floor and applies
// the bucket's mutations up to ts where ts is ahead of the head.
func (v *View) advance(ts *upr.TsVbuuid) error {
	b := v.b
	if ts.Len() != len(v.head) {
		return fmt.Errorf("oracle view: vector has %d vbuckets, bucket %d", ts.Len(), len(v.head))
	}
	if c := v.checked; c != nil && b.failovers.Load() == v.failovers &&
		slices.Equal(c.Seqnos, ts.Seqnos) && slices.Equal(c.Vbuuids, ts.Vbuuids) && !v.belowFloor(ts) {
		return nil
	}
	b.mu.Lock()
	failovers := b.failovers.Load()
	var err error
	for vb := 0; err == nil && vb < len(b.vbs); vb++ {
		bv := &b.vbs[vb]
		s := ts.Seqnos[vb]
		switch {
		case bv.gen != v.gen[vb]:
			err = fmt.Errorf("vb %d failed over since the view was built: %w", vb, ErrViewStale)
		case s < v.floor[vb]:
			err = fmt.Errorf("vb %d: seqno %d is below the view's floor %d: %w", vb, s, v.floor[vb], ErrViewStale)
		case s > v.head[vb] && bv.compacted > max(v.head[vb], v.floor[vb]):
			// Deduplicated history is exact only for vectors at or
			// above it, and the floor does not promise those.
			err = fmt.Errorf("vb %d: history up to %d was compacted past the view's head %d and floor %d: %w",
				vb, bv.compacted, v.head[vb], v.floor[vb], ErrViewStale)
		}
	}
	if err == nil {
		err = b.checkVectorLocked(ts)
	}
	for vb := 0; err == nil && vb < len(b.vbs); vb++ {
		bv := &b.vbs[vb]
		if s := ts.Seqnos[vb]; s > v.head[vb] {
			for i, end := bv.items.find(v.head[vb]+1), bv.items.find(s+1); i < end; i++ {
				it := bv.items.at(i)
				v.buf = append(v.buf, viewMutation{vb: upr.Vbno(vb), seqno: it.seqno, op: it.op,
					id: b.arena.key(it), body: b.arena.value(it)})
			}
			v.head[vb] = s
		}
	}
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("oracle view: %w", err)
	}
	v.applyBuf()
	v.checked, v.failovers = ts, failovers
	return nil
}

// belowFloor reports whether ts is below the floor on some vbucket.
func (v *View) belowFloor(ts *upr.TsVbuuid) bool {
	for vb, s := range ts.Seqnos {
		if s < v.floor[vb] {
			return true
		}
	}
	return false
}

// Forget raises the floor to floor: no vector below it will be asked for,
// so the versions closed at or below it are dropped.
func (v *View) Forget(floor *upr.TsVbuuid) {
	for vb := range min(len(v.floor), floor.Len()) {
		f := floor.Seqnos[vb]
		if f <= v.floor[vb] {
			continue
		}
		v.floor[vb] = f
		v.dead[vb].popUpTo(f, func(d deadVersion) {
			d.ix.tree.Delete(d.v)
			v.versions--
		})
	}
}

// Versions is how many versions of entries the view holds, live or not.
func (v *View) Versions() int { return v.versions }
