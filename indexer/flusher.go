package indexer

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/workload/upr"
)

// maxRounds is how many flush rounds may be in flight at once. With two, a
// slice that finished its part of one round goes on with the next while a
// slower slice (or one taking a recovery point) is still busy, and the
// reader's queue space frees slice by slice instead of at a barrier.
const maxRounds = 2

// A round is one flush to a stability timestamp: every slice's queued key
// versions up to target applied, then, at that boundary in each slice, a
// read view for the in-memory snapshot and a recovery point when due. Each
// slice's part is a job; a slice runs its jobs in round order, slices run
// in parallel, and rounds complete — publish their snapshot — in order.
type round struct {
	target   *upr.TsVbuuid // the flushed vector once the round is done
	snapshot bool          // publish a snapshot at target when done
	persist  bool          // the jobs take recovery points at target
	start    time.Time
	items    int     // data key versions taken from the queues
	lag      []int64 // sampled EmitNanos of those key versions
	jobs     []*sliceJob

	remaining atomic.Int32
	done      chan struct{} // closed when every job is done
}

// sliceJob is one slice's part of a round.
type sliceJob struct {
	s       *slice
	items   []item
	view    bool // take a view at the round's boundary
	persist bool // take a recovery point there

	// Results, written by the job before the round's done closes.
	res      flushResult
	v        *viewRef
	persistD time.Duration
	err      error
}

// flushLoop wakes every SnapshotInterval, when kicked (queue half full,
// queue full, a promotion, a waiting scan's vector covered) and when a
// round completes, and flushes. When
// ctx ends it waits for the rounds in flight and completes them.
func (ix *Indexer) flushLoop(ctx context.Context) error {
	t := time.NewTicker(ix.cfg.SnapshotInterval)
	defer t.Stop()
	for {
		promote := true
		select {
		case <-ctx.Done():
			ix.flushMu.Lock()
			defer ix.flushMu.Unlock()
			return ix.drain()
		case <-t.C:
		case <-ix.kick:
		case <-ix.roundDone:
			// A new round only under queue pressure or for a waiting
			// scan whose vector the stream now covers (STOnDemand);
			// the timer paces the rest.
			ix.mu.Lock()
			promote = ix.q.len()+ix.inflight >= ix.cfg.QueueSize/2 || ix.cfg.STOnDemand && ix.tk.due
			ix.mu.Unlock()
		}
		if err := ix.flushOnce(promote); err != nil {
			return err
		}
	}
}

// flushOnce is one step of the flusher. It completes the rounds that are
// done. Then, if fewer than maxRounds are in flight and promote is set: in
// local mode it promotes the aligned high-watermark when it moved, in
// coordinator mode it takes the last promotion, and it starts a round to
// that stability timestamp.
//
// Then, if the queues are still full and no stability timestamp was found
// on this wake and the one before, nothing would ever drain them (a
// snapshot larger than the queue bound can never become aligned while the
// reader is blocked): it flushes everything queued without taking a
// snapshot ("flush only"). Scans see it at the next aligned snapshot.
func (ix *Indexer) flushOnce(promote bool) error {
	ix.flushMu.Lock()
	defer ix.flushMu.Unlock()
	if ix.broken != nil {
		return ix.broken
	}
	if err := ix.completeRounds(false); err != nil {
		return err
	}
	if len(ix.rounds) >= maxRounds || !promote {
		return nil
	}
	ix.mu.Lock()
	if ix.closed {
		ix.mu.Unlock()
		return ErrClosed
	}
	var st *upr.TsVbuuid
	if ix.cfg.STMode == ModeLocal {
		st = ix.tk.promoteLocal()
	} else {
		st, ix.pendingST = ix.pendingST, nil
	}
	ix.mu.Unlock()
	if st != nil {
		ix.stalls = 0
		ix.startRound(st, true)
		if len(ix.rounds) >= maxRounds {
			return nil
		}
	}
	ix.mu.Lock()
	full := ix.q.len() >= ix.cfg.QueueSize
	var hwt *upr.TsVbuuid
	if full && st == nil {
		ix.stalls++
		if ix.stalls >= 2 {
			hwt = ix.tk.hwt()
			ix.stalls = 0
		}
	}
	ix.mu.Unlock()
	if hwt != nil {
		ix.st.flushOnly.Add(1)
		ix.startRound(hwt, ix.cfg.STMode == ModeLocal)
		return nil
	}
	// An idle indexer still takes its due recovery points, of the
	// published snapshot, which is what the stores hold: a round with
	// nothing to apply.
	if len(ix.rounds) == 0 && ix.cfg.PersistInterval > 0 && time.Since(ix.lastPersist) >= ix.cfg.PersistInterval && ix.flushed.Equal(ix.snap.ts) {
		ix.startRound(ix.flushed, true)
	}
	return nil
}

