package workload

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// viewIndexes are the default spec's indexes plus a composite one with a
// WHERE, so leading-component bounds and filtered documents are covered.
func viewIndexes() []defn.IndexDefn {
	return append(DefaultSpec().Indexes,
		defn.IndexDefn{Name: "active_city_age", SecExprs: []string{"city", "age"}, Where: "active = true"})
}

// sortedExpected is Expected in index order: the slow reference.
func sortedExpected(t testing.TB, o *Oracle, d defn.IndexDefn, ts *upr.TsVbuuid) []defn.Entry {
	t.Helper()
	es, err := o.Expected(d, ts)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(es, func(a, b defn.Entry) int {
		if c := CompareKeys(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.DocID, b.DocID)
	})
	return es
}

// reference answers q from a full index in index order.
func reference(all []defn.Entry, q Query) Answer {
	var a Answer
	for _, e := range all {
		if q.Low != nil {
			if c := comparePrefix(e.Key, q.Low); c < 0 || c == 0 && !q.LowInclusive {
				continue
			}
		}
		if q.High != nil {
			if c := comparePrefix(e.Key, q.High); c > 0 || c == 0 && !q.HighInclusive {
				continue
			}
		}
		a.Count++
		if !q.CountOnly {
			a.Entries = append(a.Entries, e)
		}
		if q.Limit > 0 && a.Count == q.Limit {
			break
		}
	}
	return a
}

// randomQuery draws a range, lookup, count or full scan of d whose bounds
// are keys (or leading components of keys) of all, or absent.
func randomQuery(r *rand.Rand, d defn.IndexDefn, all []defn.Entry) Query {
	q := Query{Index: d.Name}
	bound := func() []any {
		if len(all) == 0 || r.IntN(8) == 0 {
			return nil
		}
		k := all[r.IntN(len(all))].Key
		return k[:1+r.IntN(len(k))]
	}
	switch r.IntN(4) {
	case 0: // range
		q.Low, q.High = bound(), bound()
		if q.Low != nil && q.High != nil && CompareKeys(q.Low, q.High) > 0 {
			q.Low, q.High = q.High, q.Low
		}
		q.LowInclusive, q.HighInclusive = r.IntN(2) == 0, r.IntN(2) == 0
	case 1: // lookup
		q.Low = bound()
		q.High, q.LowInclusive, q.HighInclusive = q.Low, true, true
	case 2: // count
		q.Low, q.High, q.CountOnly = bound(), bound(), true
		q.LowInclusive, q.HighInclusive = true, true
	}
	if r.IntN(3) > 0 {
		q.Limit = 1 + r.IntN(50)
	}
	return q
}

func sameAnswer(got, want Answer) error {
	if got.Count != want.Count || len(got.Entries) != len(want.Entries) {
		return fmt.Errorf("view: %d entries, count %d; reference: %d entries, count %d",
			len(got.Entries), got.Count, len(want.Entries), want.Count)
	}
	for i := range got.Entries {
		g, w := got.Entries[i], want.Entries[i]
		if g.DocID != w.DocID || CompareKeys(g.Key, w.Key) != 0 {
			return fmt.Errorf("entry %d: view %s %v, reference %s %v", i, g.DocID, g.Key, w.DocID, w.Key)
		}
	}
	return nil
}

// randomVector is, per vbucket, a seqno in [lo, hi].
func randomVector(r *rand.Rand, b *Bucket, lo, hi *upr.TsVbuuid) *upr.TsVbuuid {
	ts := hi.Clone()
	for vb := range ts.Seqnos {
		ts.Seqnos[vb] = lo.Seqnos[vb] + upr.Seqno(r.Uint64N(uint64(hi.Seqnos[vb]-lo.Seqnos[vb])+1))
	}
	return ts
}

