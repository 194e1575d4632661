package indexer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// TestTimekeeperDemand drives the timekeeper's demand bookkeeping by calls:
// a demand is due when the aligned high-watermark covers it and the
// stability timestamp does not, a promotion settles it, stamp dates it, and
// a reset recounts.
func TestTimekeeperDemand(t *testing.T) {
	tk := newTimekeeper(2)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	want := func(s0, s1 upr.Seqno) *upr.TsVbuuid {
		ts := upr.NewTsVbuuid(2)
		ts.Seqnos[0], ts.Seqnos[1] = s0, s1
		return ts
	}
	must(tk.streamBegin(0, 7))
	must(tk.streamBegin(1, 8))
	must(tk.snapshot(0, 7, 1, 2))
	must(tk.seqno(0, 7, 1))

	id := tk.addDemand(want(2, 1))
	if tk.due || tk.unstamped {
		t.Fatal("a demand nothing covers is due")
	}
	must(tk.seqno(0, 7, 2)) // vb0 aligned at 2; vb1 still missing
	if tk.due {
		t.Fatal("due with vb1 still missing")
	}
	must(tk.snapshot(1, 8, 1, 1))
	must(tk.seqno(1, 8, 1))
	if !tk.due || !tk.unstamped {
		t.Fatal("not due once the aligned high-watermark covers the demand")
	}
	if tk.demandMet(id) != 0 {
		t.Fatal("met time set before stamp")
	}
	tk.stamp(42)
	if got := tk.demandMet(id); got != 42 {
		t.Fatalf("met at %d, want the stamp 42", got)
	}
	tk.stamp(43) // a later stamp does not move it
	if got := tk.demandMet(id); got != 42 {
		t.Fatalf("met at %d after a second stamp, want 42", got)
	}
	if st := tk.promoteLocal(); st == nil || st.Seqnos[0] != 2 || st.Seqnos[1] != 1 {
		t.Fatalf("promoted %v, want [2 1]", st)
	}
	if tk.due {
		t.Fatal("still due after the promotion")
	}

	// A demand the stability timestamp already covers is met, not due.
	id2 := tk.addDemand(want(1, 1))
	if tk.due || !tk.unstamped {
		t.Fatalf("covered demand: due=%v unstamped=%v, want met and not due", tk.due, tk.unstamped)
	}
	tk.stamp(50)
	// One the aligned high-watermark covers but the ST does not is due at
	// once.
	must(tk.snapshot(0, 7, 3, 3))
	must(tk.seqno(0, 7, 3))
	id3 := tk.addDemand(want(3, 0))
	if !tk.due {
		t.Fatal("a demand the stream already covers is not due")
	}
	tk.dropDemand(id)
	tk.dropDemand(id2)
	if tk.demandMet(id) != 0 || tk.demandMet(id2) != 0 {
		t.Fatal("dropped demands still answer")
	}

	// A reset below the demand makes it missing again.
	tk.reset(want(1, 0))
	if tk.due || tk.demandMet(id3) != 0 {
		t.Fatal("reset left the demand met")
	}
	must(tk.streamBegin(0, 9))
	must(tk.snapshot(0, 9, 2, 3))
	must(tk.seqno(0, 9, 3))
	if !tk.due {
		t.Fatal("not due after the stream covered the demand again")
	}
	tk.dropDemand(id3)
	if len(tk.demands) != 0 {
		t.Fatalf("%d demands left", len(tk.demands))
	}
}

// TestSTOnDemand: with STOnDemand, request_plus and at_plus scans are
// served long before the next timer tick (the interval is 5 s, so the
// bound below has a wide margin), their answers are the model's, and the
// delay after the stream covered them is recorded. Without it, the same
// scan is not served before the tick.
func TestSTOnDemand(t *testing.T) {
	const interval = 5 * time.Second
	forEachEngine(t, func(t *testing.T, e engines.Engine) {
		g := newGen(8)
		var mu sync.Mutex
		rec := &recorder{}
		ix := newTestIndexer(t, e, Config{
			NumVbuckets:      8,
			SnapshotInterval: interval,
			STOnDemand:       true,
			KVSeqnos: func() *upr.TsVbuuid {
				mu.Lock()
				defer mu.Unlock()
				return g.kvSeqnos()
			},
			Recorder: rec,
		})
		mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"k"}})
		src := newChanSource()
		runIndexer(t, ix, src)
		ctx := context.Background()
		start := time.Now()
		const n = 20
		for i := range n {
			doc := fmt.Sprintf("doc%d", i)
			mu.Lock()
			g.upsert(doc, target{inst: 1, key: enc(t, float64(i))})
			b := g.batch()
			at := g.kvSeqnos()
			mu.Unlock()
			// The scan waits first; the batch arrives after it.
			go func() { src.ch <- b }()
			req := ScanRequest{Index: "i", Kind: ScanAll, Consistency: RequestPlus, Timeout: time.Minute}
			if i%2 == 1 {
				req.Consistency, req.TS = AtPlus, at
			}
			r, err := ix.Scan(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if !at.SeqnosLE(r.TS) {
				t.Fatalf("%v scan after %s read %v, before %v", req.Consistency, doc, r.TS.Seqnos, at.Seqnos)
			}
			mu.Lock()
			model := modelEntries(t, g.log, 1, false, r.TS)
			mu.Unlock()
			if got, w := fmtEntries(r.Entries), fmtEntries(model); got != w {
				t.Fatalf("%v scan after %s at %v:\ngot  %s\nwant %s", req.Consistency, doc, r.TS.Seqnos, got, w)
			}
		}
		if el := time.Since(start); el >= interval/2 {
			t.Fatalf("%d scans took %v with ST on demand; the timer alone would serve each at %v", n, el, interval)
		}
		if rec.count("st_delay") == 0 {
			t.Fatalf("no st_delay recorded: %v", rec.ops)
		}
	})
}

// TestSTOnDemandOff is the control: without the option, a request_plus
// scan is not served before the next tick of a long interval.
func TestSTOnDemandOff(t *testing.T) {
	g := newGen(4)
	var mu sync.Mutex
	ix := newTestIndexer(t, memoryEngine(t), Config{
		NumVbuckets:      4,
		SnapshotInterval: time.Minute,
		KVSeqnos: func() *upr.TsVbuuid {
			mu.Lock()
			defer mu.Unlock()
			return g.kvSeqnos()
		},
	})
	mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"k"}})
	src := newChanSource()
	runIndexer(t, ix, src)
	mu.Lock()
	g.upsert("a", target{inst: 1, key: enc(t, 1.0)})
	b := g.batch()
	mu.Unlock()
	src.ch <- b
	_, err := ix.Scan(context.Background(), ScanRequest{Index: "i", Kind: ScanAll, Consistency: RequestPlus, Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrScanTimeout) {
		t.Fatalf("request_plus without ST on demand: %v, want ErrScanTimeout before the minute's tick", err)
	}
}

func TestSTOnDemandNeedsLocalMode(t *testing.T) {
	cfg := Config{Engine: memoryEngine(t), Dir: t.TempDir(), STMode: ModeCoordinator, STOnDemand: true}
	err := cfg.EnsureDefaults().Validate()
	if err == nil || !strings.Contains(err.Error(), "ST on demand") {
		t.Fatalf("coordinator mode with ST on demand: %v", err)
	}
	if s := (Config{STOnDemand: true}).String(); !strings.Contains(s, "st_on_demand=true") {
		t.Fatalf("String() = %q lacks st_on_demand", s)
	}
}
