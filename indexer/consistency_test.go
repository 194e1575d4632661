package indexer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/memory"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// TestRequestPlus: a request_plus scan issued after a mutation was emitted
// always sees it, with the indexer running on its own timer.
func TestRequestPlus(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engines.Engine) {
		g := newGen(16)
		var mu sync.Mutex
		rec := &recorder{}
		emitted := time.Now()
		ix := newTestIndexer(t, e, Config{
			NumVbuckets:      16,
			SnapshotInterval: 10 * time.Millisecond,
			KVSeqnos: func() *upr.TsVbuuid {
				mu.Lock()
				defer mu.Unlock()
				return g.kvSeqnos()
			},
			Clock:          func() int64 { return int64(time.Since(emitted)) },
			LagSampleEvery: 1,
			Recorder:       rec,
		})
		mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"k"}})
		src := newChanSource()
		runIndexer(t, ix, src)
		ctx := context.Background()
		for i := range 30 {
			doc := fmt.Sprintf("doc%d", i)
			mu.Lock()
			g.upsert(doc, target{inst: 1, key: enc(t, float64(i))})
			b := g.batch()
			mu.Unlock()
			src.ch <- b
			r, err := ix.Scan(ctx, ScanRequest{Index: "i", Kind: ScanLookup, Equal: []any{float64(i)}, Consistency: RequestPlus, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if r.Count != 1 || r.Entries[0].DocID != doc {
				t.Fatalf("request_plus after emitting %s: %v at %v", doc, docids(r.Entries), r.TS.Seqnos)
			}
		}
		if rec.count("scan_lookup_request_plus") != 30 || rec.count("flush") == 0 || rec.count("snapshot") == 0 {
			t.Fatalf("recorded %v", rec.ops)
		}
		if n := rec.count("index_lag"); n != 30 {
			t.Fatalf("index lag recorded %d times, want 30", n)
		}
	})
}

// TestAtPlus: an at_plus scan waits for a covering snapshot, times out
// with ErrScanTimeout, and fails with ErrIndexRollback on a rollback.
func TestAtPlus(t *testing.T) {
	ix := newTestIndexer(t, memoryEngine(t), Config{NumVbuckets: 2, SnapshotInterval: 10 * time.Millisecond})
	mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"k"}})
	g := newGen(2)
	src := newChanSource()
	runIndexer(t, ix, src)
	ctx := context.Background()

	g.upsert("a", target{inst: 1, key: enc(t, 1.0)})
	src.ch <- g.batch()
	want := g.kvSeqnos()
	r, err := ix.Scan(ctx, ScanRequest{Index: "i", Kind: ScanAll, Consistency: AtPlus, TS: want})
	if err != nil || r.Count != 1 {
		t.Fatalf("at_plus of a received mutation: %v %v", r, err)
	}

	ahead := want.Clone()
	ahead.Seqnos[0] += 5
	start := time.Now()
	_, err = ix.Scan(ctx, ScanRequest{Index: "i", Kind: ScanAll, Consistency: AtPlus, TS: ahead, Timeout: 30 * time.Millisecond})
	if !errors.Is(err, ErrScanTimeout) {
		t.Fatalf("at_plus ahead: %v, want ErrScanTimeout", err)
	}
	if time.Since(start) < 30*time.Millisecond {
		t.Fatal("at_plus gave up before its timeout")
	}

	// A waiter is served once the vector is reached.
	var target2 upr.Seqno
	for i := 0; ; i++ {
		doc := fmt.Sprintf("w%d", i)
		if g.vbOf(doc) == 0 {
			target2 = g.upsert(doc, target{inst: 1, key: enc(t, 2.0)})
			break
		}
	}
	wait := want.Clone()
	wait.Seqnos[0] = target2
	got := make(chan error, 1)
	go func() {
		r, err := ix.Scan(ctx, ScanRequest{Index: "i", Kind: ScanAll, Consistency: AtPlus, TS: wait, Timeout: 10 * time.Second})
		if err == nil && r.Count != 2 {
			err = fmt.Errorf("at_plus saw %v", docids(r.Entries))
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("at_plus returned (%v) before its vector was sent", err)
	case <-time.After(20 * time.Millisecond):
	}
	src.ch <- g.batch()
	if err := <-got; err != nil {
		t.Fatal(err)
	}

	// A rollback fails the waiters.
	ahead = g.kvSeqnos()
	ahead.Seqnos[1] += 3
	go func() {
		_, err := ix.Scan(ctx, ScanRequest{Index: "i", Kind: ScanAll, Consistency: AtPlus, TS: ahead, Timeout: 10 * time.Second})
		got <- err
	}()
	time.Sleep(10 * time.Millisecond)
	ix.failWaiters()
	if err := <-got; !errors.Is(err, ErrIndexRollback) {
		t.Fatalf("waiter on rollback: %v, want ErrIndexRollback", err)
	}
	if _, err := ix.Scan(ctx, ScanRequest{Index: "i", Kind: ScanAll, Consistency: RequestPlus}); err == nil {
		t.Fatal("request_plus without KVSeqnos succeeded")
	}
}

