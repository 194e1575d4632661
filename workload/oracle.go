package workload

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// ErrVectorAhead is returned (wrapped) for a vector with a seqno above its
// vbucket's high seqno: a replica bucket that has not caught up with the
// bucket the vector was read from yet (Bucket.WaitSeqnos), or a wrong vector.
var ErrVectorAhead = errors.New("vector is ahead of the bucket")

// Oracle answers "what must this index hold at this vector" from the
// bucket's history alone. It shares no code with the projector or the
// indexer: it decodes bodies with encoding/json and evaluates field paths
// and WHERE filters itself (only the WHERE grammar, defn.ParseWhere, is
// shared).
//
// The rules, which the projector implements independently:
//   - a document at vector ts is its latest version with seqno ≤ ts[vb] on
//     the current history; a deletion or expiration there means absent;
//   - primary index: Key = []any{docid};
//   - secondary index: each key expression is a dotted field path into
//     nested objects (arrays are whole values; a path through a non-object
//     is missing); no entry if the WHERE is false or the leading expression
//     is missing; else one value per expression, defn.Missing for a
//     missing non-leading one. JSON numbers are float64.
//
// WHERE comparisons hold only between a present field and a literal of the
// same kind (null, bool, number, string), compared within that kind: null
// equals null, false < true, numbers numerically, strings bytewise.
type Oracle struct {
	b *Bucket
}

// NewOracle returns an oracle over b.
func NewOracle(b *Bucket) *Oracle { return &Oracle{b: b} }

// Expected returns the entries index d must hold at vector ts, sorted by
// DocID. ts must cover every vbucket, and per vbucket name a branch of the
// current history (vbuuid 0 means the current branch) with a seqno at or
// below that branch's end and, unless 0, not below a Forget point.
//
// It walks the whole bucket: for one answer per phase. A View answers
// scans at many vectors, each at the cost of the scan.
func (o *Oracle) Expected(d defn.IndexDefn, ts *upr.TsVbuuid) ([]defn.Entry, error) {
	ci, err := compileIndex(d)
	if err != nil {
		return nil, err
	}
	docs, err := o.docsAt(ts)
	if err != nil {
		return nil, fmt.Errorf("oracle: index %q: %w", d.Name, err)
	}
	var out []defn.Entry
	for _, it := range docs {
		if key, ok := ci.key(it.id, decodeBody(it.body)); ok {
			out = append(out, defn.Entry{Key: key, DocID: it.id})
		}
	}
	slices.SortFunc(out, func(a, b defn.Entry) int { return strings.Compare(a.DocID, b.DocID) })
	return out, nil
}

// compiledIndex is an index definition ready to evaluate on documents.
type compiledIndex struct {
	d     defn.IndexDefn
	where []compiledCond
	paths [][]string
}

type compiledCond struct {
	defn.Cond
	path []string
}

func compileIndex(d defn.IndexDefn) (*compiledIndex, error) {
	where, err := defn.ParseWhere(d.Where)
	if err != nil {
		return nil, fmt.Errorf("oracle: index %q: %w", d.Name, err)
	}
	ci := &compiledIndex{d: d}
	for _, c := range where {
		ci.where = append(ci.where, compiledCond{c, strings.Split(c.Path, ".")})
	}
	for _, e := range d.SecExprs {
		ci.paths = append(ci.paths, strings.Split(e, "."))
	}
	return ci, nil
}

// decodeBody decodes a document body. A body that is not JSON has no
// fields: every path is missing.
func decodeBody(body []byte) any {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil
	}
	return doc
}

// key is the index key of document id with decoded body doc; ok is false
// when the document has no entry in the index.
func (ci *compiledIndex) key(id string, doc any) (key []any, ok bool) {
	if ci.d.IsPrimary {
		return []any{id}, true
	}
	if !whereHolds(ci.where, doc) {
		return nil, false
	}
	key = make([]any, len(ci.paths))
	for i, p := range ci.paths {
		v, ok := lookup(doc, p)
		if !ok {
			if i == 0 {
				return nil, false
			}
			v = defn.Missing
		}
		key[i] = v
	}
	return key, true
}