// lockQuiet takes the flush lock and completes every round in flight, so
// the slices are the caller's until it unlocks. On error the lock is held
// too.
func (ix *Indexer) lockQuiet() error {
	ix.flushMu.Lock()
	return ix.drain()
}

// drain waits for every round in flight and completes it. The caller holds
// flushMu.
func (ix *Indexer) drain() error {
	err := ix.completeRounds(true)
	if err == nil {
		err = ix.broken
	}
	return err
}

// mergeTS returns, per vbucket, the later of flushed and target: target's
// entry when its seqno is not lower (so an aligned entry wins a tie).
func mergeTS(flushed, target *upr.TsVbuuid) *upr.TsVbuuid {
	m := flushed.Clone()
	for vb := range m.Seqnos {
		if target.Seqnos[vb] >= m.Seqnos[vb] {
			setPoint(m, vb, pointOf(target, vb))
		}
	}
	return m
}

// startRound takes every queued key version with seqno ≤ target's, hands
// each slice its part as a job, and returns; completeRounds finishes the
// round. If snapshot is set and the vector the round reaches is
// snapshot-aligned, the round publishes an in-memory snapshot and, when the
// persist interval elapsed, takes recovery points. The caller holds flushMu.
func (ix *Indexer) startRound(target *upr.TsVbuuid, snapshot bool) {
	r := &round{start: time.Now(), done: make(chan struct{})}
	jobs := make(map[*slice]*sliceJob)
	var routeErr error
	ix.mu.Lock()
	r.items = ix.q.take(target, func(run []item) {
		for i := range run {
			it := &run[i]
			inst := ix.insts[it.inst]
			if inst == nil {
				ix.st.skipped.Add(1)
				continue
			}
			if int(it.part) < 0 || int(it.part) >= len(inst.slices) {
				if routeErr == nil {
					routeErr = fmt.Errorf("indexer: index %q has %d partitions, key version for %q names partition %d",
						inst.defn.Name, len(inst.slices), it.docid, it.part)
				}
				continue
			}
			s := inst.slices[it.part]
			j := jobs[s]
			if j == nil {
				j = &sliceJob{s: s, items: s.takeSpare()}
				jobs[s] = j
			}
			j.items = append(j.items, *it)
			if ix.lagSeq++; ix.lagSeq >= ix.cfg.LagSampleEvery {
				ix.lagSeq = 0
				if it.emit != 0 {
					r.lag = append(r.lag, it.emit)
				}
			}
		}
	})
	ix.inflight += r.items
	for s, j := range jobs {
		s.lastJob = len(j.items)
	}
	ix.mu.Unlock()

	base := ix.flushed
	if n := len(ix.rounds); n > 0 {
		base = ix.rounds[n-1].target
	}
	r.target = mergeTS(base, target)
	r.snapshot = snapshot && r.target.SnapAligned()
	if r.snapshot && ix.holdUntil != nil && !covers(r.target, ix.holdUntil) {
		// Some slice was restored to a later vector than others and is
		// replaying what it already holds: no snapshot until all caught up.
		r.snapshot = false
	}
	if r.snapshot && ix.cfg.PersistInterval > 0 && time.Since(ix.lastPersist) >= ix.cfg.PersistInterval {
		r.persist = true
		ix.lastPersist = r.start
	}
	for _, inst := range ix.insts {
		for _, s := range inst.slices {
			j := jobs[s]
			if j != nil {
				s.dirty, s.unsaved = true, true
			}
			view, persist := r.snapshot && s.dirty, r.persist && s.unsaved
			if j == nil && !view && !persist {
				continue
			}
			if j == nil {
				j = &sliceJob{s: s}
			}
			if view {
				j.view, s.dirty = true, false
			}
			if persist {
				j.persist, s.unsaved = true, false
			}
			r.jobs = append(r.jobs, j)
		}
	}
	if routeErr != nil {
		// Run nothing: the round completes failed.
		r.jobs = append(r.jobs[:0], &sliceJob{err: routeErr})
	}
	ix.rounds = append(ix.rounds, r)
	r.remaining.Store(int32(len(r.jobs)))
	if len(r.jobs) == 0 {
		close(r.done)
		return
	}
	for _, j := range r.jobs {
		if j.s == nil {
			ix.jobDone(r)
			continue
		}
		prev, done := j.s.tail, make(chan struct{})
		j.s.tail = done
		go ix.runJob(r, j, prev, done)
	}
}

