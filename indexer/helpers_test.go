package indexer

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idxbench/idxbench/engines"
	_ "github.com/idxbench/idxbench/engines/memory"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/projector/collate"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

var (
	flagSeed    = flag.Uint64("seed", 0, "seed for randomized tests (0: derive one from the time)")
	flagEngines = flag.String("engines", os.Getenv("IDXBENCH_ENGINES"), "comma-separated engines to test (default: every registered one; env IDXBENCH_ENGINES)")
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testEngines lists the engines the engine-parameterised tests run on.
func testEngines(t testing.TB) []engines.Engine {
	names := engines.Names()
	if *flagEngines != "" {
		names = strings.Split(*flagEngines, ",")
	}
	var es []engines.Engine
	for _, n := range names {
		e, err := engines.Lookup(n)
		if err != nil {
			t.Fatalf("engine %q: %v", n, err)
		}
		es = append(es, e)
	}
	return es
}

// forEachEngine runs fn as a subtest per engine.
func forEachEngine(t *testing.T, fn func(t *testing.T, e engines.Engine)) {
	for _, e := range testEngines(t) {
		t.Run(e.Name, func(t *testing.T) { fn(t, e) })
	}
}

func memoryEngine(t testing.TB) engines.Engine {
	e, err := engines.Lookup("memory")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// newTestIndexer returns an indexer on e in a temporary directory, closed
// when the test ends.
func newTestIndexer(t testing.TB, e engines.Engine, cfg Config) *Indexer {
	t.Helper()
	cfg.Engine = e
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.NumVbuckets == 0 {
		cfg.NumVbuckets = 4
	}
	if cfg.PersistInterval == 0 {
		cfg.PersistInterval = -1
	}
	ix, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ix.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return ix
}

func mustCreate(t testing.TB, ix *Indexer, id uint64, d defn.IndexDefn) {
	t.Helper()
	if err := ix.CreateInstance(InstanceDefn{ID: id, Defn: d}); err != nil {
		t.Fatal(err)
	}
}

func enc(t testing.TB, vs ...any) []byte {
	t.Helper()
	b, err := collate.AppendComposite(nil, vs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// target is where one key version goes: an instance partition, with the key
// (nil for a deletion or an UpsertDeletion).
type target struct {
	inst uint64
	part int
	key  []byte
}

// gen builds a stream of key versions the way the projector sends them:
// per vbucket a StreamBegin, snapshot markers, and items with increasing
// seqnos, each mutation giving one key version per instance partition.
type gen struct {
	seq     []upr.Seqno
	snapEnd []upr.Seqno
	begun   []bool
	kvs     []projector.KeyVersion
	// log is every data key version generated, for models.
	log  []projector.KeyVersion
	emit int64
}

func newGen(nvb int) *gen {
	return &gen{seq: make([]upr.Seqno, nvb), snapEnd: make([]upr.Seqno, nvb), begun: make([]bool, nvb)}
}

func vbuuidOf(vb upr.Vbno) upr.Vbuuid { return upr.Vbuuid(1000 + int(vb)) }

func (g *gen) vbOf(docid string) upr.Vbno {
	return upr.Vbno(crc32.ChecksumIEEE([]byte(docid)) % uint32(len(g.seq)))
}

func (g *gen) begin(vb upr.Vbno) {
	if !g.begun[vb] {
		g.begun[vb] = true
		g.kvs = append(g.kvs, projector.KeyVersion{Cmd: projector.StreamBegin, Vb: vb, Vbuuid: vbuuidOf(vb)})
	}
}

// marker opens a snapshot of n items on vb.
func (g *gen) marker(vb upr.Vbno, n int) {
	g.begin(vb)
	s := g.seq[vb]
	g.snapEnd[vb] = s + upr.Seqno(n)
	g.kvs = append(g.kvs, projector.KeyVersion{Cmd: projector.Snapshot, Vb: vb, Vbuuid: vbuuidOf(vb), SnapStart: s + 1, SnapEnd: s + upr.Seqno(n)})
}

// next allocates vb's next seqno, opening a one-item snapshot if none is
// open.
func (g *gen) next(vb upr.Vbno) upr.Seqno {
	if g.seq[vb] == g.snapEnd[vb] {
		g.marker(vb, 1)
	}
	g.seq[vb]++
	return g.seq[vb]
}

// mutate emits one mutation of docid: cmd with each target's key.
func (g *gen) mutate(docid string, cmd projector.Command, ts ...target) upr.Seqno {
	vb := g.vbOf(docid)
	s := g.next(vb)
	g.emit++
	if len(ts) == 0 {
		g.kvs = append(g.kvs, projector.KeyVersion{Cmd: projector.Sync, Vb: vb, Vbuuid: vbuuidOf(vb), Seqno: s})
		return s
	}
	for _, tg := range ts {
		kv := projector.KeyVersion{Cmd: cmd, InstID: tg.inst, Partition: tg.part, Vb: vb, Vbuuid: vbuuidOf(vb),
			Seqno: s, DocID: []byte(docid), Key: tg.key, EmitNanos: g.emit}
		g.kvs = append(g.kvs, kv)
		g.log = append(g.log, kv)
	}
	return s
}

func (g *gen) upsert(docid string, ts ...target) upr.Seqno {
	return g.mutate(docid, projector.Upsert, ts...)
}

func (g *gen) del(docid string, ts ...target) upr.Seqno {
	return g.mutate(docid, projector.Deletion, ts...)
}

// batch hands over what was generated since the last call.
func (g *gen) batch() *projector.Batch {
	b := &projector.Batch{KVs: g.kvs}
	g.kvs = nil
	return b
}

// kvSeqnos is the bucket's seqnos as generated so far.
func (g *gen) kvSeqnos() *upr.TsVbuuid {
	ts := upr.NewTsVbuuid(len(g.seq))
	for vb, s := range g.seq {
		ts.Seqnos[vb] = s
		if s != 0 {
			ts.Vbuuids[vb] = vbuuidOf(upr.Vbno(vb))
		}
	}
	return ts
}

// feed hands a batch to the indexer's reader core directly.
func feed(t testing.TB, ix *Indexer, b *projector.Batch) {
	t.Helper()
	if err := ix.receive(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// step runs one deterministic flush-loop step and waits for the rounds it
// started to complete.
func step(t testing.TB, ix *Indexer) {
	t.Helper()
	if err := ix.flushOnce(true); err != nil {
		t.Fatal(err)
	}
	err := ix.lockQuiet()
	ix.flushMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
}

// modelEntries computes an instance's entries at ts from a key-version log,
// independently of the flusher: replay in order, per document the last
// key version at or below ts wins.
func modelEntries(t testing.TB, log []projector.KeyVersion, inst uint64, primary bool, ts *upr.TsVbuuid) []defn.Entry {
	t.Helper()
	type loc struct {
		part int
		doc  string
	}
	cur := map[loc][]byte{}
	for _, kv := range log {
		if kv.InstID != inst || kv.Seqno > ts.Seqnos[kv.Vb] {
			continue
		}
		l := loc{kv.Partition, string(kv.DocID)}
		switch kv.Cmd {
		case projector.Upsert:
			cur[l] = kv.Key
		default:
			delete(cur, l)
		}
	}
	type ent struct {
		key []byte
		doc string
	}
	var es []ent
	for l, k := range cur {
		if primary {
			k = enc(t, l.doc)
		}
		es = append(es, ent{k, l.doc})
	}
	slices.SortFunc(es, func(a, b ent) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(a.doc, b.doc)
	})
	out := make([]defn.Entry, 0, len(es))
	for _, e := range es {
		vs, err := collate.Decode(e.key)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, defn.Entry{Key: vs, DocID: e.doc})
	}
	return out
}

func scanAll(t testing.TB, ix *Indexer, name string) *ScanResult {
	t.Helper()
	r, err := ix.Scan(context.Background(), ScanRequest{Index: name, Kind: ScanAll})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func docids(es []defn.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.DocID
	}
	return out
}

func fmtEntries(es []defn.Entry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%v:%s ", e.Key, e.DocID)
	}
	return b.String()
}

// chanSource is a Source fed by the test.
type chanSource struct {
	ch chan *projector.Batch
}

func newChanSource() *chanSource { return &chanSource{ch: make(chan *projector.Batch)} }

func (s *chanSource) Recv(ctx context.Context) (*projector.Batch, error) {
	select {
	case b, ok := <-s.ch:
		if !ok {
			return nil, io.EOF
		}
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// runIndexer runs ix.Run on src in the background until the test ends.
func runIndexer(t testing.TB, ix *Indexer, src Source) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx, src) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
	})
	return stop
}

// recorder collects Record calls.
type recorder struct {
	mu  sync.Mutex
	ops map[string][]time.Duration
}

func (r *recorder) Record(op string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ops == nil {
		r.ops = map[string][]time.Duration{}
	}
	r.ops[op] = append(r.ops[op], d)
}

func (r *recorder) count(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops[op])
}
