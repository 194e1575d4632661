package indexer

import (
	"context"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// randomRounds is n, or ten times n with IDXBENCH_LONG=1 set (for soak runs
// beyond the package's one-minute budget).
func randomRounds(n int) int {
	if os.Getenv("IDXBENCH_LONG") != "" {
		return 10 * n
	}
	return n
}

func testSeed(t *testing.T) uint64 {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed: %d (rerun with: go test ./indexer -run '%s' -seed=%d)", seed, t.Name(), seed)
	return seed
}

// randomIndexes are the instances the randomized tests maintain: a simple
// key, a partitioned composite key and a partitioned primary index.
var randomIndexes = []struct {
	id   uint64
	defn defn.IndexDefn
}{
	{1, defn.IndexDefn{Name: "simple", SecExprs: []string{"a"}}},
	{2, defn.IndexDefn{Name: "composite", SecExprs: []string{"a", "b"}, Partitions: 3}},
	{3, defn.IndexDefn{Name: "primary", IsPrimary: true, Partitions: 2}},
}

func randomValue(r *rand.Rand) any {
	switch r.IntN(5) {
	case 0:
		return float64(r.IntN(20) - 5)
	case 1:
		return fmt.Sprintf("s%d", r.IntN(20))
	case 2:
		return r.IntN(2) == 0
	case 3:
		return nil
	}
	return []any{float64(r.IntN(3)), "x"}
}

// randomMutation generates one mutation of a random document: an upsert
// (each secondary index sees a new key, the old key or no key), a deletion,
// or a mutation no index cares about (Sync).
func randomMutation(t *testing.T, r *rand.Rand, g *gen, docs int) {
	doc := fmt.Sprintf("doc%03d", r.IntN(docs))
	part := func(n int) int { return int(crc32.ChecksumIEEE([]byte(doc)) % uint32(n)) }
	switch x := r.IntN(10); {
	case x < 6:
		var ts []target
		cmd := projector.Upsert
		if r.IntN(4) == 0 {
			// The leading field went missing: UpsertDeletion everywhere
			// but the primary index.
			ts = append(ts, target{inst: 1}, target{inst: 2, part: part(3)})
			g.mutate(doc, projector.UpsertDeletion, ts...)
			return
		}
		a := randomValue(r)
		ts = append(ts,
			target{inst: 1, key: enc(t, a)},
			target{inst: 2, part: part(3), key: enc(t, a, randomValue(r))},
			target{inst: 3, part: part(2), key: enc(t, doc)})
		g.mutate(doc, cmd, ts...)
	case x < 9:
		g.del(doc, target{inst: 1}, target{inst: 2, part: part(3)}, target{inst: 3, part: part(2)})
	default:
		g.mutate(doc, projector.Upsert)
	}
}

func checkAgainstModel(t *testing.T, ix *Indexer, g *gen, r *ScanResult, id uint64, name string, primary bool) {
	t.Helper()
	want := modelEntries(t, g.log, id, primary, r.TS)
	if len(want) == 0 && len(r.Entries) == 0 {
		return
	}
	if fmtEntries(r.Entries) != fmtEntries(want) {
		t.Fatalf("index %s at %v:\n got  %s\n want %s", name, r.TS.Seqnos, fmtEntries(r.Entries), fmtEntries(want))
	}
}

// TestRandomized drives the deterministic core: random mutations across
// vbuckets in snapshots of random length, fed in random batches, with flush
// steps at random points; after each step every index's full scan must
// equal a model computed from the same key versions at the snapshot's
// vector, and that vector must be snapshot-aligned.
func TestRandomized(t *testing.T) {
	for _, nvb := range []int{1, 1024} {
		t.Run(fmt.Sprintf("vbuckets=%d", nvb), func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, e engines.Engine) {
				r := rand.New(rand.NewPCG(testSeed(t), 0))
				cache := []int64{0, 2000, 1 << 20}[r.IntN(3)]
				t.Logf("back-index cache %d bytes", cache)
				ix := newTestIndexer(t, e, Config{NumVbuckets: nvb, FlushBatchSize: 1 + r.IntN(64), PersistInterval: time.Duration(r.IntN(2)), BackIndexCacheBytes: cache})
				for _, in := range randomIndexes {
					mustCreate(t, ix, in.id, in.defn)
				}
				g := newGen(nvb)
				docs := 20 + r.IntN(200)
				for round := range randomRounds(20) {
					for range r.IntN(200) {
						vb := upr.Vbno(r.IntN(nvb))
						if g.seq[vb] == g.snapEnd[vb] && r.IntN(3) == 0 {
							g.marker(vb, 1+r.IntN(6))
						}
						randomMutation(t, r, g, docs)
						if r.IntN(40) == 0 {
							feed(t, ix, g.batch())
						}
					}
					feed(t, ix, g.batch())
					step(t, ix)
					var ts *upr.TsVbuuid
					for _, in := range randomIndexes {
						res := scanAll(t, ix, in.defn.Name)
						if ts == nil {
							ts = res.TS
						} else if !ts.Equal(res.TS) {
							t.Fatalf("round %d: scans at different vectors", round)
						}
						if !res.TS.SnapAligned() || !res.TS.SeqnosLE(g.kvSeqnos()) {
							t.Fatalf("round %d: snapshot at %v %v is not aligned within the stream", round, res.TS.Seqnos, res.TS.Snapshots)
						}
						checkAgainstModel(t, ix, g, res, in.id, in.defn.Name, in.defn.IsPrimary)
					}
					// The snapshot is at the aligned high-watermark. A vbucket
					// whose stream began but sent nothing yet has a vbuuid in
					// the watermark and none in the snapshot (a round with
					// nothing to flush takes no snapshot): same position.
					hwt := ix.AlignedHWT()
					for vb := range hwt.Seqnos {
						if ts.Seqnos[vb] != hwt.Seqnos[vb] || ts.Snapshots[vb] != hwt.Snapshots[vb] ||
							(hwt.Seqnos[vb] > 0 && ts.Vbuuids[vb] != hwt.Vbuuids[vb]) {
							t.Fatalf("round %d: vb %d: snapshot at %d %x %v, aligned high-watermark %d %x %v", round, vb,
								ts.Seqnos[vb], ts.Vbuuids[vb], ts.Snapshots[vb], hwt.Seqnos[vb], hwt.Vbuuids[vb], hwt.Snapshots[vb])
						}
					}
				}
			})
		})
	}
}

