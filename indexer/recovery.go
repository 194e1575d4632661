package indexer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/workload/upr"
)

// Recovery: both flows restore every slice to a recovery point, then
// restart the stream from the oldest vector any slice was restored to.
// Slices restored to later vectors replay mutations they already hold;
// replay converges (an upsert of the key a document has is a no-op, and
// the last version of each document wins), and no snapshot is published
// until the flushed vector covers the latest restored one, so scans never
// see a slice ahead of another.
//
// Both need Run to be stopped (the stream stopped): the caller cancels
// Run, calls Rollback or Recover, requests the streams from the returned
// vector, and runs again.

// Recover is the restart flow, called after the instances were created
// again (CreateInstance reopens their stores) and before Run: each slice
// is rolled back to its newest recovery point (its live contents may be
// ahead of it, or torn by a crash), a slice without one is emptied, and the
// returned vector is where the streams must restart.
func (ix *Indexer) Recover() (*upr.TsVbuuid, error) {
	return ix.restore("recover", nil, func(rps []engines.RecoveryPoint) int { return len(rps) - 1 })
}

// Rollback is the KV-rollback flow. points holds, per vbucket the producer
// asked to roll back, the seqno it rolls back to. Queued key versions are
// dropped (with Config.RollbackQueues keep, those that continue where the
// slices were restored to are kept), waiting scans fail with
// ErrIndexRollback, and each slice is rolled back to its newest recovery
// point whose vector is at or below every point (or emptied when none is).
// It returns the vector the streams must restart from.
func (ix *Indexer) Rollback(points map[upr.Vbno]upr.Seqno) (*upr.TsVbuuid, error) {
	for vb := range points {
		if int(vb) >= ix.cfg.NumVbuckets {
			return nil, fmt.Errorf("rollback: vb %d out of range [0,%d)", vb, ix.cfg.NumVbuckets)
		}
	}
	return ix.restore("rollback", points, func(rps []engines.RecoveryPoint) int {
		for i := len(rps) - 1; i >= 0; i-- {
			var ts upr.TsVbuuid
			if ts.UnmarshalBinary(rps[i].Meta) != nil || ts.Len() != ix.cfg.NumVbuckets {
				continue
			}
			ok := true
			for vb, s := range points {
				if ts.Seqnos[vb] > s {
					ok = false
					break
				}
			}
			if ok {
				return i
			}
		}
		return -1
	})
}