// TestCoordinatorMode: without promotions nothing becomes visible; a
// promotion of the aligned high-watermark is flushed and snapshotted.
func TestCoordinatorMode(t *testing.T) {
	ix := newTestIndexer(t, memoryEngine(t), Config{NumVbuckets: 4, STMode: ModeCoordinator, SnapshotInterval: 10 * time.Millisecond})
	mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"k"}})
	g := newGen(4)
	src := newChanSource()
	runIndexer(t, ix, src)
	for i := range 20 {
		g.upsert(fmt.Sprintf("d%d", i), target{inst: 1, key: enc(t, float64(i))})
	}
	// Leave vbucket 1 inside a snapshot.
	g.marker(1, 2)
	for i := 0; ; i++ {
		if doc := fmt.Sprintf("x%d", i); g.vbOf(doc) == 1 {
			g.upsert(doc, target{inst: 1, key: enc(t, 100.0)})
			break
		}
	}
	src.ch <- g.batch()
	for !equalSeqnos(ix.HWT().Seqnos, g.seq) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond) // three timer ticks
	if ts := ix.SnapshotTS(); ts.Sum() != 0 {
		t.Fatalf("snapshot at %v without a promotion", ts.Seqnos)
	}
	if err := ix.PromoteST(ix.HWT()); err == nil {
		t.Fatal("unaligned promotion accepted")
	}
	st := ix.AlignedHWT()
	if err := ix.PromoteST(st); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ix.WaitForTS(ctx, st); err != nil {
		t.Fatal(err)
	}
	r := scanAll(t, ix, "i")
	if !r.TS.Equal(st) || r.Count != 20 || r.TS.Seqnos[1] != g.seq[1]-1 {
		t.Fatalf("after promotion: %d entries at %v, want 20 at %v", r.Count, r.TS.Seqnos, st.Seqnos)
	}
	local := newTestIndexer(t, memoryEngine(t), Config{})
	if err := local.PromoteST(st); err == nil {
		t.Fatal("PromoteST accepted in local mode")
	}
}

// slowEngine wraps the memory engine with a store whose Apply sleeps and
// first calls check.
func slowEngine(delay time.Duration, check func()) engines.Engine {
	return engines.Engine{
		Name: "slow-memory",
		Open: func(dir string, opts engines.Options) (engines.Store, error) {
			st, err := memory.Open(dir, opts)
			if err != nil {
				return nil, err
			}
			return &slowStore{Store: st, delay: delay, check: check}, nil
		},
	}
}

type slowStore struct {
	engines.Store
	delay time.Duration
	check func()
}

func (s *slowStore) Apply(b *engines.Batch, d engines.Durability) error {
	s.check()
	time.Sleep(s.delay)
	return s.Store.Apply(b, d)
}

// TestBackpressure: with an engine slower than the source the reader
// blocks and the queue never exceeds its bound; everything still arrives.
func TestBackpressure(t *testing.T) {
	const bound = 100
	var ix *Indexer
	var mu sync.Mutex
	peak := 0
	check := func() {
		ix.mu.Lock()
		n := ix.q.len() + ix.inflight
		ix.mu.Unlock()
		mu.Lock()
		peak = max(peak, n)
		mu.Unlock()
	}
	ix = newTestIndexer(t, slowEngine(2*time.Millisecond, check), Config{
		NumVbuckets: 8, QueueSize: bound, SnapshotInterval: 10 * time.Millisecond, FlushBatchSize: 50,
	})
	mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"k"}, Partitions: 2})
	g := newGen(8)
	src := newChanSource()
	runIndexer(t, ix, src)
	for i := range 2000 {
		doc := fmt.Sprintf("d%d", i%300)
		g.upsert(doc, target{inst: 1, part: i % 2, key: enc(t, float64(i))})
		if i%50 == 49 {
			src.ch <- g.batch()
		}
		if i%200 == 199 {
			ix.mu.Lock()
			n := ix.q.len() + ix.inflight
			ix.mu.Unlock()
			if n > bound {
				t.Fatalf("queue holds %d key versions, bound %d", n, bound)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ix.WaitForTS(ctx, g.kvSeqnos()); err != nil {
		t.Fatal(err)
	}
	r := scanAll(t, ix, "i")
	wantEntries(t, r, modelEntriesAllParts(t, g, 1, r.TS))
	st := ix.Stats()
	if st.ReaderBlocks == 0 {
		t.Fatal("the reader never blocked: the test did not exercise backpressure")
	}
	mu.Lock()
	defer mu.Unlock()
	if peak > bound {
		t.Fatalf("queue peaked at %d key versions, bound %d", peak, bound)
	}
	t.Logf("reader blocked %d times for %v; queue peak %d", st.ReaderBlocks, st.ReaderBlocked, peak)
}

func modelEntriesAllParts(t *testing.T, g *gen, inst uint64, ts *upr.TsVbuuid) []defn.Entry {
	return modelEntries(t, g.log, inst, false, ts)
}

// TestFlushOnlyWhenFull: a vbucket snapshot larger than the queue can
// never align while the reader waits; the flusher applies what is queued
// without a snapshot, and the snapshot follows once it aligns.
func TestFlushOnlyWhenFull(t *testing.T) {
	ix := newTestIndexer(t, memoryEngine(t), Config{NumVbuckets: 1, QueueSize: 10, SnapshotInterval: 10 * time.Millisecond})
	mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"k"}})
	g := newGen(1)
	src := newChanSource()
	runIndexer(t, ix, src)
	g.marker(0, 100)
	for i := range 100 {
		g.upsert(fmt.Sprintf("d%03d", i), target{inst: 1, key: enc(t, float64(i))})
	}
	done := make(chan struct{})
	go func() {
		src.ch <- g.batch()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a snapshot of 100 items never got through a queue of 10")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ix.WaitForTS(ctx, g.kvSeqnos()); err != nil {
		t.Fatal(err)
	}
	r := scanAll(t, ix, "i")
	if r.Count != 100 || !r.TS.SnapAligned() {
		t.Fatalf("%d entries at %v %v", r.Count, r.TS.Seqnos, r.TS.Snapshots)
	}
	if st := ix.Stats(); st.FlushOnly == 0 || st.NumSnapshots == 0 {
		t.Fatalf("flush-only %d, snapshots %d", st.FlushOnly, st.NumSnapshots)
	}
}