// runJob runs j after the slice's previous job (prev), with at most
// GOMAXPROCS jobs writing at once.
func (ix *Indexer) runJob(r *round, j *sliceJob, prev <-chan struct{}, done chan<- struct{}) {
	defer ix.jobDone(r)
	defer close(done)
	if prev != nil {
		<-prev
	}
	ix.sem <- struct{}{}
	defer func() { <-ix.sem }()
	s := j.s
	if s.failed != nil {
		j.err = fmt.Errorf("slice %q: an earlier flush failed: %w", s.name, s.failed)
		return
	}
	if len(j.items) > 0 {
		s.work = j.items
		j.res, j.err = s.apply(r.target, ix.cfg.FlushBatchSize, ix.cfg.Durability)
		s.work = nil
		clear(j.items) // drop the key and docid references
		ix.mu.Lock()
		ix.inflight -= len(j.items)
		s.spares = append(s.spares, j.items[:0])
		ix.space.Broadcast()
		ix.mu.Unlock()
		j.items = nil
	}
	if j.err == nil && j.view {
		j.v, j.err = s.newView()
	}
	if j.err == nil && j.persist {
		start := time.Now()
		j.err = s.persist(r.target, ix.cfg.MaxRollbacks, ix.cfg.Durability)
		j.persistD = time.Since(start)
	}
	if j.err != nil {
		s.failed = j.err
	}
}

func (ix *Indexer) jobDone(r *round) {
	if r.remaining.Add(-1) == 0 {
		close(r.done)
		select {
		case ix.roundDone <- struct{}{}:
		default:
		}
	}
}

// takeSpare returns an emptied item buffer an earlier job of s gave back,
// so a steady stream of rounds allocates none, or a new one as large as
// the slice's last job. The caller holds ix.mu.
func (s *slice) takeSpare() []item {
	for n := len(s.spares); n > 0; n-- {
		b := s.spares[n-1]
		s.spares = s.spares[:n-1]
		if cap(b) >= s.lastJob {
			return b
		}
	}
	return make([]item, 0, s.lastJob)
}

// completeRounds completes the rounds in flight in order: all of them when
// wait is set, else those already done. The caller holds flushMu.
func (ix *Indexer) completeRounds(wait bool) error {
	for len(ix.rounds) > 0 {
		r := ix.rounds[0]
		if wait {
			<-r.done
		} else {
			select {
			case <-r.done:
			default:
				return nil
			}
		}
		ix.rounds = ix.rounds[1:]
		if err := ix.completeRound(r); err != nil {
			// The later rounds still run; wait for them so no job
			// outlives the flusher, and keep the first error.
			for _, later := range ix.rounds {
				<-later.done
				for _, j := range later.jobs {
					if j.v != nil {
						j.v.release()
					}
				}
			}
			ix.rounds = nil
			ix.broken = err
			return err
		}
	}
	return nil
}

// joinJobErrors reports a round's failed jobs. Slices that failed for one
// cause — a full disk fails every slice on it, a failed store every later
// call — are reported once, naming the other slices, rather than once
// each; failures of different kinds are all kept (errors.Join).
func joinJobErrors(jobs []*sliceJob) error {
	errs := make([]error, len(jobs))
	names := make([]string, len(jobs))
	for i, j := range jobs {
		errs[i], names[i] = j.err, j.s.name
	}
	return engines.JoinStoreErrors(errs, names, "slices")
}

