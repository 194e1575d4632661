package workload

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var longFlag = flag.Bool("long", false, "run randomized tests for many more rounds")

// consumer is a minimal DCP consumer kept in a test: it applies streams to
// per-vbucket document maps, keeps a few snapshot-aligned checkpoints, and
// handles StreamEnd(state-changed) and Rollback the way the indexer does
// (restream from where it is; roll back to the newest checkpoint at or
// below the rollback seqno).
type consumer struct {
	t     *testing.T
	r     *rand.Rand
	b     *Bucket
	f     *Feed
	vbs   []cvb
	stats map[string]int
	trace []string // recent events and actions, printed on failure
}

func (c *consumer) tracef(format string, args ...any) {
	c.trace = append(c.trace, fmt.Sprintf(format, args...))
	if len(c.trace) > 200 {
		c.trace = c.trace[len(c.trace)-100:]
	}
}

func (c *consumer) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf(format+"\nrecent:\n%s", append(args, strings.Join(c.trace, "\n"))...)
}

type cvb struct {
	docs        map[string][]byte
	seqno       upr.Seqno
	vbuuid      upr.Vbuuid
	snap        [2]upr.Seqno
	first       bool // the next marker is the stream's first
	checkpoints []checkpoint
}

type checkpoint struct {
	seqno  upr.Seqno
	vbuuid upr.Vbuuid
	docs   map[string][]byte
}

func (c *consumer) request(vb upr.Vbno) {
	v := &c.vbs[vb]
	req := upr.StreamRequest{Vb: vb, Start: v.seqno, End: EndlessSeqno, Vbuuid: v.vbuuid,
		SnapStart: v.snap[0], SnapEnd: v.snap[1]}
	if v.seqno < v.snap[0] || v.seqno == 0 {
		// Nothing of the last marker's snapshot arrived: the consumer is
		// still at the end of the previous one.
		req.SnapStart, req.SnapEnd = v.seqno, v.seqno
	}
	c.tracef("request %+v", req)
	if err := c.f.Request(req); err != nil {
		c.t.Fatalf("request %+v: %v", req, err)
	}
}

