package harness

import (
	"slices"
	"sync"
	"time"

	"github.com/idxbench/idxbench/workload/upr"
)

// compactor bounds the memory of a long run: it deduplicates the bucket's
// history (the oracle's Forget, Bucket.Compact) below the oldest vector
// anything may still need:
//
//   - rollbacks: the index node may roll back to any recovery point it
//     retains (MaxRollbacks per slice), and a KV failover branches at or
//     above the newest persistent snapshot (the rollback phase, the crash
//     test). The compactor keeps the distinct persisted vectors it has
//     seen and compacts only below one persisted at least MaxRollbacks
//     observations before the newest; as it observes at most one vector
//     per round, that vector is at least MaxRollbacks rounds old. A
//     failover (the bucket's vbuuids change) or a persisted vector that
//     went back (a rollback or restart) starts the count again.
//   - verification: phases verify at the latest snapshot, above every
//     persisted vector; a scan phase's checker reports its floor (no answer
//     it has yet to check read a snapshot below it), and the compactor
//     stays at or below it.
//   - open streams: MAINT's streams are past the index's snapshot, so past
//     every persisted vector. A stream that restarts below a compacted
//     point (after a rollback to an old recovery point) receives one
//     deduplicated snapshot, which is what KV sends too. INIT streams start
//     at zero, so nothing compacts while a build runs: only the drivers of
//     ingest and scan phases compact (driver.compact).
//
// Compact must run on the bucket's writer goroutine (the driver's), so the
// driver calls tick between chunks. In a procs topology what is compacted
// is the cell's replica of the bucket, the oracle's; the KV node process
// keeps its history (its admin endpoint has no compaction).
type compactor struct {
	p *pipeline

	mu       sync.Mutex
	rounds   persistRounds
	floor    func() *upr.TsVbuuid
	observed time.Time
	// compacted is when the bucket was last compacted.
	compacted time.Time
	// The current phase's figures.
	count   int
	longest time.Duration
}

const (
	// observeEvery is how often the compactor reads the persisted vector.
	observeEvery = time.Second
	// compactEvery is the least time between two compactions (and at
	// least two persist intervals: less moves the safe vector little): each
	// costs time proportional to the history kept, with the bucket locked.
	compactEvery = 10 * time.Second
)

func newCompactor(p *pipeline) *compactor { return &compactor{p: p} }

// setFloor makes f (nil: none) a bound the compactor stays at or below.
func (k *compactor) setFloor(f func() *upr.TsVbuuid) {
	k.mu.Lock()
	k.floor = f
	k.mu.Unlock()
}

// tick observes the persisted vector and compacts when it is time. It runs
// on the bucket's writer goroutine.
func (k *compactor) tick(now time.Time) {
	if now.Sub(k.observed) >= observeEvery {
		k.observed = now
		k.observe(k.p.ix.PersistedTS(), k.p.kv.CurrentSeqnos().Vbuuids)
	}
	if now.Sub(k.compacted) < k.every() {
		return
	}
	below := k.safe()
	if below == nil {
		return
	}
	k.compacted = now
	start := time.Now()
	k.p.oracle.Forget(below)
	took := time.Since(start)
	k.mu.Lock()
	k.count++
	k.longest = max(k.longest, took)
	k.mu.Unlock()
}

// every is the least time between two compactions.
func (k *compactor) every() time.Duration {
	return min(compactEvery, max(time.Second, 2*k.p.ix.Config().PersistInterval))
}

// observe records a persisted vector and the bucket's branches now.
func (k *compactor) observe(persisted *upr.TsVbuuid, branches []upr.Vbuuid) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rounds.observe(persisted, branches, k.p.ix.Config().MaxRollbacks)
}

// safe is the vector to compact below, or nil when nothing is safe yet.
func (k *compactor) safe() *upr.TsVbuuid {
	k.mu.Lock()
	defer k.mu.Unlock()
	below := k.rounds.oldest(k.p.ix.Config().MaxRollbacks)
	if below != nil && k.floor != nil {
		f := k.floor()
		for vb := range below.Seqnos {
			below.Seqnos[vb] = min(below.Seqnos[vb], f.Seqnos[vb])
		}
	}
	return below
}

// persistRounds are the distinct persisted vectors seen lately, oldest
// first: a plain state machine the compactor feeds.
type persistRounds struct {
	samples []*upr.TsVbuuid
	// branches are the bucket's vbuuids when the samples were taken.
	branches []upr.Vbuuid
}

// observe records persisted (nil: none yet), seen while the bucket's
// branches were branches, keeping keep+1 samples at most. A change of
// branches (a failover) or a vector that went back (a rollback, a restart)
// starts again from it.
func (r *persistRounds) observe(persisted *upr.TsVbuuid, branches []upr.Vbuuid, keep int) {
	if persisted == nil {
		return
	}
	if n := len(r.samples); n > 0 {
		last := r.samples[n-1]
		switch {
		case !slices.Equal(r.branches, branches) || !last.SeqnosLE(persisted):
			r.samples = nil
		case persisted.SeqnosLE(last):
			return // the same round
		}
	}
	r.branches = append(r.branches[:0], branches...)
	r.samples = append(r.samples, persisted.Clone())
	if len(r.samples) > keep+1 {
		r.samples = append(r.samples[:0], r.samples[len(r.samples)-keep-1:]...)
	}
}

// oldest is (a copy of) the sample keep observations older than the
// newest, or nil when there are not that many.
func (r *persistRounds) oldest(keep int) *upr.TsVbuuid {
	if len(r.samples) <= keep {
		return nil
	}
	return r.samples[len(r.samples)-keep-1].Clone()
}

// report adds the phase's compactions to m and starts the next phase's.
func (k *compactor) report(m map[string]float64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.count > 0 {
		m["kv_compactions"] = float64(k.count)
		m["kv_compact_max_ms"] = ms(k.longest)
		m["kv_history_items"] = float64(k.p.kv.Bucket().HistoryLen())
	}
	k.count, k.longest = 0, 0
}
