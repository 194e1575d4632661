package indexer

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

func wantEntries(t *testing.T, got *ScanResult, want []defn.Entry) {
	t.Helper()
	if len(want) == 0 && len(got.Entries) == 0 {
		return
	}
	if !reflect.DeepEqual(got.Entries, want) {
		t.Fatalf("entries at %v:\n got  %s\n want %s", got.TS.Seqnos, fmtEntries(got.Entries), fmtEntries(want))
	}
	if got.Count != len(want) {
		t.Fatalf("count = %d, want %d", got.Count, len(want))
	}
}

// TestBackIndex walks one document through the upsert/deletion paths of a
// secondary index: index, change, no-op re-upsert, remove (field missing),
// restore, delete, delete of a never-indexed document, and several versions
// of one document inside one flush.
func TestBackIndex(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engines.Engine) {
		ix := newTestIndexer(t, e, Config{NumVbuckets: 4})
		mustCreate(t, ix, 1, defn.IndexDefn{Name: "by_city", SecExprs: []string{"city"}})
		cached := newTestIndexer(t, e, Config{NumVbuckets: 4, BackIndexCacheBytes: 1 << 20})
		mustCreate(t, cached, 1, defn.IndexDefn{Name: "by_city", SecExprs: []string{"city"}})
		g := newGen(4)
		city := func(c string) target { return target{inst: 1, key: enc(t, c)} }
		gone := target{inst: 1}
		ent := func(c, doc string) defn.Entry { return defn.Entry{Key: []any{c}, DocID: doc} }

		steps := []struct {
			name string
			do   func()
			want []defn.Entry
		}{
			{"insert", func() { g.upsert("d1", city("paris")); g.upsert("d2", city("oslo")) },
				[]defn.Entry{ent("oslo", "d2"), ent("paris", "d1")}},
			{"change", func() { g.upsert("d1", city("lima")) },
				[]defn.Entry{ent("lima", "d1"), ent("oslo", "d2")}},
			{"same key", func() { g.upsert("d1", city("lima")) },
				[]defn.Entry{ent("lima", "d1"), ent("oslo", "d2")}},
			{"remove", func() { g.mutate("d1", projector.UpsertDeletion, gone) },
				[]defn.Entry{ent("oslo", "d2")}},
			{"restore", func() { g.upsert("d1", city("rome")) },
				[]defn.Entry{ent("oslo", "d2"), ent("rome", "d1")}},
			{"delete", func() { g.del("d2", gone) },
				[]defn.Entry{ent("rome", "d1")}},
			{"delete never indexed", func() { g.del("d9", gone); g.mutate("d8", projector.UpsertDeletion, gone) },
				[]defn.Entry{ent("rome", "d1")}},
			{"one flush", func() {
				g.upsert("d3", city("a"))
				g.upsert("d3", city("b"))
				g.del("d3", gone)
				g.upsert("d3", city("c"))
				g.upsert("d1", city("c"))
				g.mutate("d1", projector.UpsertDeletion, gone)
				g.upsert("d1", city("d"))
			}, []defn.Entry{ent("c", "d3"), ent("d", "d1")}},
			{"sync only", func() { g.mutate("d4", projector.Upsert) },
				[]defn.Entry{ent("c", "d3"), ent("d", "d1")}},
		}
		for _, s := range steps {
			s.do()
			b := g.batch()
			feed(t, ix, b)
			step(t, ix)
			feed(t, cached, b)
			step(t, cached)
			wantEntries(t, scanAll(t, cached, "by_city"), s.want)
			r := scanAll(t, ix, "by_city")
			wantEntries(t, r, s.want)
			if !r.TS.Equal(g.kvSeqnosAligned()) {
				t.Fatalf("%s: snapshot at %v, want %v", s.name, r.TS.Seqnos, g.seq)
			}
			wantEntries(t, r, modelEntries(t, g.log, 1, false, r.TS))
		}
		st := ix.Stats()
		if st.FlushedKeyVersions != int64(len(g.log)) {
			t.Errorf("flushed key versions = %d, want %d", st.FlushedKeyVersions, len(g.log))
		}
		if st.DocsIndexed >= st.FlushedKeyVersions {
			t.Errorf("docs indexed %d should exclude no-ops (flushed %d)", st.DocsIndexed, st.FlushedKeyVersions)
		}
	})
}