func (c *consumer) apply(ev *upr.Event) {
	v := &c.vbs[ev.Vb]
	c.tracef("%s", ev)
	switch ev.Op {
	case upr.OpStreamBegin:
		v.vbuuid = ev.FailoverLog.Latest().Vbuuid
		v.first = true
		c.stats["begin"]++
	case upr.OpSnapshot:
		if v.seqno == 0 {
			clear(v.docs) // a backfill replaces everything
		}
		// Markers move forward, but for the first one of a resumed stream,
		// which spans the requester's partial snapshot.
		if ev.SnapStart > ev.SnapEnd || ev.SnapEnd <= v.seqno ||
			!v.first && ev.SnapStart <= v.seqno && v.seqno != 0 {
			c.fatalf("vb %d: marker %d..%d after seqno %d", ev.Vb, ev.SnapStart, ev.SnapEnd, v.seqno)
		}
		if v.first && v.seqno > 0 && v.seqno >= v.snap[0] && v.seqno < v.snap[1] && ev.SnapEnd < v.snap[1] {
			c.fatalf("vb %d: resumed inside %v at %d, first marker %d..%d", ev.Vb, v.snap, v.seqno, ev.SnapStart, ev.SnapEnd)
		}
		v.first = false
		v.snap = [2]upr.Seqno{ev.SnapStart, ev.SnapEnd}
	case upr.OpMutation, upr.OpDeletion, upr.OpExpiration:
		if ev.Seqno <= v.seqno || ev.Seqno > v.snap[1] {
			c.t.Fatalf("vb %d: seqno %d after %d in snapshot %v", ev.Vb, ev.Seqno, v.seqno, v.snap)
		}
		if ev.Vbuuid != v.vbuuid {
			c.t.Fatalf("vb %d: item on vbuuid %d, stream began on %d", ev.Vb, ev.Vbuuid, v.vbuuid)
		}
		if ev.Op == upr.OpMutation {
			v.docs[string(ev.Key)] = ev.Value
		} else {
			delete(v.docs, string(ev.Key))
		}
		v.seqno = ev.Seqno
		if v.seqno == v.snap[1] && c.r.IntN(4) == 0 {
			v.checkpoints = append(v.checkpoints, checkpoint{v.seqno, v.vbuuid, maps.Clone(v.docs)})
			if len(v.checkpoints) > 3 {
				v.checkpoints = v.checkpoints[1:]
			}
		}
	case upr.OpStreamEnd:
		if ev.EndReason != upr.EndStateChanged {
			c.t.Fatalf("vb %d: unexpected %v", ev.Vb, ev)
		}
		c.stats["state-changed"]++
		c.request(ev.Vb)
	case upr.OpRollback:
		c.stats["rollback"]++
		if ev.RollbackSeqno == 0 {
			c.stats["rollback-0"]++
		}
		// Newest checkpoint at or below the rollback seqno, else zero.
		for len(v.checkpoints) > 0 && v.checkpoints[len(v.checkpoints)-1].seqno > ev.RollbackSeqno {
			v.checkpoints = v.checkpoints[:len(v.checkpoints)-1]
		}
		if n := len(v.checkpoints); n > 0 {
			cp := v.checkpoints[n-1]
			v.seqno, v.vbuuid, v.snap, v.docs = cp.seqno, cp.vbuuid, [2]upr.Seqno{cp.seqno, cp.seqno}, maps.Clone(cp.docs)
			c.tracef("restored checkpoint %d/%d (%d docs)", cp.seqno, cp.vbuuid, len(cp.docs))
		} else {
			v.seqno, v.vbuuid, v.snap, v.docs = 0, 0, [2]upr.Seqno{}, map[string][]byte{}
		}
		c.request(ev.Vb)
	}
}

// poll applies up to max events; it returns how many there were.
func (c *consumer) poll(max int) int {
	buf := make([]upr.Event, 1+c.r.IntN(40))
	total := 0
	for total < max {
		n, err := c.f.Poll(buf[:min(len(buf), max-total)])
		if err != nil {
			c.t.Fatal(err)
		}
		if n == 0 {
			break
		}
		for i := range buf[:n] {
			c.apply(&buf[i])
		}
		total += n
	}
	return total
}

// vector is the consumer's position, and whether every vbucket is
// snapshot-aligned there.
func (c *consumer) vector() (*upr.TsVbuuid, bool) {
	ts := upr.NewTsVbuuid(len(c.vbs))
	aligned := true
	for vb, v := range c.vbs {
		ts.Seqnos[vb], ts.Vbuuids[vb], ts.Snapshots[vb] = v.seqno, v.vbuuid, v.snap
		aligned = aligned && (v.seqno == 0 || v.seqno == v.snap[1] || v.seqno < v.snap[0])
	}
	return ts, aligned
}

// check compares the consumer's documents with the oracle's primary and
// by_city indexes at the consumer's vector.
func (c *consumer) check(o *Oracle, ts *upr.TsVbuuid) error {
	pk, err := o.Expected(defn.IndexDefn{Name: "pk", IsPrimary: true}, ts)
	if err != nil {
		return err
	}
	byCity, err := o.Expected(defn.IndexDefn{Name: "by_city", SecExprs: []string{"city", "age"}, Where: "active = true"}, ts)
	if err != nil {
		return err
	}
	all := map[string][]byte{}
	for _, v := range c.vbs {
		maps.Copy(all, v.docs)
	}
	ids := slices.Sorted(maps.Keys(all))
	if got := entryIDs(pk); !slices.Equal(got, ids) {
		c.fatalf("primary at %v: oracle %d docs, consumer %d\noracle %v\nconsumer %v", ts, len(got), len(ids), got, ids)
	}
	var want []defn.Entry
	for _, id := range ids {
		var doc map[string]any
		if json.Unmarshal(all[id], &doc) != nil || doc["active"] != true {
			continue
		}
		city, ok := doc["city"]
		if !ok {
			continue
		}
		age, ok := doc["age"]
		if !ok {
			age = defn.Missing
		}
		want = append(want, defn.Entry{Key: []any{city, age}, DocID: id})
	}
	if !slices.EqualFunc(byCity, want, func(a, b defn.Entry) bool {
		return a.DocID == b.DocID && slices.Equal(a.Key, b.Key)
	}) {
		c.fatalf("by_city at %v differs:\noracle   %v\nconsumer %v", ts, byCity, want)
	}
	return nil
}