// Forget lets the bucket deduplicate history below below (Bucket.Compact):
// answers for vectors ≥ below stay exact, memory stays bounded. Streams
// starting below it then receive deduplicated snapshots, as from KV.
func (o *Oracle) Forget(below *upr.TsVbuuid) { o.b.Compact(below) }

// liveDoc is a document's id and body at some vector.
type liveDoc struct {
	id   string
	body []byte
}

// docsAt collects the live documents at ts. Their bodies are immutable, so
// they are decoded after the bucket's lock is released.
func (o *Oracle) docsAt(ts *upr.TsVbuuid) ([]liveDoc, error) {
	b := o.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.checkVectorLocked(ts); err != nil {
		return nil, err
	}
	var docs []liveDoc
	for vb := range b.vbs {
		v := &b.vbs[vb]
		s := ts.Seqnos[vb]
		if s == 0 {
			continue // nothing at seqno 0, on any branch
		}
		for _, it := range b.dedupLocked(&v.items, v.items.find(s+1)) {
			if it.op == upr.OpMutation {
				docs = append(docs, liveDoc{string(b.arena.key(&it)), b.arena.value(&it)})
			}
		}
	}
	return docs, nil
}

// checkVectorLocked checks ts names, per vbucket, a seqno on a branch of
// the current history at or below that branch's end and not below
// compacted history.
func (b *Bucket) checkVectorLocked(ts *upr.TsVbuuid) error {
	if ts.Len() != len(b.vbs) {
		return fmt.Errorf("vector has %d vbuckets, bucket %d", ts.Len(), len(b.vbs))
	}
	for vb := range b.vbs {
		v := &b.vbs[vb]
		s, u := ts.Seqnos[vb], ts.Vbuuids[vb]
		if s > v.high {
			return fmt.Errorf("vb %d: seqno %d is above the high seqno %d: %w", vb, s, v.high, ErrVectorAhead)
		}
		if u != 0 && u != v.log[0].Vbuuid {
			i := slices.IndexFunc(v.log, func(e upr.FailoverEntry) bool { return e.Vbuuid == u })
			if i < 0 {
				return fmt.Errorf("vb %d: vbuuid %d is not in the failover log", vb, u)
			}
			if i > 0 && s > v.log[i-1].Seqno {
				return fmt.Errorf("vb %d: seqno %d is past the end %d of branch %d", vb, s, v.log[i-1].Seqno, u)
			}
		}
		if s != 0 && s < v.compacted {
			return fmt.Errorf("vb %d: seqno %d is below the forgotten history (up to %d)", vb, s, v.compacted)
		}
	}
	return nil
}

// lookup walks a dotted path through nested objects.
func lookup(doc any, path []string) (any, bool) {
	v := doc
	for _, name := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[name]; !ok {
			return nil, false
		}
	}
	return v, true
}

func whereHolds(w []compiledCond, doc any) bool {
	for _, c := range w {
		v, ok := lookup(doc, c.path)
		switch c.Op {
		case "missing":
			if ok {
				return false
			}
			continue
		case "exists":
			if !ok {
				return false
			}
			continue
		}
		if !ok {
			return false
		}
		cmp, same := compareSameKind(v, c.Value)
		if !same {
			return false
		}
		var holds bool
		switch c.Op {
		case "=":
			holds = cmp == 0
		case "!=":
			holds = cmp != 0
		case "<":
			holds = cmp < 0
		case "<=":
			holds = cmp <= 0
		case ">":
			holds = cmp > 0
		case ">=":
			holds = cmp >= 0
		}
		if !holds {
			return false
		}
	}
	return true
}

// compareSameKind compares a document value with a literal; same is false
// when they are of different kinds (or the value is an array or object).
func compareSameKind(v, lit any) (cmp int, same bool) {
	switch l := lit.(type) {
	case nil:
		return 0, v == nil
	case bool:
		x, ok := v.(bool)
		if !ok {
			return 0, false
		}
		switch {
		case x == l:
			return 0, true
		case !x:
			return -1, true
		}
		return 1, true
	case float64:
		x, ok := v.(float64)
		if !ok {
			return 0, false
		}
		switch {
		case x < l:
			return -1, true
		case x > l:
			return 1, true
		}
		return 0, true
	case string:
		x, ok := v.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(x, l), true
	}
	return 0, false
}
