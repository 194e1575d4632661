package indexer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// replay returns the key versions of batches a producer resends when asked
// to stream from ts: stream begins, markers ending after ts, and items
// after ts.
func replay(batches []*projector.Batch, ts *upr.TsVbuuid) *projector.Batch {
	out := &projector.Batch{}
	for _, b := range batches {
		for _, kv := range b.KVs {
			switch {
			case kv.Cmd == projector.StreamBegin:
			case kv.Cmd == projector.Snapshot && kv.SnapEnd <= ts.Seqnos[kv.Vb]:
				continue
			case kv.Cmd != projector.Snapshot && kv.Seqno <= ts.Seqnos[kv.Vb]:
				continue
			}
			out.KVs = append(out.KVs, kv)
		}
	}
	return out
}

// rounds feeds n rounds of mutations touching both partitions of index
// "i" (instance 1) and flushes after each, returning the snapshot vectors
// and the batches sent.
func rounds(t *testing.T, ix *Indexer, g *gen, n, from int) (snaps []*upr.TsVbuuid, sent []*projector.Batch) {
	for round := from; round < from+n; round++ {
		for i := range 12 {
			g.upsert(fmt.Sprintf("d%02d", (round*5+i)%30), target{inst: 1, part: i % 2, key: enc(t, float64(round), float64(i))})
		}
		g.del(fmt.Sprintf("d%02d", round%30), target{inst: 1, part: 0}, target{inst: 1, part: 1})
		b := g.batch()
		sent = append(sent, b)
		feed(t, ix, b)
		step(t, ix)
		snaps = append(snaps, ix.SnapshotTS())
	}
	return snaps, sent
}

// TestRollback: a rollback restores the newest recovery point at or below
// the rollback point, fails waiting scans, and the stream resumes from the
// returned vector; a point below every recovery point empties the index.
func TestRollback(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engines.Engine) {
		rec := &recorder{}
		ix := newTestIndexer(t, e, Config{NumVbuckets: 4, PersistInterval: 1, MaxRollbacks: 3, Recorder: rec, BackIndexCacheBytes: 1 << 20})
		mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"a", "b"}, Partitions: 2})
		g := newGen(4)
		snaps, _ := rounds(t, ix, g, 5, 0)

		// A waiter for a vector never reached fails with the rollback.
		ahead := g.kvSeqnos()
		ahead.Seqnos[0] += 10
		waiter := make(chan error, 1)
		go func() {
			_, err := ix.Scan(context.Background(), ScanRequest{Index: "i", Kind: ScanAll, Consistency: AtPlus, TS: ahead, Timeout: 10 * time.Second})
			waiter <- err
		}()
		time.Sleep(5 * time.Millisecond)

		// Roll vb 0 back to just below S4's seqno: S3 is the newest
		// recovery point at or below it.
		point := snaps[3].Seqnos[0] - 1
		if point < snaps[2].Seqnos[0] {
			t.Fatalf("test setup: vb 0 did not move between S3 and S4")
		}
		restart, err := ix.Rollback(map[upr.Vbno]upr.Seqno{0: point})
		if err != nil {
			t.Fatal(err)
		}
		if !restart.Equal(snaps[2]) {
			t.Fatalf("restart at %v, want S3 %v", restart.Seqnos, snaps[2].Seqnos)
		}
		if err := <-waiter; !errors.Is(err, ErrIndexRollback) {
			t.Fatalf("waiter: %v, want ErrIndexRollback", err)
		}
		r := scanAll(t, ix, "i")
		if !r.TS.Equal(snaps[2]) {
			t.Fatalf("scan after rollback at %v, want %v", r.TS.Seqnos, snaps[2].Seqnos)
		}
		wantEntries(t, r, modelEntries(t, g.log, 1, false, r.TS))
		if rec.count("rollback") != 1 {
			t.Fatal("rollback duration not recorded")
		}

		// The stream resumes from the restart vector on a new history.
		g.rewind(restart)
		rounds(t, ix, g, 3, 100)
		r = scanAll(t, ix, "i")
		if !equalSeqnos(r.TS.Seqnos, g.seq) {
			t.Fatalf("after catching up at %v, stream at %v", r.TS.Seqnos, g.seq)
		}
		wantEntries(t, r, modelEntries(t, g.log, 1, false, r.TS))

		// Below every retained recovery point: back to zero.
		restart, err = ix.Rollback(map[upr.Vbno]upr.Seqno{0: 0, 1: 0, 2: 0, 3: 0})
		if err != nil {
			t.Fatal(err)
		}
		if restart.Sum() != 0 {
			t.Fatalf("restart at %v, want zero", restart.Seqnos)
		}
		if r := scanAll(t, ix, "i"); r.Count != 0 {
			t.Fatalf("%d entries after rollback to zero", r.Count)
		}
		g.rewind(restart)
		rounds(t, ix, g, 2, 200)
		r = scanAll(t, ix, "i")
		wantEntries(t, r, modelEntries(t, g.log, 1, false, r.TS))
	})
}

// rewind restarts the generator at ts, forgetting later key versions
// (a new history replaces them).
func (g *gen) rewind(ts *upr.TsVbuuid) {
	for vb := range g.seq {
		g.seq[vb], g.snapEnd[vb] = ts.Seqnos[vb], ts.Seqnos[vb]
	}
	kept := g.log[:0]
	for _, kv := range g.log {
		if kv.Seqno <= ts.Seqnos[kv.Vb] {
			kept = append(kept, kv)
		}
	}
	g.log = kept
}