// kvSeqnosAligned is kvSeqnos with each vbucket's snapshot, as the
// snapshot vector of a fully flushed stream has it.
func (g *gen) kvSeqnosAligned() *upr.TsVbuuid {
	ts := upr.NewTsVbuuid(len(g.seq))
	for vb, s := range g.seq {
		if g.begun[vb] {
			ts.Vbuuids[vb] = vbuuidOf(upr.Vbno(vb))
		}
		ts.Seqnos[vb] = s
		if s != 0 {
			ts.Snapshots[vb] = [2]upr.Seqno{g.snapStart(vb), s}
		}
	}
	return ts
}

func (g *gen) snapStart(vb int) upr.Seqno {
	// Every snapshot gen opens on its own is one item long.
	return g.seq[vb]
}

// TestSnapshotsOnlyAligned: a flush never publishes a snapshot in the
// middle of a vbucket's snapshot.
func TestSnapshotsOnlyAligned(t *testing.T) {
	ix := newTestIndexer(t, memoryEngine(t), Config{NumVbuckets: 1})
	mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"k"}})
	g := newGen(1)
	g.marker(0, 3)
	g.upsert("a", target{inst: 1, key: enc(t, 1.0)})
	g.upsert("b", target{inst: 1, key: enc(t, 2.0)})
	feed(t, ix, g.batch())
	step(t, ix)
	if r := scanAll(t, ix, "i"); r.Count != 0 || r.TS.Seqnos[0] != 0 {
		t.Fatalf("snapshot inside [1,3]: %v at %v", fmtEntries(r.Entries), r.TS.Seqnos)
	}
	if h := ix.HWT(); h.Seqnos[0] != 2 {
		t.Fatalf("hwt = %v, want 2", h.Seqnos)
	}
	if a := ix.AlignedHWT(); a.Seqnos[0] != 0 {
		t.Fatalf("aligned hwt = %v, want 0", a.Seqnos)
	}
	g.upsert("c", target{inst: 1, key: enc(t, 3.0)})
	g.marker(0, 2)
	g.upsert("d", target{inst: 1, key: enc(t, 4.0)})
	feed(t, ix, g.batch())
	step(t, ix)
	r := scanAll(t, ix, "i")
	if r.TS.Seqnos[0] != 3 || r.TS.Snapshots[0] != [2]upr.Seqno{1, 3} || !reflect.DeepEqual(docids(r.Entries), []string{"a", "b", "c"}) {
		t.Fatalf("snapshot = %v at %v %v, want a b c at 3 in [1,3]", docids(r.Entries), r.TS.Seqnos, r.TS.Snapshots)
	}
	if st := ix.Stats(); st.DocsQueued != 1 || st.NumSnapshots != 1 {
		t.Fatalf("stats: queued %d snapshots %d, want 1 and 1", st.DocsQueued, st.NumSnapshots)
	}
}