func entryIDs(es []defn.Entry) []string {
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.DocID
	}
	return ids
}

// TestFeedModel drives a bucket with random operations, failovers and
// compactions while a consumer follows its streams, and checks at every
// snapshot-aligned point that the consumer holds exactly what the oracle
// says; at the end the consumer must have converged to the bucket.
func TestFeedModel(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 1))
	rounds := 12
	if testing.Short() {
		rounds = 3
	}
	if *longFlag {
		rounds = 500
	}
	stats := map[string]int{}
	for round := range rounds {
		s := DefaultSpec()
		s.Seed = r.Uint64()
		s.Vbuckets = 1 + r.IntN(6)
		s.Docs = r.IntN(60)
		s.SnapshotItems = 1 + r.IntN(8)
		if r.IntN(4) == 0 {
			// Snapshots longer than a history segment (segItems).
			s.SnapshotItems = segItems/2 + r.IntN(2*segItems)
		}
		s.Fields.Cities = 5
		s.ValueSize = SizeDist{Dist: "fixed", Mean: 1}
		s.Ops = OpMix{Insert: 0.3, Update: 0.4, Delete: 0.15, Expire: 0.15}
		g := mustGen(t, s)
		var now int64
		b := g.NewBucket(BucketOptions{Clock: func() int64 { now++; return now }})
		g.Load(b)
		o := NewOracle(b)
		c := &consumer{t: t, r: r, b: b, f: b.NewFeed(), vbs: make([]cvb, s.Vbuckets), stats: stats}
		for vb := range c.vbs {
			c.vbs[vb].docs = map[string][]byte{}
			c.request(upr.Vbno(vb))
		}
		for step := 0; step < 300; step++ {
			switch x := r.IntN(100); {
			case x < 50:
				for range 1 + r.IntN(10) {
					g.Apply(b, g.Next())
				}
			case x < 85:
				c.poll(1 + r.IntN(50))
			case x < 92:
				vb := upr.Vbno(r.IntN(s.Vbuckets))
				b.mu.Lock()
				lo, hi := b.vbs[vb].compacted, b.vbs[vb].high
				b.mu.Unlock()
				at := hi - upr.Seqno(r.IntN(int(min(hi-lo, 8))+1))
				c.tracef("failover vb %d at %d", vb, at)
				if err := b.Failover(vb, at); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				stats["failover"]++
			default:
				// Forget below every checkpoint and position of the
				// consumer, as an indexer's oldest snapshot would allow.
				below, _ := c.vector()
				for vb, v := range c.vbs {
					for _, cp := range v.checkpoints {
						below.Seqnos[vb] = min(below.Seqnos[vb], cp.seqno)
					}
				}
				c.tracef("forget below %v", below.Seqnos)
				o.Forget(below)
				stats["compact"]++
			}
			if ts, aligned := c.vector(); aligned {
				if err := c.check(o, ts); err != nil {
					// Only a consumer that has not yet heard of a failover
					// may stand past its branch's end.
					if !c.behindFailover() {
						t.Fatalf("round %d step %d: oracle: %v", round, step, err)
					}
					stats["oracle-refused"]++
				} else {
					stats["checks"]++
				}
			}
		}
		for c.poll(1<<30) > 0 {
		}
		ts, aligned := c.vector()
		if !aligned || !ts.Equal(ts) || !slices.Equal(ts.Seqnos, b.CurrentSeqnos().Seqnos) ||
			!slices.Equal(ts.Vbuuids, b.CurrentSeqnos().Vbuuids) {
			t.Fatalf("round %d: consumer ended at %v %v, bucket at %v %v", round, ts.Seqnos, ts.Vbuuids,
				b.CurrentSeqnos().Seqnos, b.CurrentSeqnos().Vbuuids)
		}
		if err := c.check(o, ts); err != nil {
			t.Fatalf("round %d: final check: %v", round, err)
		}
		c.f.Close()
	}
	t.Logf("stats: %v", stats)
	for _, k := range []string{"failover", "rollback", "rollback-0", "state-changed", "checks", "compact"} {
		if stats[k] == 0 && !testing.Short() {
			t.Errorf("the model test never exercised %q", k)
		}
	}
}

