package projector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/idxbench/idxbench/projector/collate"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Transport that keeps every batch.
type recorder struct {
	mu      sync.Mutex
	batches []*Batch
}

func (r *recorder) Send(_ context.Context, b *Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, b)
	return nil
}

func (r *recorder) kvs() []KeyVersion {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []KeyVersion
	for _, b := range r.batches {
		out = append(out, b.KVs...)
	}
	return out
}

func (r *recorder) lines(t *testing.T) []string {
	var out []string
	for _, kv := range r.kvs() {
		out = append(out, fmtKV(t, kv))
	}
	return out
}

func fmtVal(v any) string {
	switch v := v.(type) {
	case defn.MissingValue:
		return "missing"
	case string:
		return strconv.Quote(v)
	case nil:
		return "null"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = fmtVal(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return fmt.Sprint(v)
}

// fmtKV prints a key version in the compact form the tables use.
func fmtKV(t *testing.T, kv KeyVersion) string {
	t.Helper()
	switch kv.Cmd {
	case StreamBegin, StreamEnd:
		return fmt.Sprintf("%v vb%d uuid%d", kv.Cmd, kv.Vb, kv.Vbuuid)
	case Snapshot:
		return fmt.Sprintf("%v vb%d uuid%d [%d,%d]", kv.Cmd, kv.Vb, kv.Vbuuid, kv.SnapStart, kv.SnapEnd)
	case Sync:
		return fmt.Sprintf("Sync vb%d uuid%d #%d", kv.Vb, kv.Vbuuid, kv.Seqno)
	}
	s := fmt.Sprintf("%v i%d p%d vb%d uuid%d #%d %s", kv.Cmd, kv.InstID, kv.Partition, kv.Vb, kv.Vbuuid, kv.Seqno, kv.DocID)
	if kv.Cmd == Upsert {
		vs, err := collate.Decode(kv.Key)
		if err != nil {
			t.Fatalf("decode key of %s: %v", s, err)
		}
		s += " " + fmtVal(vs)
	} else if kv.Key != nil {
		t.Errorf("%s carries a key", s)
	}
	return s
}

func mustCompile(t testing.TB, id uint64, d defn.IndexDefn) *Instance {
	t.Helper()
	in, err := Compile(id, d)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func newTestProjector(t testing.TB, n int, opts Options, insts ...*Instance) (*Projector, []*recorder) {
	t.Helper()
	recs := make([]*recorder, n)
	ts := make([]Transport, n)
	for i := range recs {
		recs[i] = &recorder{}
		ts[i] = recs[i]
	}
	p, err := New(ts, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AddInstance(insts...); err != nil {
		t.Fatal(err)
	}
	return p, recs
}

func streamBegin(vb upr.Vbno, uuid upr.Vbuuid) upr.Event {
	return upr.Event{Op: upr.OpStreamBegin, Vb: vb, FailoverLog: upr.FailoverLog{{Vbuuid: uuid}, {Vbuuid: 1}}}
}

func snapshot(vb upr.Vbno, start, end upr.Seqno) upr.Event {
	return upr.Event{Op: upr.OpSnapshot, Vb: vb, SnapStart: start, SnapEnd: end}
}

func mutation(vb upr.Vbno, seq upr.Seqno, doc, body string) upr.Event {
	return upr.Event{Op: upr.OpMutation, Vb: vb, Seqno: seq, Key: []byte(doc), Value: []byte(body), EmitNanos: int64(seq) * 100}
}

func deletion(op upr.Opcode, vb upr.Vbno, seq upr.Seqno, doc string) upr.Event {
	return upr.Event{Op: op, Vb: vb, Seqno: seq, Key: []byte(doc), EmitNanos: int64(seq) * 100}
}

func handleAll(t testing.TB, p *Projector, evs ...upr.Event) {
	t.Helper()
	ctx := context.Background()
	for i := range evs {
		if err := p.Handle(ctx, &evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func diffLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("key versions:\n got:\n  %s\n want:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestCompile(t *testing.T) {
	for _, tc := range []struct {
		id uint64
		d  defn.IndexDefn
	}{
		{0, defn.IndexDefn{Name: "x", SecExprs: []string{"a"}}},
		{1, defn.IndexDefn{Name: "x"}},
		{1, defn.IndexDefn{Name: "x", SecExprs: []string{"a..b"}}},
		{1, defn.IndexDefn{Name: "x", SecExprs: []string{"a[0]"}}},
		{1, defn.IndexDefn{Name: "x", SecExprs: []string{"a"}, Where: "b >> 1"}},
		{1, defn.IndexDefn{Name: "x", SecExprs: []string{"a"}, PartitionKey: "b c"}},
		{1, defn.IndexDefn{Name: "x", SecExprs: []string{"a"}, Partitions: -1}},
		{1, defn.IndexDefn{Name: "x", IsPrimary: true, SecExprs: []string{"a"}}},
		{1, defn.IndexDefn{Name: "x", IsPrimary: true, Where: "a = 1"}},
	} {
		if _, err := Compile(tc.id, tc.d); err == nil {
			t.Errorf("Compile(%d, %+v): want an error", tc.id, tc.d)
		} else if !strings.Contains(err.Error(), `"x"`) {
			t.Errorf("Compile error %q does not name the index", err)
		}
	}
	in := mustCompile(t, 3, defn.IndexDefn{Name: "ok", SecExprs: []string{"a.b", "c"}, Where: "d > 1", Partitions: 4, PartitionKey: "e"})
	if in.NumPartitions() != 4 || strings.Join(in.paths(), " ") != "a.b c d e" {
		t.Errorf("compiled %+v: paths %v", in, in.paths())
	}
}

func TestWhere(t *testing.T) {
	for _, tc := range []struct {
		where, doc string
		want       bool
	}{
		{"age >= 30", `{"age":30}`, true},
		{"age >= 30", `{"age":29.5}`, false},
		{"age >= 30", `{"age":"40"}`, false},
		{"age >= 30", `{}`, false},
		{"age != 30", `{}`, false},
		{"age != 30", `{"age":null}`, false},
		{"age != 30", `{"age":31}`, true},
		{"city = 'Oslo'", `{"city":"Oslo"}`, true},
		{"city < 'Oslo'", `{"city":"Lisbon"}`, true},
		{"city < 'Oslo'", `{"city":"oslo"}`, false},
		{"active = true", `{"active":true}`, true},
		{"active = true", `{"active":1}`, false},
		{"active < true", `{"active":false}`, true},
		{"x = null", `{"x":null}`, true},
		{"x = null", `{}`, false},
		{"x != null", `{"x":null}`, false},
		{"x <= null", `{"x":null}`, true},
		{"x IS MISSING", `{}`, true},
		{"x IS MISSING", `{"x":null}`, false},
		{"x IS NOT MISSING", `{"x":null}`, true},
		{"a.b = 1 AND c IS MISSING", `{"a":{"b":1}}`, true},
		{"a.b = 1 AND c IS MISSING", `{"a":{"b":1},"c":0}`, false},
		{"tags = 'x'", `{"tags":["x"]}`, false},
	} {
		in := mustCompile(t, 1, defn.IndexDefn{Name: "w", SecExprs: []string{"k"}, Where: tc.where})
		body := `{"k":1` + strings.TrimPrefix(tc.doc, "{")
		if tc.doc != "{}" {
			body = `{"k":1,` + strings.TrimPrefix(tc.doc, "{")
		}
		key, _, err := in.Evaluate([]byte("d"), []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if got := key != nil; got != tc.want {
			t.Errorf("WHERE %s on %s = %v, want %v", tc.where, tc.doc, got, tc.want)
		}
	}
}

func TestEvaluate(t *testing.T) {
	m := defn.Missing
	for _, tc := range []struct {
		d    defn.IndexDefn
		doc  string
		want []any // nil: no key
	}{
		{defn.IndexDefn{SecExprs: []string{"city"}}, `{"city":"Oslo"}`, []any{"Oslo"}},
		{defn.IndexDefn{SecExprs: []string{"city"}}, `{"city":null}`, []any{nil}},
		{defn.IndexDefn{SecExprs: []string{"city"}}, `{"town":"Oslo"}`, nil},
		{defn.IndexDefn{SecExprs: []string{"age", "city"}}, `{"age":3}`, []any{3.0, m}},
		{defn.IndexDefn{SecExprs: []string{"age", "city"}}, `{"city":"x"}`, nil},
		{defn.IndexDefn{SecExprs: []string{"tags"}}, `{"tags":["b","a"]}`, []any{[]any{"b", "a"}}},
		{defn.IndexDefn{SecExprs: []string{"a.b", "a"}}, `{"a":{"b":true}}`, []any{true, map[string]any{"b": true}}},
		{defn.IndexDefn{SecExprs: []string{"city"}}, `not json`, nil},
		{defn.IndexDefn{IsPrimary: true}, `not json`, []any{"doc\x00id"}},
		{defn.IndexDefn{IsPrimary: true}, `{}`, []any{"doc\x00id"}},
	} {
		tc.d.Name = "e"
		in := mustCompile(t, 1, tc.d)
		key, _, err := in.Evaluate([]byte("doc\x00id"), []byte(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		var got []any
		if key != nil {
			if got, err = collate.Decode(key); err != nil {
				t.Fatal(err)
			}
		}
		if fmtVal(got) != fmtVal(tc.want) || (key == nil) != (tc.want == nil) {
			t.Errorf("%v on %s: key %s, want %s", tc.d.SecExprs, tc.doc, fmtVal(got), fmtVal(tc.want))
		}
	}
}

// TestCommands drives every command path through one endpoint.
func TestCommands(t *testing.T) {
	p, recs := newTestProjector(t, 1, Options{},
		mustCompile(t, 1, defn.IndexDefn{Name: "by_city", SecExprs: []string{"city"}}),
		mustCompile(t, 2, defn.IndexDefn{Name: "by_age_city", SecExprs: []string{"age", "city"}}),
		mustCompile(t, 3, defn.IndexDefn{Name: "old_by_city", SecExprs: []string{"city"}, Where: "age >= 30"}),
		mustCompile(t, 4, defn.IndexDefn{Name: "primary", IsPrimary: true}),
	)
	handleAll(t, p,
		streamBegin(5, 77),
		snapshot(5, 1, 7),
		mutation(5, 1, "d1", `{"city":"Oslo","age":40}`),
		mutation(5, 2, "d1", `{"age":20}`),                // removes city
		mutation(5, 3, "d1", `{"city":"Rome","age":"x"}`), // restores it
		deletion(upr.OpDeletion, 5, 4, "d2"),              // never indexed
		mutation(5, 5, "d3", `{"age":35}`),                // composite with missing non-leading
		mutation(5, 6, "d4", `{"city":`),                  // not JSON
		deletion(upr.OpExpiration, 5, 7, "d1"),
		upr.Event{Op: upr.OpStreamEnd, Vb: 5},
	)
	want := []string{
		"StreamBegin vb5 uuid77",
		"Snapshot vb5 uuid77 [1,7]",
		`Upsert i1 p0 vb5 uuid77 #1 d1 ["Oslo"]`,
		`Upsert i2 p0 vb5 uuid77 #1 d1 [40,"Oslo"]`,
		`Upsert i3 p0 vb5 uuid77 #1 d1 ["Oslo"]`,
		`Upsert i4 p0 vb5 uuid77 #1 d1 ["d1"]`,
		`UpsertDeletion i1 p0 vb5 uuid77 #2 d1`,
		`Upsert i2 p0 vb5 uuid77 #2 d1 [20,missing]`,
		`UpsertDeletion i3 p0 vb5 uuid77 #2 d1`,
		`Upsert i4 p0 vb5 uuid77 #2 d1 ["d1"]`,
		`Upsert i1 p0 vb5 uuid77 #3 d1 ["Rome"]`,
		`Upsert i2 p0 vb5 uuid77 #3 d1 ["x","Rome"]`,
		`UpsertDeletion i3 p0 vb5 uuid77 #3 d1`,
		`Upsert i4 p0 vb5 uuid77 #3 d1 ["d1"]`,
		`Deletion i1 p0 vb5 uuid77 #4 d2`,
		`Deletion i2 p0 vb5 uuid77 #4 d2`,
		`Deletion i3 p0 vb5 uuid77 #4 d2`,
		`Deletion i4 p0 vb5 uuid77 #4 d2`,
		`UpsertDeletion i1 p0 vb5 uuid77 #5 d3`,
		`Upsert i2 p0 vb5 uuid77 #5 d3 [35,missing]`,
		`UpsertDeletion i3 p0 vb5 uuid77 #5 d3`, // WHERE holds, leading key missing
		`Upsert i4 p0 vb5 uuid77 #5 d3 ["d3"]`,
		`UpsertDeletion i1 p0 vb5 uuid77 #6 d4`,
		`UpsertDeletion i2 p0 vb5 uuid77 #6 d4`,
		`UpsertDeletion i3 p0 vb5 uuid77 #6 d4`,
		`Upsert i4 p0 vb5 uuid77 #6 d4 ["d4"]`,
		`Deletion i1 p0 vb5 uuid77 #7 d1`,
		`Deletion i2 p0 vb5 uuid77 #7 d1`,
		`Deletion i3 p0 vb5 uuid77 #7 d1`,
		`Deletion i4 p0 vb5 uuid77 #7 d1`,
		"StreamEnd vb5 uuid77",
	}
	diffLines(t, recs[0].lines(t), want)
	for _, kv := range recs[0].kvs() {
		if kv.Seqno != 0 && kv.EmitNanos != int64(kv.Seqno)*100 {
			t.Errorf("%s: EmitNanos %d not copied", fmtKV(t, kv), kv.EmitNanos)
		}
	}
	st := p.Stats()
	if st.Events != 10 || st.KeyVersions != uint64(len(want)) || st.NonJSON != 1 ||
		st.ByCommand[Upsert] != 12 || st.ByCommand[Deletion] != 8 || st.ByCommand[UpsertDeletion] != 8 ||
		st.ByCommand[Snapshot] != 1 || st.ByCommand[StreamBegin] != 1 || st.ByCommand[StreamEnd] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestSyncAndRouting(t *testing.T) {
	// Instance 1 (2 partitions by docid) spreads over endpoints 0 and 1 by
	// ModRouter; endpoint 2 holds nothing and must see Syncs only.
	p, recs := newTestProjector(t, 3, Options{Router: ModRouter{N: 2}},
		mustCompile(t, 1, defn.IndexDefn{Name: "by_city", SecExprs: []string{"city"}, Partitions: 2}),
	)
	var docs []string
	evs := []upr.Event{streamBegin(0, 9), snapshot(0, 1, 40)}
	for i := range 40 {
		doc := fmt.Sprintf("doc%d", i)
		docs = append(docs, doc)
		evs = append(evs, mutation(0, upr.Seqno(i+1), doc, `{"city":"c"}`))
	}
	handleAll(t, p, evs...)
	for e, rec := range recs {
		kvs := rec.kvs()
		if len(kvs) != 42 {
			t.Fatalf("endpoint %d got %d key versions, want 42 (2 stream-level + 1 per mutation)", e, len(kvs))
		}
		if kvs[0].Cmd != StreamBegin || kvs[1].Cmd != Snapshot {
			t.Errorf("endpoint %d starts with %v %v", e, kvs[0].Cmd, kvs[1].Cmd)
		}
		for i, kv := range kvs[2:] {
			if kv.Seqno != upr.Seqno(i+1) {
				t.Fatalf("endpoint %d: key version %d has seqno %d, want %d", e, i, kv.Seqno, i+1)
			}
			part := PartitionOf([]byte(docs[i]), 2)
			want := Sync
			if part == e {
				want = Upsert
				if kv.Partition != part || string(kv.DocID) != docs[i] {
					t.Errorf("endpoint %d: %s, want partition %d", e, fmtKV(t, kv), part)
				}
			}
			if kv.Cmd != want {
				t.Errorf("endpoint %d: %s, want %v", e, fmtKV(t, kv), want)
			}
		}
	}
	var parts [2]int
	for _, d := range docs {
		parts[PartitionOf([]byte(d), 2)]++
	}
	if parts[0] == 0 || parts[1] == 0 {
		t.Errorf("40 docs hash to partitions %v: the hash does not spread", parts)
	}
}

// TestFieldPartitionMove: an instance partitioned by a field sends Upsert to
// the value's partition and UpsertDeletion everywhere else, so a document
// whose partition key changes leaves its old partition.
func TestFieldPartitionMove(t *testing.T) {
	p, recs := newTestProjector(t, 1, Options{},
		mustCompile(t, 7, defn.IndexDefn{Name: "by_age_p", SecExprs: []string{"age"}, Partitions: 3, PartitionKey: "city"}),
	)
	partOf := func(v any) int {
		enc, err := collate.AppendValue(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		return PartitionOf(enc, 3)
	}
	// Find two cities in different partitions.
	a, b := "city0", ""
	for i := 1; b == ""; i++ {
		if c := fmt.Sprintf("city%d", i); partOf(c) != partOf(a) {
			b = c
		}
	}
	handleAll(t, p,
		mutation(0, 1, "d", fmt.Sprintf(`{"age":1,"city":%q}`, a)),
		mutation(0, 2, "d", fmt.Sprintf(`{"age":1,"city":%q}`, b)),
		mutation(0, 3, "d", `{"city":"x"}`),
		deletion(upr.OpDeletion, 0, 4, "d"),
	)
	got := map[upr.Seqno][]string{}
	for _, kv := range recs[0].kvs() {
		got[kv.Seqno] = append(got[kv.Seqno], fmt.Sprintf("%v p%d", kv.Cmd, kv.Partition))
	}
	for seq, wantUpsert := range map[upr.Seqno]int{1: partOf(a), 2: partOf(b), 3: -1, 4: -1} {
		cmd := UpsertDeletion
		if seq == 4 {
			cmd = Deletion
		}
		var want []string
		if wantUpsert >= 0 {
			want = append(want, fmt.Sprintf("Upsert p%d", wantUpsert))
		}
		for part := range 3 {
			if part != wantUpsert {
				want = append(want, fmt.Sprintf("%v p%d", cmd, part))
			}
		}
		if strings.Join(got[seq], ", ") != strings.Join(want, ", ") {
			t.Errorf("seqno %d: %v, want %v", seq, got[seq], want)
		}
	}
}

func TestNoInstancesSync(t *testing.T) {
	p, recs := newTestProjector(t, 1, Options{})
	handleAll(t, p, streamBegin(1, 5), snapshot(1, 1, 2), mutation(1, 1, "a", `{}`), deletion(upr.OpDeletion, 1, 2, "a"))
	diffLines(t, recs[0].lines(t), []string{"StreamBegin vb1 uuid5", "Snapshot vb1 uuid5 [1,2]", "Sync vb1 uuid5 #1", "Sync vb1 uuid5 #2"})
}

func TestBatching(t *testing.T) {
	pool := &BatchPool{}
	p, recs := newTestProjector(t, 1, Options{BufferSize: 4, Pool: pool},
		mustCompile(t, 1, defn.IndexDefn{Name: "pk", IsPrimary: true}))
	var evs []upr.Event
	for i := range 10 {
		evs = append(evs, mutation(0, upr.Seqno(i+1), fmt.Sprint("d", i), `{}`))
	}
	ctx := context.Background()
	for i := range evs {
		if err := p.Handle(ctx, &evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(recs[0].batches); n != 2 {
		t.Fatalf("%d batches sent before Flush, want 2 full ones", n)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sizes := []int{}
	for _, b := range recs[0].batches {
		sizes = append(sizes, len(b.KVs))
	}
	if fmt.Sprint(sizes) != "[4 4 2]" {
		t.Errorf("batch sizes %v, want [4 4 2]", sizes)
	}
	// A recycled batch's key bytes stay valid.
	first := recs[0].batches[0]
	doc := first.KVs[0].DocID
	pool.Put(first)
	handleAll(t, p, evs...)
	if string(doc) != "d0" {
		t.Errorf("DocID of a recycled batch changed to %q", doc)
	}
}

// TestBatchesEndBetweenMutations: the key versions of one mutation (one per
// instance) travel in one batch even when they overfill it. A batch ending
// in the middle of a mutation lets the indexer see the vbucket aligned at
// that seqno with key versions still missing, and snapshot or persist it.
func TestBatchesEndBetweenMutations(t *testing.T) {
	var insts []*Instance
	for i, f := range []string{"a", "b", "c"} {
		insts = append(insts, mustCompile(t, uint64(i+1), defn.IndexDefn{Name: "by_" + f, SecExprs: []string{f}}))
	}
	p, recs := newTestProjector(t, 1, Options{BufferSize: 2}, insts...)
	evs := []upr.Event{streamBegin(0, 7), snapshot(0, 1, 2)}
	for i := range 2 {
		evs = append(evs, mutation(0, upr.Seqno(i+1), fmt.Sprint("d", i), `{"a":1,"b":2,"c":3}`))
	}
	handleAll(t, p, evs...)
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	last := upr.Seqno(0)
	for i, b := range recs[0].batches {
		var seqnos []upr.Seqno
		for _, kv := range b.KVs {
			if kv.Cmd == Upsert {
				seqnos = append(seqnos, kv.Seqno)
			}
		}
		if len(seqnos) > 0 && seqnos[0] == last {
			t.Errorf("batch %d starts with seqno %d, which the batch before it ended with", i, last)
		}
		if len(seqnos) > 0 {
			last = seqnos[len(seqnos)-1]
		}
	}
	if got := len(recs[0].kvs()); got != 2+2*3 {
		t.Errorf("%d key versions sent, want 8", got)
	}
}

func TestAddDropInstance(t *testing.T) {
	p, recs := newTestProjector(t, 1, Options{})
	in := mustCompile(t, 1, defn.IndexDefn{Name: "pk", IsPrimary: true})
	if err := p.AddInstance(in); err != nil {
		t.Fatal(err)
	}
	if err := p.AddInstance(in); err == nil {
		t.Error("adding instance 1 twice: want an error")
	}
	handleAll(t, p, mutation(0, 1, "a", `{}`))
	if !p.DropInstance(1) || p.DropInstance(1) {
		t.Error("DropInstance(1) twice: want true then false")
	}
	handleAll(t, p, mutation(0, 2, "a", `{}`))
	diffLines(t, recs[0].lines(t), []string{`Upsert i1 p0 vb0 uuid0 #1 a ["a"]`, "Sync vb0 uuid0 #2"})
	bad := mustCompile(t, 2, defn.IndexDefn{Name: "pk2", IsPrimary: true, Partitions: 2})
	q, err := New([]Transport{&recorder{}}, Options{Router: routerFunc(func(uint64, int) int { return 1 })})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.AddInstance(bad); err == nil {
		t.Error("routing to a missing endpoint: want an error")
	}
}

func TestOptions(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New with no endpoints: want an error")
	}
	if _, err := New([]Transport{&recorder{}}, Options{BufferSize: -1}); err == nil {
		t.Error("negative BufferSize: want an error")
	}
	var o Options
	o.EnsureDefaults(3)
	if got := o.String(); got != "buffer_size=2000 flush_interval=5ms event_buffer=256 pooled=false" {
		t.Errorf("default options %q", got)
	}
	if o.Router.Endpoint(9, 5) != 2 {
		t.Errorf("default router sends partition 5 of 3 endpoints to %d", o.Router.Endpoint(9, 5))
	}
}

type routerFunc func(uint64, int) int

func (f routerFunc) Endpoint(id uint64, part int) int { return f(id, part) }

// sliceFeed hands out its events a few at a time, then io.EOF (or blocks
// until ctx is done when hang is set).
type sliceFeed struct {
	evs  []upr.Event
	hang bool
}

func (f *sliceFeed) Next(ctx context.Context, buf []upr.Event) (int, error) {
	if len(f.evs) == 0 {
		if f.hang {
			<-ctx.Done()
			return 0, ctx.Err()
		}
		return 0, io.EOF
	}
	n := copy(buf[:min(len(buf), 3)], f.evs)
	f.evs = f.evs[n:]
	return n, nil
}

func TestRun(t *testing.T) {
	tr := NewChanTransport(1000)
	p, err := New([]Transport{tr}, Options{BufferSize: 7, EventBuffer: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AddInstance(mustCompile(t, 1, defn.IndexDefn{Name: "c", SecExprs: []string{"c"}})); err != nil {
		t.Fatal(err)
	}
	feed := &sliceFeed{evs: []upr.Event{streamBegin(0, 3), snapshot(0, 1, 20)}}
	for i := range 20 {
		feed.evs = append(feed.evs, mutation(0, upr.Seqno(i+1), fmt.Sprint("d", i), fmt.Sprintf(`{"c":%d}`, i)))
	}
	if err := p.Run(context.Background(), feed); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var got []KeyVersion
	for len(got) < 22 {
		b, err := tr.Recv(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b.KVs...)
	}
	for i, kv := range got[2:] {
		if kv.Cmd != Upsert || kv.Seqno != upr.Seqno(i+1) {
			t.Fatalf("key version %d: %s", i+2, fmtKV(t, kv))
		}
	}
	if s := p.Stats(); s.Events != 22 || s.KeyVersions != 22 || s.Batches != 4 {
		t.Errorf("stats %+v", s)
	}
}

// TestRunBackpressure: a transport nobody reads blocks Run, which still
// returns promptly when its context is cancelled; the flush ticker sends the
// partial batch of an idle feed.
func TestRunBackpressure(t *testing.T) {
	tr := NewChanTransport(0)
	p, err := New([]Transport{tr}, Options{BufferSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	feed := &sliceFeed{evs: []upr.Event{streamBegin(0, 3)}, hang: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx, feed) }()
	b, err := tr.Recv(ctx) // only the flush ticker can send this partial batch
	if err != nil || len(b.KVs) != 1 || b.KVs[0].Cmd != StreamBegin {
		t.Fatalf("Recv = %v, %v", b, err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v", err)
	}
	tr.Close()
	if _, err := tr.Recv(context.Background()); !errors.Is(err, ErrTransportClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
	if err := tr.Send(context.Background(), &Batch{}); !errors.Is(err, ErrTransportClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}

// TestConcurrentDDL adds and drops instances while two projectors run side
// by side (run it with -race).
func TestConcurrentDDL(t *testing.T) {
	var wg sync.WaitGroup
	for k := range 2 {
		tr := NewChanTransport(4)
		p, err := New([]Transport{tr}, Options{BufferSize: 16})
		if err != nil {
			t.Fatal(err)
		}
		feed := &sliceFeed{}
		for i := range 3000 {
			feed.evs = append(feed.evs, mutation(upr.Vbno(i%8), upr.Seqno(i+1), fmt.Sprint("d", i), `{"a":{"b":1},"c":"x"}`))
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var n int
		wg.Add(3)
		go func() {
			defer wg.Done()
			for {
				b, err := tr.Recv(ctx)
				if err != nil {
					return
				}
				n += len(b.KVs)
				if n >= 3000 {
					cancel()
				}
			}
		}()
		go func() {
			defer wg.Done()
			if err := p.Run(ctx, feed); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("projector %d: %v", k, err)
			}
		}()
		go func() {
			defer wg.Done()
			for i := uint64(1); i <= 50; i++ {
				in := mustCompile(t, i, defn.IndexDefn{Name: fmt.Sprint("i", i), SecExprs: []string{"a.b", "c"}})
				if err := p.AddInstance(in); err != nil {
					t.Error(err)
				}
				if i%2 == 0 {
					p.DropInstance(i - 1)
				}
			}
		}()
	}
	wg.Wait()
}
