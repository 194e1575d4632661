package queryport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	_ "github.com/idxbench/idxbench/engines/memory"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/projector/collate"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// cities lead the composite index's keys; with 100 documents per city a
// lookup of one city returns about 100 entries.
var cities = []string{
	"amsterdam", "berlin", "cairo", "delhi", "dublin", "hanoi", "kyiv", "lima", "oslo", "paris",
	"quito", "rome", "são paulo", "seoul", "tōkyō", "tunis", "vaduz", "wien", "yerevan", "zürich",
}

// cityKey is document i's key in by_city: its city, then a value of a
// kind that varies with i.
func cityKey(i int) []any {
	var second any = float64(i % 97)
	switch {
	case i%50 == 0:
		second = defn.Missing
	case i%31 == 0:
		second = []any{"tag", float64(i), []any{}}
	case i%37 == 0:
		second = map[string]any{"n": float64(i), "ü": nil}
	case i%41 == 0:
		second = i%2 == 0
	}
	return []any{cities[i%len(cities)], second}
}

// sliceSource hands out its batches, then io.EOF.
type sliceSource struct{ batches []*projector.Batch }

func (s *sliceSource) Recv(context.Context) (*projector.Batch, error) {
	if len(s.batches) == 0 {
		return nil, io.EOF
	}
	b := s.batches[0]
	s.batches = s.batches[1:]
	return b, nil
}

// fedIndexer returns a running indexer on the memory engine holding ndocs
// documents in two indexes: by_city (instance 1, composite key, two
// partitions) and primary (instance 2), with a snapshot covering all of
// them. It stops when the test ends.
func fedIndexer(tb testing.TB, ndocs int) *indexer.Indexer {
	tb.Helper()
	const nvb = 8
	e, err := engines.Lookup("memory")
	if err != nil {
		tb.Fatal(err)
	}
	seqnos := upr.NewTsVbuuid(nvb)
	ix, err := indexer.New(indexer.Config{
		Engine: e, Dir: tb.TempDir(), NumVbuckets: nvb,
		SnapshotInterval: indexer.MinSnapshotInterval, PersistInterval: -1,
		KVSeqnos: func() *upr.TsVbuuid { return seqnos.Clone() },
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := ix.Close(); err != nil {
			tb.Errorf("close indexer: %v", err)
		}
	})
	for _, d := range []indexer.InstanceDefn{
		{ID: 1, Defn: defn.IndexDefn{Name: "by_city", SecExprs: []string{"city", "x"}, Partitions: 2}},
		{ID: 2, Defn: defn.IndexDefn{Name: "primary", IsPrimary: true}},
	} {
		if err := ix.CreateInstance(d); err != nil {
			tb.Fatal(err)
		}
	}

	// One snapshot per vbucket holding all of its documents: document i
	// lives in vbucket i%nvb.
	var kvs []projector.KeyVersion
	for vb := range upr.Vbno(nvb) {
		n := upr.Seqno((ndocs - int(vb) + nvb - 1) / nvb)
		uuid := upr.Vbuuid(1000 + int(vb))
		seqnos.Vbuuids[vb], seqnos.Seqnos[vb], seqnos.Snapshots[vb] = uuid, n, [2]upr.Seqno{1, n}
		kvs = append(kvs,
			projector.KeyVersion{Cmd: projector.StreamBegin, Vb: vb, Vbuuid: uuid},
			projector.KeyVersion{Cmd: projector.Snapshot, Vb: vb, Vbuuid: uuid, SnapStart: 1, SnapEnd: n})
	}
	for i := range ndocs {
		vb := upr.Vbno(i % nvb)
		kv := projector.KeyVersion{Cmd: projector.Upsert, Vb: vb, Vbuuid: seqnos.Vbuuids[vb],
			Seqno: upr.Seqno(i/nvb + 1), DocID: fmt.Appendf(nil, "doc%05d", i)}
		key, err := collate.AppendComposite(nil, cityKey(i))
		if err != nil {
			tb.Fatal(err)
		}
		sec, prim := kv, kv
		sec.InstID, sec.Partition, sec.Key = 1, i%2, key
		prim.InstID = 2
		kvs = append(kvs, sec, prim)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx, &sliceSource{batches: []*projector.Batch{{KVs: kvs}}}) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("run indexer: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := ix.WaitForTS(wctx, seqnos); err != nil {
		tb.Fatalf("wait for the fed documents: %v", err)
	}
	return ix
}