// TestRestart: an indexer reopened on the same directory restores each
// slice's newest recovery point (durable engines; the memory engine starts
// empty), restarts the stream from there and catches up to the same index.
func TestRestart(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engines.Engine) {
		dir := t.TempDir()
		cfg := Config{Engine: e, Dir: dir, NumVbuckets: 4, PersistInterval: 1, MaxRollbacks: 2, BackIndexCacheBytes: 1 << 20}
		ix, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"a", "b"}, Partitions: 2})
		g := newGen(4)
		snaps, sent := rounds(t, ix, g, 3, 0)
		ix.cfg.PersistInterval = -1 // later rounds are not persisted
		_, more := rounds(t, ix, g, 2, 3)
		sent = append(sent, more...)
		if err := ix.Close(); err != nil {
			t.Fatal(err)
		}

		ix2 := newTestIndexer(t, e, cfg)
		mustCreate(t, ix2, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"a", "b"}, Partitions: 2})
		restart, err := ix2.Recover()
		if err != nil {
			t.Fatal(err)
		}
		want := upr.NewTsVbuuid(4)
		if e.Real {
			want = snaps[2]
		}
		if !restart.Equal(want) {
			t.Fatalf("restart at %v, want %v", restart.Seqnos, want.Seqnos)
		}
		r := scanAll(t, ix2, "i")
		wantEntries(t, r, modelEntries(t, g.log, 1, false, restart))
		if err := ix2.CreateInstance(InstanceDefn{ID: 9, Defn: defn.IndexDefn{Name: "x"}}); err != nil {
			t.Fatalf("create after recovery: %v", err)
		}
		feed(t, ix2, replay(sent, restart))
		step(t, ix2)
		r = scanAll(t, ix2, "i")
		if !equalSeqnos(r.TS.Seqnos, g.seq) {
			t.Fatalf("caught up to %v, stream at %v", r.TS.Seqnos, g.seq)
		}
		wantEntries(t, r, modelEntries(t, g.log, 1, false, r.TS))
	})
}

// heldRollback gives an indexer whose two partitions were restored to
// different vectors: partition 1 to S2, partition 0 to S3 (the hold). It
// returns the batches sent, both vectors and the restart vector.
func heldRollback(t *testing.T) (ix *Indexer, g *gen, sent []*projector.Batch, s2, s3, restart *upr.TsVbuuid) {
	ix = newTestIndexer(t, memoryEngine(t), Config{NumVbuckets: 2, PersistInterval: 1})
	mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"a"}, Partitions: 2})
	g = newGen(2)
	send := func(doc string, part int, v float64) {
		g.upsert(doc, target{inst: 1, part: part, key: enc(t, v)})
		b := g.batch()
		sent = append(sent, b)
		feed(t, ix, b)
		step(t, ix)
	}
	send("a", 0, 1)
	send("b", 1, 1)
	s2 = ix.SnapshotTS()
	send("a", 0, 2) // only partition 0 persists at S3
	s3 = ix.SnapshotTS()
	restart, err := ix.Rollback(map[upr.Vbno]upr.Seqno{0: 1000, 1: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return ix, g, sent, s2, s3, restart
}

// TestRecoveryHoldsSnapshots: slices restored to different vectors give
// no snapshot until the replay passes the latest of them, and DDL is
// refused meanwhile.
func TestRecoveryHoldsSnapshots(t *testing.T) {
	ix, g, sent, s2, s3, restart := heldRollback(t)
	if !restart.Equal(s2) {
		t.Fatalf("restart at %v, want %v (partition 1's newest)", restart.Seqnos, s2.Seqnos)
	}
	if _, err := ix.Scan(context.Background(), ScanRequest{Index: "i", Kind: ScanAll}); !errors.Is(err, ErrRecovering) {
		t.Fatalf("scan while held: %v, want ErrRecovering", err)
	}
	if err := ix.DropInstance(1); !errors.Is(err, ErrRecovering) {
		t.Fatalf("drop during recovery: %v, want ErrRecovering", err)
	}
	feed(t, ix, replay(sent, restart))
	step(t, ix)
	r := scanAll(t, ix, "i")
	if !r.TS.Equal(s3) {
		t.Fatalf("after replay at %v, want %v", r.TS.Seqnos, s3.Seqnos)
	}
	wantEntries(t, r, modelEntries(t, g.log, 1, false, r.TS))
}

// TestConfirmHoldAcrossABranch: after a failover whose branch point lies
// past every restored vector, the producer resends under the new vbuuid.
// A hold on the old vbuuid is then covered only once confirmed: unconfirmed,
// the indexer cannot tell an ancestor from an abandoned branch and keeps
// scans waiting; confirmed, the replay publishes the snapshot.
func TestConfirmHoldAcrossABranch(t *testing.T) {
	for _, confirm := range []bool{false, true} {
		t.Run(fmt.Sprintf("confirm=%v", confirm), func(t *testing.T) {
			ix, g, sent, _, _, restart := heldRollback(t)
			if ix.RecoveryHold() == nil {
				t.Fatal("no recovery hold: the test needs slices restored to different vectors")
			}
			if confirm {
				ix.ConfirmHold()
			}
			again := replay(sent, restart)
			for i := range again.KVs {
				again.KVs[i].Vbuuid += 500 // the new branch's vbuuid
			}
			feed(t, ix, again)
			step(t, ix)
			_, err := ix.Scan(context.Background(), ScanRequest{Index: "i", Kind: ScanAll})
			switch {
			case !confirm && !errors.Is(err, ErrRecovering):
				t.Fatalf("unconfirmed hold on the old vbuuid: scan says %v, want ErrRecovering", err)
			case confirm && err != nil:
				t.Fatalf("confirmed hold: scan says %v, want the replayed snapshot", err)
			}
			if confirm {
				r := scanAll(t, ix, "i")
				wantEntries(t, r, modelEntries(t, g.log, 1, false, r.TS))
			}
		})
	}
}