// behindFailover reports whether some vbucket's consumer position is past
// the end of its branch, i.e. a StreamEnd(state-changed) is on its way.
func (c *consumer) behindFailover() bool {
	for vb, v := range c.vbs {
		log := c.b.FailoverLog(upr.Vbno(vb))
		i := slices.IndexFunc(log, func(e upr.FailoverEntry) bool { return e.Vbuuid == v.vbuuid })
		if i < 0 || (i > 0 && v.seqno > log[i-1].Seqno) {
			return true
		}
	}
	return false
}

// TestFeedConcurrent has a writer goroutine apply operations while a
// reader blocks in Next; the reader must see every seqno of every
// vbucket, in order, and return when the feed is closed.
func TestFeedConcurrent(t *testing.T) {
	s := smallSpec(testSeed(t))
	s.Docs = 100
	g := mustGen(t, s)
	b := g.NewBucket(BucketOptions{})
	g.Load(b)
	f := b.NewFeed()
	for vb := range s.Vbuckets {
		if err := f.Request(upr.StreamRequest{Vb: upr.Vbno(vb), Start: 0, End: EndlessSeqno}); err != nil {
			t.Fatal(err)
		}
	}
	const ops = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range ops {
			g.Apply(b, g.Next())
		}
	}()
	last := make([]upr.Seqno, s.Vbuckets)
	buf := make([]upr.Event, 64)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var total upr.Seqno
	for total < ops+upr.Seqno(s.Docs) {
		n, err := f.Next(ctx, buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range buf[:n] {
			switch ev.Op {
			case upr.OpSnapshot:
				if ev.SnapStart != 0 {
					total += ev.SnapStart - last[ev.Vb] - 1 // nothing is skipped after the backfill
				}
			case upr.OpMutation, upr.OpDeletion, upr.OpExpiration:
				if ev.Seqno <= last[ev.Vb] {
					t.Fatalf("vb %d: seqno %d after %d", ev.Vb, ev.Seqno, last[ev.Vb])
				}
				if last[ev.Vb] != 0 || ev.Seqno == 1 {
					total += ev.Seqno - last[ev.Vb]
				} else {
					total += ev.Seqno
				}
				last[ev.Vb] = ev.Seqno
			}
		}
	}
	wg.Wait()
	if got, want := upr.Seqno(0), b.CurrentSeqnos(); !slices.Equal(last, want.Seqnos) {
		t.Fatalf("reader ended at %v, bucket at %v (%d)", last, want.Seqnos, got)
	}
	done := make(chan error)
	go func() {
		_, err := f.Next(context.Background(), buf)
		done <- err
	}()
	f.Close()
	if err := <-done; err != ErrFeedClosed {
		t.Fatalf("Next after Close: %v", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	f2 := b.NewFeed()
	if _, err := f2.Next(ctx2, buf); err != context.Canceled {
		t.Fatalf("Next with a cancelled context: %v", err)
	}
}