// TestIndexerEndToEnd: scans of a real indexer through the query port
// equal the same scans in-process, results and errors alike.
func TestIndexerEndToEnd(t *testing.T) {
	ix := fedIndexer(t, 2000)
	_, addr := serve(t, ix, ServerOptions{})
	c := dial(t, addr, ClientOptions{})

	ahead := ix.SnapshotTS()
	ahead.Seqnos[0] += 10
	reqs := []indexer.ScanRequest{
		{Index: "by_city", Kind: indexer.ScanAll},
		{Index: "primary", Kind: indexer.ScanAll},
		{InstID: 2, Kind: indexer.ScanRange, Low: []any{"doc00100"}, High: []any{"doc00200"}},
		{Index: "by_city", Kind: indexer.ScanRange, Low: []any{"berlin"}, High: []any{"paris"}, Inclusion: indexer.IncludeBoth},
		{Index: "by_city", Kind: indexer.ScanRange, Low: []any{"berlin"}, High: []any{"paris"}, Inclusion: indexer.IncludeNeither, Limit: 150},
		{Index: "by_city", Kind: indexer.ScanRange, Low: []any{"tōkyō", 10.0}, High: []any{"tōkyō", []any{}}, Inclusion: indexer.IncludeLow},
		{Index: "by_city", Kind: indexer.ScanRange, High: []any{"cairo"}},
		{Index: "by_city", Kind: indexer.ScanRange, Low: []any{}, Inclusion: indexer.IncludeNeither},
		{Index: "by_city", Kind: indexer.ScanLookup, Equal: []any{"são paulo"}},
		{Index: "by_city", Kind: indexer.ScanLookup, Equal: []any{"amsterdam", defn.Missing}},
		{Index: "by_city", Kind: indexer.ScanLookup, Equal: []any{"nowhere"}},
		{Index: "by_city", Kind: indexer.ScanCount},
		{Index: "by_city", Kind: indexer.ScanCount, Equal: []any{"wien"}},
		{Index: "by_city", Kind: indexer.ScanCount, Low: []any{"a"}, High: []any{"m"}, Limit: 7},
		{Index: "by_city", Kind: indexer.ScanAll, Consistency: indexer.RequestPlus, Timeout: time.Minute},
		{Index: "by_city", Kind: indexer.ScanLookup, Equal: []any{"rome"}, Consistency: indexer.AtPlus, TS: ix.SnapshotTS()},
	}
	failing := []indexer.ScanRequest{
		{Index: "nope", Kind: indexer.ScanAll},
		{InstID: 9, Kind: indexer.ScanAll},
		{Index: "by_city", Kind: indexer.ScanLookup, Equal: []any{}},
		{Index: "by_city", Kind: indexer.ScanAll, Consistency: indexer.AtPlus, TS: ahead, Timeout: time.Millisecond},
		{Index: "by_city", Kind: indexer.ScanAll, Consistency: indexer.AtPlus},
		{Index: "by_city", Kind: 9},
	}
	ctx := context.Background()
	for i, req := range failing {
		_, wantErr := ix.Scan(ctx, req)
		_, err := c.Scan(ctx, req)
		if wantErr == nil || err == nil || err.Error() != wantErr.Error() {
			t.Errorf("failing scan %d %+v: in-process error %v, query port %v", i, req, wantErr, err)
		}
		for _, s := range []error{indexer.ErrNoSuchIndex, indexer.ErrScanTimeout} {
			if errors.Is(err, s) != errors.Is(wantErr, s) {
				t.Errorf("failing scan %d: errors.Is(%v, %v) differs across the wire", i, err, s)
			}
		}
	}
	for i, req := range reqs {
		want, err := ix.Scan(ctx, req)
		if err != nil {
			t.Fatalf("scan %d %+v in-process: %v", i, req, err)
		}
		got, err := c.Scan(ctx, req)
		if err != nil {
			t.Fatalf("scan %d %+v: %v", i, req, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("scan %d %+v: in-process %d entries (count %d), query port %d (count %d)",
				i, req, len(want.Entries), want.Count, len(got.Entries), got.Count)
		}
	}
	// The fixture is what the test thinks it is.
	if r, err := c.Scan(ctx, reqs[0]); err != nil || r.Count != 2000 {
		t.Fatalf("by_city holds %v entries (%v), want 2000", r, err)
	}
	if r, err := c.Scan(ctx, reqs[8]); err != nil || r.Count != 100 || len(r.TS.Seqnos) != 8 {
		t.Fatalf("lookup of one city: %v (%v), want 100 entries", r, err)
	}
}