// TestScanKinds checks Range inclusion on simple and composite keys,
// Lookup on a full key and a prefix, Count, Limit and partition merging.
func TestScanKinds(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engines.Engine) {
		ix := newTestIndexer(t, e, Config{NumVbuckets: 8})
		mustCreate(t, ix, 1, defn.IndexDefn{Name: "by_age_city", SecExprs: []string{"age", "city"}, Partitions: 3})
		mustCreate(t, ix, 2, defn.IndexDefn{Name: "by_age", SecExprs: []string{"age"}})
		g := newGen(8)
		// Ages 10..19, two cities each; composite entries spread over 3
		// partitions by docid.
		var all []defn.Entry
		for age := 10; age < 20; age++ {
			for _, c := range []string{"x", "y"} {
				doc := fmt.Sprintf("d%d%s", age, c)
				p := (age + len(c)) % 3
				if c == "y" {
					p = (p + 1) % 3
				}
				g.upsert(doc, target{inst: 1, part: p, key: enc(t, float64(age), c)},
					target{inst: 2, key: enc(t, float64(age))})
				all = append(all, defn.Entry{Key: []any{float64(age), c}, DocID: doc})
			}
		}
		// One more entry with an equal key on another document.
		g.upsert("e15x", target{inst: 1, part: 2, key: enc(t, 15.0, "x")}, target{inst: 2, key: enc(t, 15.0)})
		all = slices.Insert(all, 11, defn.Entry{Key: []any{15.0, "x"}, DocID: "e15x"})
		feed(t, ix, g.batch())
		step(t, ix)
		wantEntries(t, scanAll(t, ix, "by_age_city"), all)

		between := func(lo, hi float64, incl Inclusion) []defn.Entry {
			var out []defn.Entry
			for _, e := range all {
				a := e.Key[0].(float64)
				if (a > lo || a == lo && incl&IncludeLow != 0) && (a < hi || a == hi && incl&IncludeHigh != 0) {
					out = append(out, e)
				}
			}
			return out
		}
		ctx := context.Background()
		for _, incl := range []Inclusion{IncludeNeither, IncludeLow, IncludeHigh, IncludeBoth} {
			r, err := ix.Scan(ctx, ScanRequest{Index: "by_age_city", Kind: ScanRange, Low: []any{12.0}, High: []any{15.0}, Inclusion: incl})
			if err != nil {
				t.Fatal(err)
			}
			wantEntries(t, r, between(12, 15, incl))
			c, err := ix.Scan(ctx, ScanRequest{InstID: 1, Kind: ScanCount, Low: []any{12.0}, High: []any{15.0}, Inclusion: incl})
			if err != nil {
				t.Fatal(err)
			}
			if c.Count != len(between(12, 15, incl)) || c.Entries != nil {
				t.Fatalf("count %v = %d, want %d", incl, c.Count, len(between(12, 15, incl)))
			}
		}
		// Composite bounds on both components.
		r, err := ix.Scan(ctx, ScanRequest{Index: "by_age_city", Kind: ScanRange, Low: []any{12.0, "y"}, High: []any{13.0, "x"}, Inclusion: IncludeBoth})
		if err != nil {
			t.Fatal(err)
		}
		if got := docids(r.Entries); !reflect.DeepEqual(got, []string{"d12y", "d13x"}) {
			t.Fatalf("range [12 y, 13 x] = %v", got)
		}
		r, _ = ix.Scan(ctx, ScanRequest{Index: "by_age_city", Kind: ScanRange, Low: []any{12.0, "y"}, High: []any{13.0, "x"}, Inclusion: IncludeNeither})
		if r.Count != 0 {
			t.Fatalf("range (12 y, 13 x) = %v", docids(r.Entries))
		}
		// Unbounded sides.
		r, _ = ix.Scan(ctx, ScanRequest{Index: "by_age", Kind: ScanRange, High: []any{11.0}, Inclusion: IncludeHigh})
		if got := docids(r.Entries); !reflect.DeepEqual(got, []string{"d10x", "d10y", "d11x", "d11y"}) {
			t.Fatalf("range (-inf, 11] = %v", got)
		}
		r, _ = ix.Scan(ctx, ScanRequest{Index: "by_age", Kind: ScanRange, Low: []any{18.0}})
		if got := docids(r.Entries); !reflect.DeepEqual(got, []string{"d19x", "d19y"}) {
			t.Fatalf("range (18, inf) = %v", got)
		}
		// Lookups: prefix and full key.
		r, _ = ix.Scan(ctx, ScanRequest{Index: "by_age_city", Kind: ScanLookup, Equal: []any{15.0}})
		if got := docids(r.Entries); !reflect.DeepEqual(got, []string{"d15x", "e15x", "d15y"}) {
			t.Fatalf("lookup 15 = %v", got)
		}
		r, _ = ix.Scan(ctx, ScanRequest{Index: "by_age_city", Kind: ScanLookup, Equal: []any{15.0, "x"}})
		if got := docids(r.Entries); !reflect.DeepEqual(got, []string{"d15x", "e15x"}) {
			t.Fatalf("lookup 15 x = %v", got)
		}
		r, _ = ix.Scan(ctx, ScanRequest{Index: "by_age_city", Kind: ScanLookup, Equal: []any{15.0, "z"}})
		if r.Count != 0 {
			t.Fatalf("lookup 15 z = %v", docids(r.Entries))
		}
		r, _ = ix.Scan(ctx, ScanRequest{Index: "by_age", Kind: ScanCount, Equal: []any{15.0}})
		if r.Count != 3 {
			t.Fatalf("count lookup 15 = %d", r.Count)
		}
		// Limits.
		r, _ = ix.Scan(ctx, ScanRequest{Index: "by_age_city", Kind: ScanAll, Limit: 5})
		wantEntries(t, r, all[:5])
		r, _ = ix.Scan(ctx, ScanRequest{Index: "by_age_city", Kind: ScanCount, Low: []any{0.0}, Limit: 7})
		if r.Count != 7 {
			t.Fatalf("count with limit 7 = %d", r.Count)
		}
		// Unknown index.
		if _, err := ix.Scan(ctx, ScanRequest{Index: "nope", Kind: ScanAll}); !errors.Is(err, ErrNoSuchIndex) {
			t.Fatalf("scan of unknown index: %v", err)
		}
	})
}