// TestViewMatchesExpected checks the view against the slow oracle at random
// vectors between its floor and the bucket's head, ahead of the view and
// behind it, while the bucket takes mutations, compactions below the floor
// and failovers (after which the view reports itself stale and is built
// again).
func TestViewMatchesExpected(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 7))
	spec := smallSpec(seed)
	spec.Docs = 400
	g := mustGen(t, spec)
	b := g.NewBucket(BucketOptions{SnapshotItems: 8})
	g.Load(b)
	o := NewOracle(b)
	defns := viewIndexes()
	floor := b.CurrentSeqnos()
	v, err := o.NewView(defns, floor)
	if err != nil {
		t.Fatal(err)
	}
	queries := 0
	var last *upr.TsVbuuid // the vector of the latest query
	for round := range 25 {
		for range r.IntN(300) {
			g.Apply(b, g.Next())
		}
		head := b.CurrentSeqnos()
		for range 3 {
			ts := randomVector(r, b, floor, head)
			last = ts
			for _, d := range defns {
				all := sortedExpected(t, o, d, ts)
				for range 6 {
					q := randomQuery(r, d, all)
					got, err := v.Scan(q, ts)
					if err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
					if err := sameAnswer(got, reference(all, q)); err != nil {
						t.Fatalf("round %d, index %s, query %+v at %v: %v", round, d.Name, q, ts.Seqnos, err)
					}
					queries++
				}
			}
		}
		switch r.IntN(5) {
		case 0, 1:
			// Raise the floor; versions below it go, and the bucket may
			// compact up to it.
			floor = randomVector(r, b, floor, head)
			before := v.Versions()
			v.Forget(floor)
			if v.Versions() > before {
				t.Fatalf("Forget grew the view from %d to %d versions", before, v.Versions())
			}
			if r.IntN(2) == 0 {
				b.Compact(floor)
			}
			below := floor.Clone()
			vb := r.IntN(len(below.Seqnos))
			if below.Seqnos[vb] > 0 {
				below.Seqnos[vb]--
				if _, err := v.Scan(Query{Index: defns[0].Name}, below); !errors.Is(err, ErrViewStale) {
					t.Fatalf("a vector below the floor: %v, want ErrViewStale", err)
				}
			}
		case 2:
			vb := upr.Vbno(r.IntN(b.Vbuckets()))
			branch := max(floor.Seqnos[vb], b.HighSeqno(vb)-upr.Seqno(r.IntN(5)))
			if err := b.Failover(vb, branch); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Scan(Query{Index: defns[0].Name}, last); !errors.Is(err, ErrViewStale) {
				t.Fatalf("after a failover, at the vector of the last query: %v, want ErrViewStale", err)
			}
			now := b.CurrentSeqnos()
			if _, err := v.Scan(Query{Index: defns[0].Name}, now); !errors.Is(err, ErrViewStale) {
				t.Fatalf("after a failover: %v, want ErrViewStale", err)
			}
			floor = now
			if v, err = o.NewView(defns, floor); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("%d queries agreed", queries)
}

// TestViewForgetBoundsVersions: with the floor following the head, the view
// holds about the live entries, however many mutations went by.
func TestViewForgetBoundsVersions(t *testing.T) {
	spec := smallSpec(3)
	g := mustGen(t, spec)
	b := g.NewBucket(BucketOptions{})
	g.Load(b)
	o := NewOracle(b)
	d := defn.IndexDefn{Name: "by_city", SecExprs: []string{"city"}}
	v, err := o.NewView([]defn.IndexDefn{d}, b.CurrentSeqnos())
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		for range 500 {
			g.Apply(b, g.Next())
		}
		ts := b.CurrentSeqnos()
		if _, err := v.Scan(Query{Index: d.Name, Limit: 1}, ts); err != nil {
			t.Fatal(err)
		}
		v.Forget(ts)
	}
	live, err := o.Expected(d, b.CurrentSeqnos())
	if err != nil {
		t.Fatal(err)
	}
	if v.Versions() != len(live) {
		t.Fatalf("view holds %d versions after forgetting all history, the index %d entries", v.Versions(), len(live))
	}
}