// completeRound accounts for a finished round and publishes its snapshot.
func (ix *Indexer) completeRound(r *round) error {
	var res flushResult
	fresh := make(map[*slice]*viewRef)
	var persistD time.Duration
	persisted := false
	for _, j := range r.jobs {
		res.applied += j.res.applied
		res.changed += j.res.changed
		if j.v != nil {
			fresh[j.s] = j.v
		}
		if j.persist {
			persisted = true
			persistD = max(persistD, j.persistD)
		}
	}
	if err := joinJobErrors(r.jobs); err != nil {
		for _, v := range fresh {
			v.release()
		}
		return err
	}
	ix.flushed = r.target
	ix.st.flushes.Add(1)
	ix.st.flushedKVs.Add(int64(res.applied))
	ix.st.docsIndexed.Add(int64(res.changed))
	ix.record("flush", time.Since(r.start))
	ix.lagPending = append(ix.lagPending, r.lag...)
	if !r.snapshot {
		return nil
	}
	if len(fresh) > 0 || !r.target.Equal(ix.snap.ts) || ix.recovering {
		if err := ix.takeSnapshot(r.target, fresh); err != nil {
			return err
		}
	}
	if r.persist {
		if persisted {
			ix.st.persisted.Add(1)
			ix.record("persist", persistD)
		}
		ix.setPersistedTS(r.target)
	}
	return nil
}

// parallel runs fn(0..n-1) on at most GOMAXPROCS goroutines and waits.
func (ix *Indexer) parallel(n int, fn func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// takeSnapshot publishes an in-memory snapshot at ts (the views in fresh,
// new views for slices new to it) and records the index lag of the sampled
// mutations it makes visible.
func (ix *Indexer) takeSnapshot(ts *upr.TsVbuuid, fresh map[*slice]*viewRef) error {
	start := time.Now()
	// Counted first, so whoever sees the snapshot sees it counted.
	ix.st.snapshots.Add(1)
	if err := ix.publishViews(ts, fresh, false); err != nil {
		return err
	}
	ix.record("snapshot", time.Since(start))
	if ix.cfg.Clock != nil && ix.cfg.Recorder != nil && len(ix.lagPending) > 0 {
		now := ix.cfg.Clock()
		for _, e := range ix.lagPending {
			ix.cfg.Recorder.Record("index_lag", time.Duration(now-e))
		}
	}
	ix.lagPending = ix.lagPending[:0]
	return nil
}

// publish makes a snapshot at ts the latest and wakes scans waiting for
// one; with renew, slices changed since the last snapshot get new views.
// The caller holds flushMu and no round is in flight.
func (ix *Indexer) publish(ts *upr.TsVbuuid, renew bool) error {
	return ix.publishViews(ts, nil, renew)
}

func (ix *Indexer) publishViews(ts *upr.TsVbuuid, fresh map[*slice]*viewRef, renew bool) error {
	next, err := nextSnapshot(ix.snap, ts.Clone(), ix.insts, fresh, renew, time.Now())
	if err != nil {
		return err
	}
	ix.mu.Lock()
	prev := ix.snap
	ix.snap = next
	ix.recovering, ix.holdUntil = false, nil
	close(ix.snapCh)
	ix.snapCh = make(chan struct{})
	ix.mu.Unlock()
	return prev.release()
}

func (ix *Indexer) setPersistedTS(ts *upr.TsVbuuid) {
	ix.mu.Lock()
	ix.persistedTS = ts.Clone()
	close(ix.persistCh)
	ix.persistCh = make(chan struct{})
	ix.mu.Unlock()
}

// WaitPersisted waits until ok accepts the latest round of persistent
// snapshots — its vector (nil before the first round) and the number of
// rounds that persisted something (Stats.NumPersisted) — and returns that
// vector. ok is called with no lock held, once now and once after each
// round. It fails with ErrClosed when the indexer closes and with ctx's
// error when ctx is done.
func (ix *Indexer) WaitPersisted(ctx context.Context, ok func(ts *upr.TsVbuuid, rounds int64) bool) (*upr.TsVbuuid, error) {
	for {
		ix.mu.Lock()
		closed, ch := ix.closed, ix.persistCh
		var ts *upr.TsVbuuid
		if ix.persistedTS != nil {
			ts = ix.persistedTS.Clone()
		}
		ix.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if ok(ts, ix.st.persisted.Load()) {
			return ts, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// PersistedTS is the vector of the latest persistent snapshot round: what a
// restart would recover at least (nil before the first). A round that found
// no slice changed since its recovery points still counts, since the state
// at its vector is then already recoverable.
func (ix *Indexer) PersistedTS() *upr.TsVbuuid {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.persistedTS == nil {
		return nil
	}
	return ix.persistedTS.Clone()
}

func (ix *Indexer) record(op string, d time.Duration) {
	if ix.cfg.Recorder != nil {
		ix.cfg.Recorder.Record(op, d)
	}
}