// TestPrimary: the primary index keys by document id and needs no back
// index; deletions compute the key from the id.
func TestPrimary(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engines.Engine) {
		ix := newTestIndexer(t, e, Config{NumVbuckets: 1024})
		mustCreate(t, ix, 7, defn.IndexDefn{Name: "primary", IsPrimary: true, Partitions: 2})
		g := newGen(1024)
		pk := func(doc string, p int) target { return target{inst: 7, part: p, key: enc(t, doc)} }
		for i := range 50 {
			doc := fmt.Sprintf("doc%03d", i)
			g.upsert(doc, pk(doc, i%2))
			g.upsert(doc, pk(doc, i%2)) // re-upsert: still one entry
		}
		for i := 0; i < 50; i += 5 {
			g.del(fmt.Sprintf("doc%03d", i), target{inst: 7, part: i % 2})
		}
		g.del("never", target{inst: 7})
		feed(t, ix, g.batch())
		step(t, ix)
		r := scanAll(t, ix, "primary")
		wantEntries(t, r, modelEntries(t, g.log, 7, true, r.TS))
		if r.Count != 40 || r.Entries[0].DocID != "doc001" || r.Entries[0].Key[0] != "doc001" {
			t.Fatalf("primary: %d entries, first %v", r.Count, r.Entries[0])
		}
		lk, err := ix.Scan(context.Background(), ScanRequest{Index: "primary", Kind: ScanLookup, Equal: []any{"doc013"}})
		if err != nil || lk.Count != 1 {
			t.Fatalf("primary lookup: %v %v", lk, err)
		}
	})
}

// TestDropInstance: a dropped index disappears from scans, its queued key
// versions are skipped, its stores destroyed; others are unaffected.
func TestDropInstance(t *testing.T) {
	ix := newTestIndexer(t, memoryEngine(t), Config{NumVbuckets: 2})
	mustCreate(t, ix, 1, defn.IndexDefn{Name: "a", SecExprs: []string{"k"}})
	mustCreate(t, ix, 2, defn.IndexDefn{Name: "b", SecExprs: []string{"k"}, Partitions: 2})
	if err := ix.CreateInstance(InstanceDefn{ID: 3, Defn: defn.IndexDefn{Name: "a"}}); err == nil {
		t.Fatal("duplicate name accepted")
	}
	if err := ix.CreateInstance(InstanceDefn{ID: 2, Defn: defn.IndexDefn{Name: "c"}}); err == nil {
		t.Fatal("duplicate id accepted")
	}
	if err := ix.CreateInstance(InstanceDefn{ID: 4, Defn: defn.IndexDefn{Name: "../x"}}); err == nil {
		t.Fatal("index name with a slash accepted")
	}
	g := newGen(2)
	g.upsert("d1", target{inst: 1, key: enc(t, 1.0)}, target{inst: 2, part: 1, key: enc(t, 1.0)})
	feed(t, ix, g.batch())
	step(t, ix)
	held, err := ix.acquire() // a scan in progress holds the old snapshot
	if err != nil {
		t.Fatal(err)
	}
	g.upsert("d2", target{inst: 1, key: enc(t, 2.0)}, target{inst: 2, key: enc(t, 2.0)})
	feed(t, ix, g.batch())
	dropped := make(chan error, 1)
	go func() { dropped <- ix.DropInstance(2) }()
	select {
	case err := <-dropped:
		t.Fatalf("drop returned (%v) while a scan held the index", err)
	case <-time.After(20 * time.Millisecond):
	}
	if err := held.release(); err != nil {
		t.Fatal(err)
	}
	if err := <-dropped; err != nil {
		t.Fatal(err)
	}
	step(t, ix)
	if _, err := ix.Scan(context.Background(), ScanRequest{Index: "b", Kind: ScanAll}); !errors.Is(err, ErrNoSuchIndex) {
		t.Fatalf("scan of dropped index: %v", err)
	}
	if r := scanAll(t, ix, "a"); r.Count != 2 {
		t.Fatalf("index a after dropping b: %v", docids(r.Entries))
	}
	if st := ix.Stats(); st.SkippedKeyVersions != 1 || st.Instances != 1 {
		t.Fatalf("skipped %d instances %d, want 1 and 1", st.SkippedKeyVersions, st.Instances)
	}
	if err := ix.DropInstance(2); !errors.Is(err, ErrNoSuchIndex) {
		t.Fatalf("second drop: %v", err)
	}
}
