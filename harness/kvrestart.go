package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/idxbench/idxbench/results"
	"github.com/idxbench/idxbench/workload/upr"
)

// Modes of a kv-restart phase.
const (
	// KVRestartClean restarts KV losing nothing: the index node's streams
	// end and it asks for them again from where it was.
	KVRestartClean = "clean"
	// KVRestartLoseTail is a crash that loses the unpersisted tail of the
	// chosen vbuckets and keeps their vbuuid, so the lost seqnos are given
	// again to other mutations.
	KVRestartLoseTail = "lose-tail"
	// KVRestartLoseTailFailover is the same crash with a new failover-log
	// entry at each vbucket's persisted seqno, as KV adds after an unclean
	// shutdown.
	KVRestartLoseTailFailover = "lose-tail-failover"
)

func init() {
	registerPhase(PhaseKVRestart, phaseKind{
		settings: []string{"mutations", "vbuckets", "mode"},
		verifies: true,
		validate: func(p *Phase, at string) error {
			switch p.Mode {
			case "", KVRestartClean, KVRestartLoseTail, KVRestartLoseTailFailover:
			default:
				return fmt.Errorf("%s.mode: %q is not %s, %s or %s", at, p.Mode, KVRestartClean, KVRestartLoseTail, KVRestartLoseTailFailover)
			}
			if p.Vbuckets < 0 || p.Vbuckets > 1024 {
				return fmt.Errorf("%s.vbuckets: %d out of range [0,1024]", at, p.Vbuckets)
			}
			if (p.Mode == "" || p.Mode == KVRestartClean) && p.Vbuckets != 0 {
				return fmt.Errorf("%s.vbuckets: a clean KV restart loses no vbucket's tail", at)
			}
			return nil
		},
		refs: func(_ *Phase, at string, st *indexRefs) error {
			if len(st.live) == 0 {
				return fmt.Errorf("%s: a KV restart needs an index to check; the workload has none built by then", at)
			}
			return nil
		},
		run: (*cellRun).kvRestart,
	})
}

// reuseLimit bounds the mutations a lose-tail restart applies, per
// mutation lost, for KV to give every lost seqno again.
const reuseLimit = 64

// kvRestart is a KV (memcached) restart under the index node: a persistent
// snapshot, more mutations (the indexer holds them all), then KV restarts.
// In the lose-tail modes the chosen vbuckets come back with their history
// up to a persisted seqno halfway between the indexer's persistent
// snapshot and their high seqno, and clients write on while the index
// node reconnects, until every lost seqno has been given to a new
// mutation — the case where only a failover-log entry can tell the index
// node its history is not KV's. The index node then asks for its streams
// from what it had received and catches up. The phase's verification
// compares every index with what KV holds now.
//
// Metrics: mutations_lost and vbuckets_lost_tail (what the crash lost),
// mutations_after_restart, vbuckets_answered_rollback (the lost-tail
// vbuckets KV's answer to the stream request rolled back) and
// vbuckets_accepted_diverged (those it accepted although the index holds
// mutations KV lost), rollbacks, resume_ms, first_scan_ms, catch_up_ms,
// recovery_ms (from the reconnection), mutations_replayed.
func (c *cellRun) kvRestart(ctx context.Context, ph Phase, out *results.Phase) error {
	m := out.Metrics
	persisted, err := c.mutateAfterPersist(ctx, ph)
	if err != nil {
		return err
	}
	if err := c.p.waitCaughtUp(ctx, catchUpTimeout); err != nil {
		return err
	}
	mode := ph.Mode
	if mode == "" {
		mode = KVRestartClean
	}
	kvPersisted := map[upr.Vbno]upr.Seqno{}
	lost := 0
	if mode != KVRestartClean {
		vbs, err := chooseVbuckets(c.rng, c.p.spec.Vbuckets, ph.Vbuckets)
		if err != nil {
			return err
		}
		for _, vb := range vbs {
			high := c.p.kv.HighSeqno(vb)
			if keep := persisted.Seqnos[vb] + (high-persisted.Seqnos[vb]+1)/2; keep < high {
				kvPersisted[vb] = keep
				lost += int(high - keep)
			}
		}
	}
	m["vbuckets_lost_tail"] = float64(len(kvPersisted))
	m["mutations_lost"] = float64(lost)

	// KV's restart drops the index node's connections: its streams end.
	if err := c.p.ix.Stop(); err != nil {
		return err
	}
	if err := c.p.kvRestart(kvPersisted, mode == KVRestartLoseTailFailover); err != nil {
		return err
	}
	from := c.p.ix.HWT()
	applied, err := c.reuseLostSeqnos(kvPersisted, from, reuseLimit*lost)
	if err != nil {
		return err
	}
	m["mutations_after_restart"] = float64(applied)
	points, err := c.p.kv.Probe(ctx, from)
	if err != nil {
		return fmt.Errorf("kv restart: probe the streams' answers: %w", err)
	}
	diverged := 0
	for vb := range kvPersisted {
		if _, ok := points[vb]; !ok {
			diverged++
		}
	}
	m["vbuckets_answered_rollback"] = float64(len(points))
	m["vbuckets_accepted_diverged"] = float64(diverged)

	kv := c.p.kv.CurrentSeqnos()
	start := time.Now()
	rollbacks, err := c.p.ix.Resume(ctx, from)
	if err != nil {
		return err
	}
	m["resume_ms"] = ms(time.Since(start))
	m["rollbacks"] = float64(rollbacks)
	return c.afterResume(ctx, m, start, kv)
}

// reuseLostSeqnos applies the generator's operations, a chunk at a time
// and with the index node disconnected, until every vbucket in lost has
// reached the seqno the index node will ask for it from (so each lost
// seqno is now another mutation's), or limit operations were applied. It
// returns how many it applied.
func (c *cellRun) reuseLostSeqnos(lost map[upr.Vbno]upr.Seqno, from *upr.TsVbuuid, limit int) (int, error) {
	applied := 0
	for applied < limit {
		behind := false
		for vb := range lost {
			if c.p.kv.HighSeqno(vb) < from.Seqnos[vb] {
				behind = true
				break
			}
		}
		if !behind {
			break
		}
		k := min(driverChunk, limit-applied)
		if err := c.p.apply(k); err != nil {
			return applied, err
		}
		applied += k
	}
	return applied, nil
}

// kvRestart restarts KV; the vbuckets in persisted lose what is above
// their seqno, under a new failover-log entry if newEntry.
func (p *pipeline) kvRestart(persisted map[upr.Vbno]upr.Seqno, newEntry bool) error {
	if p.remote != nil {
		if err := p.remote.Restart(context.Background(), persisted, newEntry); err != nil {
			return p.nodeError(err)
		}
	}
	return p.kv.Restart(persisted, newEntry)
}
