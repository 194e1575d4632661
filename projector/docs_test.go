package projector_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	_ "github.com/idxbench/idxbench/engines/memory"
	_ "github.com/idxbench/idxbench/engines/pebble"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/projector/collate"
	"github.com/idxbench/idxbench/workload"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// This file drives documents that break indexers (workload's extra fields:
// any type, any Unicode, JSON escapes, float64 and int64 extremes, deep
// nesting, arrays and objects as keys) through projector → collate →
// engine → scan, and compares every scan with the workload's oracle view,
// which shares no code with the projector or the collation.

// hardSpec is a workload whose documents carry hard extra fields, and
// indexes over them.
func hardSpec(seed uint64, docs, vbuckets int) workload.Spec {
	s := workload.DefaultSpec()
	s.Seed, s.Docs, s.Vbuckets = seed, docs, vbuckets
	s.ValueSize = workload.SizeDist{Dist: "fixed", Mean: 32}
	s.Ops = workload.OpMix{Insert: 0.2, Update: 0.6, Delete: 0.1, Expire: 0.1}
	mixed := workload.DefaultFieldGen("mixed")
	mixed.Types = workload.TypeMix{Number: 3, String: 3, Null: 1, Bool: 1, Array: 1, Object: 1}
	mixed.String = workload.StringGen{Alphabet: workload.AlphabetHostile, Length: workload.SizeDist{Dist: "uniform", Max: 6}}
	mixed.Number = workload.NumberGen{Min: -1e308, Max: 1e308, Extremes: 0.5}
	mixed.Missing = 0.1
	small := workload.DefaultFieldGen("deep.a.b.c")
	small.Types = workload.TypeMix{String: 4, Array: 1}
	small.String = workload.StringGen{Alphabet: workload.AlphabetSmall, Length: workload.SizeDist{Dist: "uniform", Max: 4}}
	small.Depth, small.Items = 2, 2
	uni := workload.DefaultFieldGen("deep.a.u")
	uni.String = workload.StringGen{Alphabet: workload.AlphabetUnicode, Length: workload.SizeDist{Dist: "uniform", Max: 300}}
	num := workload.DefaultFieldGen("deep.n")
	num.Types = workload.TypeMix{Number: 1}
	num.Number = workload.NumberGen{Min: -9007199254740993, Max: 9007199254740993, Integer: true, Extremes: 0.3}
	num.Missing = 0.2
	s.Fields.Extra = []workload.FieldGen{mixed, small, uni, num}
	s.Indexes = hardIndexes()
	return s
}

func hardIndexes() []defn.IndexDefn {
	return []defn.IndexDefn{
		{Name: "by_mixed", SecExprs: []string{"mixed"}},
		{Name: "by_deep", SecExprs: []string{"deep.a.b.c", "deep.n"}, Partitions: 3},
		{Name: "by_num_mixed", SecExprs: []string{"deep.n", "mixed"}, Where: "deep.n >= 0"},
		{Name: "by_uni", SecExprs: []string{"deep.a.u"}},
		{Name: "by_deep_object", SecExprs: []string{"deep.a", "deep"}},
		{Name: "primary", IsPrimary: true},
		// For fuzzed documents, which may have any shape.
		{Name: "by_a", SecExprs: []string{"a", "a.b"}, Where: "b IS NOT MISSING"},
	}
}

// storeIndexer applies key versions to one store per index instance (all
// partitions together; an entry's key holds its document id), keeping the
// back index in memory: the indexer's slice layout, with none of its code.
type storeIndexer struct {
	t      testing.TB
	stores map[uint64]engines.Store
	back   map[uint64]map[string][]byte // inst → docid → main key
	batch  engines.Batch
}

// mainKey is the encoded key, the document id and the id's length.
func mainKey(key, docid []byte) []byte {
	k := append(append([]byte(nil), key...), docid...)
	return binary.BigEndian.AppendUint16(k, uint16(len(docid)))
}

func splitKey(k []byte) (key []byte, docid string) {
	n := int(binary.BigEndian.Uint16(k[len(k)-2:]))
	return k[:len(k)-2-n], string(k[len(k)-2-n : len(k)-2])
}

func (s *storeIndexer) Send(_ context.Context, b *projector.Batch) error {
	s.batch.Reset()
	for _, kv := range b.KVs {
		back := s.back[kv.InstID]
		switch kv.Cmd {
		case projector.Upsert, projector.UpsertDeletion, projector.Deletion:
		default:
			continue
		}
		doc := string(kv.DocID)
		if old, ok := back[doc]; ok {
			s.batch.Delete(engines.Main, old)
			delete(back, doc)
		}
		if kv.Cmd == projector.Upsert {
			k := mainKey(kv.Key, kv.DocID)
			s.batch.Set(engines.Main, k, nil)
			back[doc] = k
		}
		// One batch per instance keeps the test's bookkeeping simple:
		// apply as soon as the instance changes.
		if err := s.stores[kv.InstID].Apply(&s.batch, engines.NoSync); err != nil {
			return err
		}
		s.batch.Reset()
	}
	return nil
}