// TestCompareKeys pins the collation's corner cases; the harness checks it
// against projector/collate's encoding on random values.
func TestCompareKeys(t *testing.T) {
	ordered := []any{
		defn.Missing, nil, false, true, -1.5, -0.0, 1.0, 2.0, "", "a", "a\x00", "ab", "b",
		[]any{}, []any{1.0}, []any{1.0, "x"}, []any{2.0},
		map[string]any{}, map[string]any{"a": 1.0}, map[string]any{"a": 1.0, "b": 0.0}, map[string]any{"a": 2.0}, map[string]any{"b": 0.0},
	}
	for i := range ordered {
		for j := range ordered {
			if got, want := CompareValues(ordered[i], ordered[j]), cmpInt(i, j); got != want {
				t.Errorf("CompareValues(%#v, %#v) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	if CompareValues(0.0, -0.0) != 0 {
		t.Error("-0 and +0 differ")
	}
	if CompareKeys([]any{"a"}, []any{"a", nil}) >= 0 || comparePrefix([]any{"a", nil}, []any{"a"}) != 0 {
		t.Error("a key that is a prefix of another sorts first and matches it as a bound")
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// BenchmarkViewScan is the cost of answering one range scan of 100 entries
// at a vector the view has reached, over 20,000 documents.
func BenchmarkViewScan(b *testing.B) {
	v, keys, ts := benchView(b)
	r := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for range b.N {
		q := Query{Index: "by_city", Low: keys[r.IntN(len(keys))], LowInclusive: true, Limit: 100}
		if _, err := v.Scan(q, ts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkViewCount is the cost of counting a range between two random
// keys (a third of the index on average), as the scan phase's count scans do.
func BenchmarkViewCount(b *testing.B) {
	v, keys, ts := benchView(b)
	r := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for range b.N {
		lo, hi := keys[r.IntN(len(keys))], keys[r.IntN(len(keys))]
		if CompareKeys(lo, hi) > 0 {
			lo, hi = hi, lo
		}
		q := Query{Index: "by_city", Low: lo, High: hi, LowInclusive: true, HighInclusive: true, CountOnly: true}
		if _, err := v.Scan(q, ts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkViewAdvance is the cost per mutation of moving the view of one
// index forward (the scan phase's use): each body decoded, the entry moved.
func BenchmarkViewAdvance(b *testing.B) {
	spec := DefaultSpec()
	spec.Docs, spec.Vbuckets = 20000, 64
	g := mustGen(b, spec)
	bk := g.NewBucket(BucketOptions{})
	g.Load(bk)
	d := spec.Indexes[0]
	v, err := NewOracle(bk).NewView([]defn.IndexDefn{d}, bk.CurrentSeqnos())
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		g.Apply(bk, g.Next())
	}
	ts := bk.CurrentSeqnos()
	b.ResetTimer()
	if _, err := v.Scan(Query{Index: d.Name, Limit: 1}, ts); err != nil {
		b.Fatal(err)
	}
	v.Forget(ts)
}

func benchView(b *testing.B) (*View, [][]any, *upr.TsVbuuid) {
	spec := DefaultSpec()
	spec.Docs, spec.Vbuckets = 20000, 64
	g := mustGen(b, spec)
	bk := g.NewBucket(BucketOptions{})
	g.Load(bk)
	for range 20000 {
		g.Apply(bk, g.Next())
	}
	ts := bk.CurrentSeqnos()
	o := NewOracle(bk)
	d := spec.Indexes[0]
	v, err := o.NewView([]defn.IndexDefn{d}, ts)
	if err != nil {
		b.Fatal(err)
	}
	all, err := o.Expected(d, ts)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([][]any, len(all))
	for i, e := range all {
		keys[i] = e.Key
	}
	return v, keys, ts
}
