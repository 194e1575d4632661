package indexer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/idxbench/idxbench/workload/upr"
)

// flushLoop wakes every SnapshotInterval, and when kicked (queue half full,
// queue full, a promotion), and flushes.
func (ix *Indexer) flushLoop(ctx context.Context) error {
	t := time.NewTicker(ix.cfg.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-ix.kick:
		}
		if err := ix.flushOnce(); err != nil {
			return err
		}
	}
}

// flushOnce is one step of the flusher. In local mode it promotes the
// aligned high-watermark when it moved; in coordinator mode it takes the
// last promotion. It flushes to that stability timestamp and snapshots.
//
// Then, if the queues are still full and no stability timestamp was found
// on this wake and the one before, nothing would ever drain them (a
// snapshot larger than the queue bound can never become aligned while the
// reader is blocked): it flushes everything queued without taking a
// snapshot ("flush only"). Scans see it at the next aligned snapshot.
func (ix *Indexer) flushOnce() error {
	ix.flushMu.Lock()
	defer ix.flushMu.Unlock()
	if ix.broken != nil {
		return ix.broken
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
		if err := ix.flushTo(st, true); err != nil {
			return err
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
		return ix.flushTo(hwt, ix.cfg.STMode == ModeLocal)
	}
	// An idle indexer still takes its due recovery points, of the
	// published snapshot, which is what the stores hold.
	if ix.cfg.PersistInterval > 0 && time.Since(ix.lastPersist) >= ix.cfg.PersistInterval && ix.flushed.Equal(ix.snap.ts) {
		if err := ix.persist(ix.snap.ts); err != nil {
			ix.broken = err
			return err
		}
	}
	return nil
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

// flushTo applies every queued key version with seqno ≤ target's into the
// slices, partitions in parallel, then (if snapshot is set and the flushed
// vector is snapshot-aligned) publishes an in-memory snapshot and, when the
// persist interval elapsed, takes recovery points. The caller holds flushMu.
func (ix *Indexer) flushTo(target *upr.TsVbuuid, snapshot bool) error {
	start := time.Now()
	var dirty []*slice
	var routeErr error
	ix.mu.Lock()
	n := ix.q.take(target, func(run []item) {
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
			if len(s.work) == 0 {
				dirty = append(dirty, s)
			}
			s.work = append(s.work, *it)
			if ix.lagSeq++; ix.lagSeq >= ix.cfg.LagSampleEvery {
				ix.lagSeq = 0
				if it.emit != 0 {
					ix.lagPending = append(ix.lagPending, it.emit)
				}
			}
		}
	})
	ix.inflight += n
	ix.mu.Unlock()

	flushed := mergeTS(ix.flushed, target)
	res, err := ix.applyAll(dirty, flushed)
	for _, s := range dirty {
		clear(s.work)
		s.work = s.work[:0]
	}
	ix.mu.Lock()
	ix.inflight -= n
	ix.space.Broadcast()
	ix.mu.Unlock()
	if err = errors.Join(routeErr, err); err != nil {
		ix.broken = err
		return err
	}
	ix.flushed = flushed
	ix.st.flushes.Add(1)
	ix.st.flushedKVs.Add(int64(res.applied))
	ix.st.docsIndexed.Add(int64(res.changed))
	ix.record("flush", time.Since(start))

	if !snapshot || !flushed.SnapAligned() || (len(dirty) == 0 && flushed.Equal(ix.snap.ts) && !ix.recovering) {
		return nil
	}
	if ix.holdUntil != nil && !covers(flushed, ix.holdUntil) {
		// Some slice was restored to a later vector than others and is
		// replaying what it already holds: no snapshot until all caught up.
		return nil
	}
	if err := ix.takeSnapshot(flushed); err != nil {
		ix.broken = err
		return err
	}
	if ix.cfg.PersistInterval > 0 && time.Since(ix.lastPersist) >= ix.cfg.PersistInterval {
		if err := ix.persist(flushed); err != nil {
			ix.broken = err
			return err
		}
	}
	return nil
}

// applyAll applies each slice's work, in parallel over at most GOMAXPROCS
// goroutines.
func (ix *Indexer) applyAll(dirty []*slice, target *upr.TsVbuuid) (flushResult, error) {
	var total flushResult
	if len(dirty) == 1 {
		return dirty[0].apply(target, ix.cfg.FlushBatchSize, ix.cfg.Durability)
	}
	results := make([]flushResult, len(dirty))
	errs := make([]error, len(dirty))
	ix.parallel(len(dirty), func(i int) {
		results[i], errs[i] = dirty[i].apply(target, ix.cfg.FlushBatchSize, ix.cfg.Durability)
	})
	for _, r := range results {
		total.applied += r.applied
		total.changed += r.changed
	}
	return total, errors.Join(errs...)
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

// takeSnapshot publishes an in-memory snapshot at ts (new views for the
// slices that changed) and records the index lag of the sampled mutations
// it makes visible.
func (ix *Indexer) takeSnapshot(ts *upr.TsVbuuid) error {
	start := time.Now()
	// Counted first, so whoever sees the snapshot sees it counted.
	ix.st.snapshots.Add(1)
	if err := ix.publish(ts, true); err != nil {
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
// one. The caller holds flushMu.
func (ix *Indexer) publish(ts *upr.TsVbuuid, renew bool) error {
	next, err := nextSnapshot(ix.snap, ts.Clone(), ix.insts, renew, time.Now())
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

// persist takes a recovery point at ts of every slice changed since its
// last one, in parallel, and drops those beyond MaxRollbacks.
func (ix *Indexer) persist(ts *upr.TsVbuuid) error {
	start := time.Now()
	var unsaved []*slice
	for _, inst := range ix.insts {
		for _, s := range inst.slices {
			if s.unsaved {
				unsaved = append(unsaved, s)
			}
		}
	}
	ix.lastPersist = start
	if len(unsaved) == 0 {
		// Nothing changed since the slices' newest recovery points: the
		// state at ts is already recoverable.
		ix.setPersistedTS(ts)
		return nil
	}
	errs := make([]error, len(unsaved))
	ix.parallel(len(unsaved), func(i int) {
		errs[i] = unsaved[i].persist(ts, ix.cfg.MaxRollbacks, ix.cfg.Durability)
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ix.st.persisted.Add(1)
	ix.setPersistedTS(ts)
	ix.record("persist", time.Since(start))
	return nil
}

func (ix *Indexer) setPersistedTS(ts *upr.TsVbuuid) {
	ix.mu.Lock()
	ix.persistedTS = ts.Clone()
	ix.mu.Unlock()
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