// runDocs runs the bucket's whole history through a projector into
// stores of engine name and checks each index with full and random range
// scans against the oracle.
func runDocs(t testing.TB, name string, b *workload.Bucket, indexes []defn.IndexDefn, r *rand.Rand) {
	e, err := engines.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	si := &storeIndexer{t: t, stores: map[uint64]engines.Store{}, back: map[uint64]map[string][]byte{}}
	p, err := projector.New([]projector.Transport{si}, projector.Options{BufferSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range indexes {
		in, err := projector.Compile(uint64(i+1), d)
		if err != nil {
			t.Fatal(err)
		}
		st, err := e.Open(t.TempDir(), engines.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		si.stores[in.ID] = st
		si.back[in.ID] = map[string][]byte{}
		if err := p.AddInstance(in); err != nil {
			t.Fatal(err)
		}
	}
	nvb := b.Vbuckets()
	feed := b.NewFeed()
	defer feed.Close()
	for vb := range nvb {
		if err := feed.Request(upr.StreamRequest{Vb: upr.Vbno(vb), End: b.HighSeqno(upr.Vbno(vb))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Run(context.Background(), &endingFeed{f: feed, open: nvb}); err != nil {
		t.Fatal(err)
	}

	ts := b.CurrentSeqnos()
	view, err := workload.NewOracle(b).NewView(indexes, ts)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range indexes {
		st := si.stores[uint64(i+1)]
		all, err := view.Scan(workload.Query{Index: d.Name}, ts)
		if err != nil {
			t.Fatal(err)
		}
		checkScan(t, name, st, d, workload.Query{Index: d.Name}, all.Entries, nil, nil)
		for range 30 {
			q := randomQuery(r, d.Name, all.Entries)
			want, err := view.Scan(q, ts)
			if err != nil {
				t.Fatal(err)
			}
			lower, upper, empty := bounds(t, q)
			if empty {
				if len(want.Entries) > 0 {
					t.Fatalf("%s: index %s: query %+v: bounds are empty, oracle has %d entries", name, d.Name, q, len(want.Entries))
				}
				continue
			}
			checkScan(t, name, st, d, q, want.Entries, lower, upper)
		}
	}
}

// randomQuery is a range over the index with bounds taken from its entries
// (a random number of leading components, or none), each end inclusive or
// not at random.
func randomQuery(r *rand.Rand, index string, entries []defn.Entry) workload.Query {
	q := workload.Query{Index: index, LowInclusive: r.IntN(2) == 0, HighInclusive: r.IntN(2) == 0}
	bound := func() []any {
		if len(entries) == 0 || r.IntN(5) == 0 {
			return nil
		}
		k := entries[r.IntN(len(entries))].Key
		return k[:1+r.IntN(len(k))]
	}
	q.Low, q.High = bound(), bound()
	if q.Low != nil && q.High != nil && workload.CompareKeys(q.Low, q.High) > 0 && r.IntN(4) != 0 {
		q.Low, q.High = q.High, q.Low
	}
	return q
}

// bounds are the main-keyspace bounds of q, built as a scan service builds
// them: the encoded bound, and its PrefixEnd where the bound's entries are
// to be passed over (an exclusive low, an inclusive high).
func bounds(t testing.TB, q workload.Query) (lower, upper []byte, empty bool) {
	enc := func(vs []any) []byte {
		b, err := collate.AppendComposite(nil, vs)
		if err != nil {
			t.Fatalf("encode bound %v: %v", vs, err)
		}
		return b
	}
	if q.Low != nil {
		lower = enc(q.Low)
		if !q.LowInclusive {
			if lower = collate.PrefixEnd(lower); lower == nil {
				return nil, nil, true
			}
		}
	}
	if q.High != nil {
		upper = enc(q.High)
		if q.HighInclusive {
			upper = collate.PrefixEnd(upper)
		}
	}
	if lower != nil && upper != nil && bytes.Compare(lower, upper) >= 0 {
		return nil, nil, true
	}
	return lower, upper, false
}

// checkScan reads [lower, upper) of st and compares it, in order, with the
// oracle's entries: the same document ids, and keys that encode to the
// stored bytes and decode back to the oracle's values.
func checkScan(t testing.TB, name string, st engines.Store, d defn.IndexDefn, q workload.Query, want []defn.Entry, lower, upper []byte) {
	v, err := st.NewView()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	it, err := v.NewIter(engines.Main, lower, upper)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		key, docid := splitKey(it.Key())
		if i >= len(want) {
			got, _ := collate.Decode(key)
			t.Fatalf("%s: index %s: query %s: entry %d (%s %v) beyond the oracle's %d", name, d.Name, fmtQuery(q), i, docid, got, len(want))
		}
		w := want[i]
		wantKey, err := collate.AppendComposite(nil, w.Key)
		if err != nil {
			t.Fatalf("%s: index %s: encode the oracle's key %#v: %v", name, d.Name, w.Key, err)
		}
		if docid != w.DocID || !bytes.Equal(key, wantKey) {
			got, _ := collate.Decode(key)
			t.Fatalf("%s: index %s: query %s: entry %d is %s %#v, oracle %s %#v", name, d.Name, fmtQuery(q), i, docid, got, w.DocID, w.Key)
		}
		if got, err := collate.Decode(key); err != nil || !equalKeys(got, w.Key) {
			t.Fatalf("%s: index %s: entry %s decodes to %#v (%v), oracle %#v", name, d.Name, docid, got, err, w.Key)
		}
		i++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if i != len(want) {
		t.Fatalf("%s: index %s: query %s: %d entries, oracle %d (next %s %#v)", name, d.Name, fmtQuery(q), i, len(want), want[i].DocID, want[i].Key)
	}
}

// equalKeys compares decoded keys: by collation, and -0 and +0 as the same
// (the encoding does not keep the sign of zero).
func equalKeys(a, b []any) bool {
	return workload.CompareKeys(a, b) == 0 && (len(a) != len(b) || reflect.DeepEqual(normZero(a), normZero(b)))
}

func normZero(v any) any {
	switch v := v.(type) {
	case float64:
		if v == 0 {
			return 0.0
		}
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normZero(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = normZero(e)
		}
		return out
	}
	return v
}

func fmtQuery(q workload.Query) string {
	return fmt.Sprintf("[%#v %v, %#v %v]", q.Low, q.LowInclusive, q.High, q.HighInclusive)
}

// docsSeed is the -seed flag (model_test.go registers it) or, when it is
// 0, a time-based seed; it prints the command to rerun with it.
func docsSeed(t *testing.T) uint64 {
	var seed uint64
	if f := flag.Lookup("seed"); f != nil {
		seed, _ = strconv.ParseUint(f.Value.String(), 10, 64)
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed: %d (rerun with: go test ./projector -run '^%s$' -seed %d)", seed, t.Name(), seed)
	return seed
}

// TestHardDocuments is the randomized form: a generated workload of hard
// documents, its load and mutations, through the memory engine and pebble.
func TestHardDocuments(t *testing.T) {
	seed := docsSeed(t)
	for _, name := range []string{"memory", "pebble"} {
		t.Run(name, func(t *testing.T) {
			spec := hardSpec(seed, 400, 8)
			g, err := workload.NewGenerator(spec)
			if err != nil {
				t.Fatal(err)
			}
			b := g.NewBucket(workload.BucketOptions{})
			g.Load(b)
			for range 600 {
				g.Apply(b, g.Next())
			}
			runDocs(t, name, b, spec.Indexes, rand.New(rand.NewPCG(seed, 1)))
		})
	}
}

// fuzzEngines are the engines FuzzDocuments checks: memory and pebble for
// the seed corpus, memory alone while fuzzing, where opening seven pebble
// stores per input would leave few inputs tried.
func fuzzEngines() []string {
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return []string{"memory"}
	}
	return []string{"memory", "pebble"}
}

// FuzzDocuments puts a fuzzed document body beside a few generated hard
// documents (from a fuzzed seed), updates it once, and checks every index
// on both engines.
func FuzzDocuments(f *testing.F) {
	for i, doc := range []string{
		`{"a":{"b":[1,"x",null]},"b":0}`,
		`{"a":"\u0000","b":true,"mixed":-0.0}`,
		`{"a":1e308,"b":1,"mixed":-1e308,"deep":{"n":9007199254740993}}`,
		`{"a":"e\u0301","b":"é","deep":{"a":{"b":{"c":"a\u0000b"}}}}`,
		`{"a":{"b":{}},"a":{"b":2},"b":null}`,
		`{"a":["\ud83d\ude00","\udc00"],"b":[]}`,
		`{"mixed":-9223372036854775808,"deep":{"n":18446744073709551615}}`,
		`{"a":1e-400,"b":-0,"mixed":[[[[[]]]]]}`,
		`not json`,
		`{"a":"\/\b\f\n\r\t\"\\","b":{}}`,
		"{\"a\":\"\xff\xfe\xc0\x80\",\"b\":1}", // invalid UTF-8
		`{"a":1e400,"b":1}`,                    // overflows float64: not a JSON number Go accepts
		`{"a":"\ud800\udc00\ud800x","b":1,"a":{"b":-0}}`,
	} {
		f.Add(uint64(i), []byte(doc))
	}
	f.Fuzz(func(t *testing.T, seed uint64, doc []byte) {
		spec := hardSpec(seed, 20, 2)
		g, err := workload.NewGenerator(spec)
		if err != nil {
			t.Fatal(err)
		}
		b := g.NewBucket(workload.BucketOptions{})
		g.Load(b)
		b.Set("fuzz-1", doc)
		for range 10 {
			g.Apply(b, g.Next())
		}
		b.Set("fuzz-2", doc)
		b.Set("fuzz-1", append(bytes.Clone(doc), ' '))
		for _, name := range fuzzEngines() {
			runDocs(t, name, b, spec.Indexes, rand.New(rand.NewPCG(seed, 2)))
		}
	})
}