// TestRandomizedRunning runs the indexer on its own goroutines with scans
// racing the flusher: every scan result must equal the model at the vector
// it reports, and a request_plus scan after the last batch sees it all.
func TestRandomizedRunning(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engines.Engine) {
		r := rand.New(rand.NewPCG(testSeed(t), 0))
		const nvb = 64
		g := newGen(nvb)
		kv := make(chan *upr.TsVbuuid, 1)
		kv <- upr.NewTsVbuuid(nvb)
		ix := newTestIndexer(t, e, Config{
			NumVbuckets: nvb, SnapshotInterval: 10 * time.Millisecond, QueueSize: 50 + r.IntN(500),
			FlushBatchSize: 1 + r.IntN(100), PersistInterval: 20 * time.Millisecond, MaxRollbacks: 2,
			BackIndexCacheBytes: []int64{0, 2000, 1 << 20}[r.IntN(3)],
			KVSeqnos:            func() *upr.TsVbuuid { ts := <-kv; kv <- ts; return ts.Clone() },
		})
		for _, in := range randomIndexes {
			mustCreate(t, ix, in.id, in.defn)
		}
		src := newChanSource()
		runIndexer(t, ix, src)
		logs := make(chan []projector.KeyVersion, 1)
		gr := rand.New(rand.NewPCG(r.Uint64(), 1))
		go func() {
			r := gr
			for range randomRounds(30) {
				for range r.IntN(100) {
					vb := upr.Vbno(r.IntN(nvb))
					if g.seq[vb] == g.snapEnd[vb] && r.IntN(3) == 0 {
						g.marker(vb, 1+r.IntN(4))
					}
					randomMutation(t, r, g, 150)
				}
				// Close every open snapshot so the end is aligned.
				for vb := range nvb {
					for g.seq[vb] != g.snapEnd[vb] {
						g.seq[vb]++
						g.kvs = append(g.kvs, projector.KeyVersion{Cmd: projector.Sync, Vb: upr.Vbno(vb), Vbuuid: vbuuidOf(upr.Vbno(vb)), Seqno: g.seq[vb]})
					}
				}
				src.ch <- g.batch()
				<-kv
				kv <- g.kvSeqnos()
			}
			logs <- g.log
		}()
		ctx := context.Background()
		var results []*ScanResult
		var names []int
	loop:
		for {
			select {
			case log := <-logs:
				for i, in := range randomIndexes {
					res, err := ix.Scan(ctx, ScanRequest{Index: in.defn.Name, Kind: ScanAll, Consistency: RequestPlus, Timeout: 20 * time.Second})
					if err != nil {
						t.Fatal(err)
					}
					if !res.TS.AsRecent(g.kvSeqnos()) {
						t.Fatalf("request_plus scan at %v, bucket at %v", res.TS.Seqnos, g.seq)
					}
					results = append(results, res)
					names = append(names, i)
				}
				g.log = log
				break loop
			default:
				i := r.IntN(len(randomIndexes))
				res, err := ix.Scan(ctx, ScanRequest{Index: randomIndexes[i].defn.Name, Kind: ScanAll})
				if err != nil {
					t.Fatal(err)
				}
				results = append(results, res)
				names = append(names, i)
				time.Sleep(time.Millisecond)
			}
		}
		for k, res := range results {
			in := randomIndexes[names[k]]
			checkAgainstModel(t, ix, g, res, in.id, in.defn.Name, in.defn.IsPrimary)
		}
		st := ix.Stats()
		t.Logf("%d scans checked; stats %+v", len(results), st)
	})
}