// restore is the common core: choose picks the recovery point (index into
// rps, -1 for none) of each slice. points are a rollback's (nil for a
// restart), the bound on what a kept queue may hold.
func (ix *Indexer) restore(what string, points map[upr.Vbno]upr.Seqno, choose func(rps []engines.RecoveryPoint) int) (*upr.TsVbuuid, error) {
	if ix.running.Load() {
		return nil, fmt.Errorf("%s: stop Run first", what)
	}
	start := time.Now()
	// Run stopped, so no round is in flight; a failed one left the
	// indexer broken, which the restore below repairs.
	_ = ix.lockQuiet()
	defer ix.flushMu.Unlock()

	// Stop serving the old snapshot, fail waiters, drop the queues.
	ix.mu.Lock()
	if ix.closed {
		ix.mu.Unlock()
		return nil, ErrClosed
	}
	ix.recovering = true
	ix.persistedTS = nil
	var oldQ *mutationQueue
	var oldAligned, oldFlushed *upr.TsVbuuid
	if points != nil && ix.cfg.RollbackQueues == RollbackQueuesKeep {
		// Every round completed (lockQuiet), so the queue holds exactly
		// what was received past the flushed vector.
		oldQ, oldAligned, oldFlushed = ix.q, ix.tk.alignedHWT(), ix.flushed.Clone()
	}
	ix.q = newMutationQueue(ix.cfg.NumVbuckets)
	ix.pendingST = nil
	ix.rollbackGen++
	close(ix.snapCh)
	ix.snapCh = make(chan struct{})
	old := ix.snap
	ix.snap = &snapshot{seq: old.seq, ts: old.ts, taken: old.taken, insts: map[uint64]*snapInstance{}}
	ix.snap.refs.Store(1)
	ix.mu.Unlock()
	ix.lagPending = ix.lagPending[:0]
	if err := old.release(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}

	var all []*slice
	for _, inst := range ix.insts {
		all = append(all, inst.slices...)
	}
	for _, s := range all {
		<-s.noViews() // scans still reading finish first
	}
	errs := make([]error, len(all))
	ix.parallel(len(all), func(i int) {
		errs[i] = ix.restoreSlice(all[i], choose)
	})
	if err := errors.Join(errs...); err != nil {
		ix.broken = err
		return nil, fmt.Errorf("%s: %w", what, err)
	}

	restart, hold := upr.NewTsVbuuid(ix.cfg.NumVbuckets), upr.NewTsVbuuid(ix.cfg.NumVbuckets)
	for i, s := range all {
		for vb := range ix.cfg.NumVbuckets {
			p := pointOf(s.ts, vb)
			if i == 0 || p.seqno < restart.Seqnos[vb] {
				setPoint(restart, vb, p)
			}
			if i == 0 || p.seqno > hold.Seqnos[vb] {
				setPoint(hold, vb, p)
			}
		}
	}
	ix.flushed = restart.Clone()
	ix.lastPersist = time.Now()
	ix.stalls = 0
	ix.broken = nil
	from := restart
	ix.mu.Lock()
	if oldQ != nil {
		var kept int
		from, kept = keepQueued(oldQ, ix.q, restart, hold, oldFlushed, oldAligned, points)
		ix.st.rollbackKept.Add(int64(kept))
	}
	ix.tk.reset(from)
	// The kept key versions are received but not stable: the next
	// promotion covers them.
	ix.tk.st = restart.Clone()
	ix.holdUntil = hold
	ix.mu.Unlock()
	if restart.Equal(hold) {
		if err := ix.publish(restart, true); err != nil {
			ix.broken = err
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	ix.record(what, time.Since(start))
	ix.cfg.Logger.Info("slices restored", "flow", what, "slices", len(all), "restart_seqnos", restart.Sum(),
		"hold_seqnos", hold.Sum(), "stream_seqnos", from.Sum(), "took", time.Since(start))
	return from.Clone(), nil
}

// keepQueued moves from old to q, per vbucket, the queued key versions a
// rollback may keep, and returns the vector the streams restart from (the
// restored vector, past the kept versions) and how many it kept. A
// vbucket's queue is kept when every slice was restored exactly to the
// vector flushed last (where the queue begins: restart and hold both equal
// flushed there), and only up to the last complete snapshot received
// (aligned), which must not pass the vbucket's rollback point if it has
// one; what lies past that snapshot is dropped, for the stream to send
// again.
func keepQueued(old, q *mutationQueue, restart, hold, flushed, aligned *upr.TsVbuuid,
	points map[upr.Vbno]upr.Seqno) (*upr.TsVbuuid, int) {
	from := restart.Clone()
	kept := 0
	for vb := range restart.Len() {
		r, a := pointOf(restart, vb), pointOf(aligned, vb)
		if r != pointOf(hold, vb) || r.seqno != flushed.Seqnos[vb] || r.vbuuid != flushed.Vbuuids[vb] || a.seqno <= r.seqno {
			continue
		}
		if p, ok := points[upr.Vbno(vb)]; ok && a.seqno > p {
			continue
		}
		for _, it := range old.vbs[vb][old.heads[vb]:] {
			if it.seqno > a.seqno {
				break
			}
			q.push(it)
			kept++
		}
		setPoint(from, vb, a)
	}
	return from, kept
}

// restoreSlice rolls s back to the recovery point choose picks, or empties
// it. A store found damaged on the way (its recovery points unreadable, a
// rollback that meets damage) is rebuilt empty instead of failing the
// whole flow: the slice restarts from the zero vector and the streams
// replay it.
func (ix *Indexer) restoreSlice(s *slice, choose func([]engines.RecoveryPoint) int) error {
	err := ix.restoreSlice1(s, choose)
	if err == nil || !damaged(err) {
		return err
	}
	st, rerr := replaceWithEmpty(&ix.cfg, s.dir, s.store)
	if rerr != nil {
		return fmt.Errorf("%w; rebuilding it failed: %w", err, rerr)
	}
	s.store = st
	s.failed = nil
	s.cache.reset(true)
	s.ts = upr.NewTsVbuuid(ix.cfg.NumVbuckets)
	s.rps = nil
	ix.noteRebuilt(s, err)
	return nil
}

// noteRebuilt counts and logs a slice rebuilt from empty.
func (ix *Indexer) noteRebuilt(s *slice, why error) {
	ix.st.slicesRebuilt.Add(1)
	ix.cfg.Logger.Warn("slice store damaged; rebuilt empty, the streams replay it from the start",
		"slice", s.name, "dir", s.dir, "reason", why)
}

func (ix *Indexer) restoreSlice1(s *slice, choose func([]engines.RecoveryPoint) int) error {
	rps, err := s.store.RecoveryPoints()
	if err != nil {
		return fmt.Errorf("slice %q: list recovery points: %w", s.name, err)
	}
	s.dirty, s.unsaved = true, false
	if i := choose(rps); i >= 0 {
		var ts upr.TsVbuuid
		if err := ts.UnmarshalBinary(rps[i].Meta); err != nil {
			return fmt.Errorf("slice %q: recovery point %d: %w", s.name, rps[i].ID, err)
		}
		if ts.Len() != ix.cfg.NumVbuckets {
			return fmt.Errorf("slice %q: recovery point %d is over %d vbuckets, the indexer over %d", s.name, rps[i].ID, ts.Len(), ix.cfg.NumVbuckets)
		}
		if err := s.store.RollbackTo(rps[i].ID); err != nil {
			return fmt.Errorf("slice %q: roll back to recovery point %d: %w", s.name, rps[i].ID, err)
		}
		s.ts = &ts
		s.cache.reset(false)
		s.rps = s.rps[:0]
		for _, rp := range rps[:i+1] {
			s.rps = append(s.rps, rp.ID)
		}
		return nil
	}
	// No usable recovery point: start the slice over, empty.
	st, err := replaceWithEmpty(&ix.cfg, s.dir, s.store)
	if err != nil {
		return fmt.Errorf("slice %q: start over empty: %w", s.name, err)
	}
	s.store = st
	s.cache.reset(true)
	s.ts = upr.NewTsVbuuid(ix.cfg.NumVbuckets)
	s.rps = nil
	return nil
}

// ConfirmHold tells the indexer that the producer accepted stream requests
// at every position of the recovery hold (see RecoveryHold): each lies on
// the producer's current history, so a snapshot on a newer branch covers a
// position of an older vbuuid once it reaches its seqno. Until then a hold
// position on an older vbuuid is covered only on that vbuuid: the streams
// label what they resend with the newest vbuuid, and the indexer alone
// cannot tell an ancestor from a branch the producer abandoned. Call it
// with Run stopped.
func (ix *Indexer) ConfirmHold() {
	ix.flushMu.Lock()
	defer ix.flushMu.Unlock()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.holdUntil == nil {
		return
	}
	h := ix.holdUntil.Clone()
	clear(h.Vbuuids) // covers ignores a zero vbuuid
	ix.holdUntil = h
}

// RecoveryHold is the vector the first snapshot after Recover or Rollback
// must cover (the newest any slice was restored to), or nil when no such
// hold is pending. A caller that can ask the producer should check it is
// still on the producer's history: a slice restored past a failover the
// indexer never saw (a crash came first) holds a vector no snapshot on the
// new branch can cover, and must be rolled back further (Rollback); a
// hold the producer accepts is confirmed with ConfirmHold.
func (ix *Indexer) RecoveryHold() *upr.TsVbuuid {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.holdUntil == nil {
		return nil
	}
	return ix.holdUntil.Clone()
}

// Suffixes of the directories replaceEmpty works in beside a slice's.
const (
	freshSuffix = ".new"
	oldSuffix   = ".old"
)

// replaceWithEmpty replaces the store in dir (open as old, or closed when
// old is nil) by a new, empty one so that a crash at any moment leaves at
// dir either the old store, intact, or the new one, complete — never a
// store half removed or half created, which an engine could not open
// again. The new store is created and closed beside the old one, the old
// one is renamed aside, the new one renamed into place, and only then is
// the old one removed. A crash in between leaves dir missing (the slice
// reopens empty, which is what was being done) and leftovers that
// openSlice removes.
//
// Only a directory whose marker names the engine is replaced: idxbench
// removes nothing it did not create. Closing a damaged or failed old
// store may fail; that does not stop its replacement.
func replaceWithEmpty(cfg *Config, dir string, old engines.Store) (engines.Store, error) {
	engine := cfg.Engine.Name
	fresh, aside := dir+freshSuffix, dir+oldSuffix
	if err := removeLeftovers(dir, engine); err != nil {
		return nil, err
	}
	owner, err := engines.ReadMarker(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, serr := os.Stat(dir); !errors.Is(serr, fs.ErrNotExist) {
			return nil, fmt.Errorf("replace store %q: %w", dir, err)
		}
	case err != nil:
		return nil, fmt.Errorf("replace store %q: %w", dir, err)
	case owner != engine:
		return nil, fmt.Errorf("replace store %q: it belongs to engine %q, not %q: %w", dir, owner, engine, engines.ErrForeignDir)
	}
	st, err := cfg.Engine.Open(fresh, cfg.EngineOptions)
	if err != nil {
		return nil, err
	}
	if err := st.Close(); err != nil {
		return nil, err
	}
	if old != nil {
		err := old.Close()
		if err != nil && !errors.Is(err, engines.ErrCorrupt) && !errors.Is(err, engines.ErrFailed) && !errors.Is(err, engines.ErrClosed) {
			return nil, err
		}
	}
	if err := os.Rename(dir, aside); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.Rename(fresh, dir); err != nil {
		return nil, err
	}
	if err := engines.SyncDir(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	st, err = cfg.Engine.Open(dir, cfg.EngineOptions)
	if err != nil {
		return nil, err
	}
	if err := engines.RemoveStoreDir(aside, engine); err != nil {
		return nil, errors.Join(err, st.Close())
	}
	return st, nil
}

// removeLeftovers removes what an interrupted replaceEmpty left beside the
// slice directory dir: stores carrying engine's marker, or directories
// still empty because the crash came before the marker was written.
func removeLeftovers(dir, engine string) error {
	for _, d := range []string{dir + freshSuffix, dir + oldSuffix} {
		ents, err := os.ReadDir(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return err
		case len(ents) == 0:
			if err := os.Remove(d); err != nil {
				return err
			}
		default:
			if err := engines.RemoveStoreDir(d, engine); err != nil {
				return err
			}
		}
	}
	return nil
}
