package harness

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"time"

	"github.com/idxbench/idxbench/coordinator"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/indexer/node"
	"github.com/idxbench/idxbench/results"
	"github.com/idxbench/idxbench/workload/upr"
)

func init() {
	registerPhase(PhaseRollback, phaseKind{
		settings: []string{"mutations", "vbuckets", "point", "under_ingest", "rate"},
		verifies: true,
		validate: func(p *Phase, at string) error {
			switch p.Point {
			case "", PointRecent, PointBoundary, PointUnknownVbuuid, PointUnpersisted:
			default:
				return fmt.Errorf("%s.point: %q is not recent, boundary, unknown-vbuuid or unpersisted", at, p.Point)
			}
			if p.Rate != 0 && !p.UnderIngest {
				return fmt.Errorf("%s.rate: a rollback phase ingests at a rate only under_ingest", at)
			}
			if p.Vbuckets < 0 || p.Vbuckets > 1024 {
				return fmt.Errorf("%s.vbuckets: %d out of range [0,1024]", at, p.Vbuckets)
			}
			return nil
		},
		refs: func(_ *Phase, at string, st *indexRefs) error {
			if len(st.live) == 0 {
				return fmt.Errorf("%s: a rollback needs an index to check; the workload has none built by then", at)
			}
			if st.indexNodes > 1 {
				return fmt.Errorf("%s: a rollback phase drives one index node's recovery; this topology has %d", at, st.indexNodes)
			}
			return nil
		},
		run: (*cellRun).rollback,
	})
	registerPhase(PhaseRestart, phaseKind{
		settings: []string{"mutations", "point", "vbuckets"},
		verifies: true,
		validate: func(p *Phase, at string) error {
			switch p.Point {
			case "", PointBelowRestart:
			default:
				return fmt.Errorf("%s.point: %q is not %s (a restart has no other)", at, p.Point, PointBelowRestart)
			}
			if p.Vbuckets != 0 && p.Point == "" {
				return fmt.Errorf("%s.vbuckets: only a restart with point %s fails vbuckets over", at, PointBelowRestart)
			}
			if p.Vbuckets < 0 || p.Vbuckets > 1024 {
				return fmt.Errorf("%s.vbuckets: %d out of range [0,1024]", at, p.Vbuckets)
			}
			return nil
		},
		run: metricsOnly((*cellRun).restart),
	})
	registerPhase(PhaseDropIndex, phaseKind{
		settings: []string{"rate", "index"},
		verifies: true,
		validate: func(p *Phase, at string) error {
			if p.Index == "" {
				return fmt.Errorf("%s.index: a drop-index phase names the index to drop", at)
			}
			return nil
		},
		refs: func(p *Phase, at string, st *indexRefs) error {
			if !st.live[p.Index] {
				return fmt.Errorf("%s: drops index %q, which %s", at, p.Index, st.whyNotLive(p.Index))
			}
			delete(st.live, p.Index)
			return nil
		},
		run: (*cellRun).dropIndex,
	})
}

// defaultRecoveryMutations is how many mutations a rollback or restart phase
// applies after the persistent snapshot, for the flow to discard and replay.
const defaultRecoveryMutations = 10_000

// waitPersisted waits, with the source quiet, until the indexer has taken a
// round of persistent snapshots of what the bucket holds now, and returns
// that vector.
func (c *cellRun) waitPersisted(ctx context.Context) (*upr.TsVbuuid, error) {
	if err := c.p.waitCaughtUp(ctx, catchUpTimeout); err != nil {
		return nil, err
	}
	iv := c.p.ix.Config().PersistInterval
	if iv < 0 {
		return nil, errors.New("persistent snapshots are disabled (indexer.persist_interval < 0)")
	}
	want := c.p.ix.SnapshotTS()
	limit := c.persistWait(2, 30*time.Second)
	got, err := c.p.ix.WaitPersisted(ctx, limit, node.PersistCond{Covers: want})
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return nil, fmt.Errorf("no persistent snapshot of the caught-up index within %s", limit)
	}
	return got, err
}

// rollback is the KV-rollback flow: a persistent snapshot, more mutations,
// then some vbuckets fail over (or are asked for with an unknown vbuuid);
// the indexer's next stream request is answered with Rollback, it rolls its
// slices back to persistent snapshots and catches up from there.
func (c *cellRun) rollback(ctx context.Context, ph Phase, out *results.Phase) error {
	m := out.Metrics
	persisted, err := c.mutateAfterPersist(ctx, ph)
	if err != nil {
		return err
	}
	var stopIngest func() error
	if ph.UnderIngest {
		stopIngest = c.backgroundIngest(ctx, ph.Rate)
		defer func() {
			if stopIngest != nil {
				stopIngest()
			}
		}()
	} else if err := c.p.waitCaughtUp(ctx, catchUpTimeout); err != nil {
		return err
	}
	before, _ := c.p.ix.Stats()
	vbs, err := chooseVbuckets(c.rng, c.p.spec.Vbuckets, ph.Vbuckets)
	if err != nil {
		return err
	}
	point := ph.Point
	if point == "" {
		point = PointRecent
	}

	// A scan waiting for a vector the bucket never reaches must fail with
	// ErrIndexRollback when the rollback intervenes.
	far := c.p.kv.CurrentSeqnos()
	far.Seqnos[vbs[0]] += 1 << 40
	waiter := make(chan error, 1)
	go func() {
		_, err := c.p.ix.Scan(ctx, indexer.ScanRequest{InstID: c.p.insts[0].ID, Kind: indexer.ScanCount,
			Consistency: indexer.AtPlus, TS: far, Timeout: catchUpTimeout})
		waiter <- err
	}()
	// Give the waiter time to register before the flow starts; it is
	// not part of what is measured.
	time.Sleep(200 * time.Millisecond)

	start := time.Now()
	if err := c.p.ix.Stop(); err != nil {
		return err
	}
	tl := timeline{zero: time.Now()}
	c.takeRestores()
	if stopIngest != nil {
		err := stopIngest()
		stopIngest = nil
		if err != nil {
			return err
		}
	}
	if st, ok := c.p.ix.Stats(); ok {
		m["queued_key_versions_at_rollback"] = float64(st.DocsQueued)
	}
	// DDL waits for recovery: a drop now must be refused.
	if err := c.p.coord.SetRecovery(true); err != nil {
		return err
	}
	_, dropErr := c.p.coord.Drop(c.p.insts[0].Defn.Name)
	from := c.p.ix.HWT()
	for _, vb := range vbs {
		switch point {
		case PointUnknownVbuuid:
			from.Vbuuids[vb] ^= 0x5bd1e995
		case PointBoundary, PointRecent, PointUnpersisted:
			branch := persisted.Seqnos[vb]
			if point == PointUnpersisted {
				if now := c.p.ix.PersistedTS(); now != nil {
					branch = now.Seqnos[vb]
				}
			}
			if point != PointBoundary {
				// Halfway to what the index node received (the high
				// seqno once caught up; under ingest it may lag), so
				// that the node has something to roll back.
				branch += (min(from.Seqnos[vb], c.p.kv.HighSeqno(vb)) - branch) / 2
			}
			if err := c.p.failover(vb, branch); err != nil {
				return err
			}
		}
	}
	kv := c.p.kv.CurrentSeqnos()
	tl.mark("failover", time.Now())
	// KV's answer to the node's stream request, as the node will get it
	// (the harness asks first, to see when it comes).
	if _, err := c.p.kv.Probe(ctx, from); err != nil {
		return fmt.Errorf("rollback: probe the streams' answers: %w", err)
	}
	tl.mark("rollback_reply", time.Now())
	rollbacks, err := c.p.ix.Resume(ctx, from)
	if rerr := c.p.coord.SetRecovery(false); err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	resumed := time.Now()
	if rs := c.takeRestores(); len(rs) > 0 {
		tl.mark("engine_rollback_start", rs[0].start)
		tl.mark("engine_rollback_end", rs[len(rs)-1].end)
	}
	tl.mark("streams_restarted", resumed)
	m["resume_ms"] = ms(resumed.Sub(start))
	m["rollbacks"] = float64(rollbacks)
	m["vbuckets_failed_over"] = float64(len(vbs))
	restored := c.p.ix.From() // the vector the streams restarted from
	if err := c.waitScannable(ctx); err != nil {
		return err
	}
	m["scans_resume_ms"] = ms(time.Since(start))
	tl.mark("first_scan", time.Now())
	if err := c.p.waitCaughtUp(ctx, catchUpTimeout); err != nil {
		return err
	}
	m["recovery_ms"] = ms(time.Since(start))
	tl.mark("caught_up", time.Now())
	if line := tl.report(m); !c.job.Quiet {
		fmt.Fprintf(c.stderr, "phase %s %s\n", ph.Label(), line)
	}
	m["catch_up_ms"] = ms(time.Since(resumed))
	if isRebuild(ph, len(vbs), c.p.spec.Vbuckets) {
		m[rebuildMetric] = m["recovery_ms"]
	}
	if kv.Sum() >= restored.Sum() {
		m["mutations_replayed"] = float64(kv.Sum() - restored.Sum())
	}
	if after, ok := c.p.ix.Stats(); ok {
		m["rollback_kept_key_versions"] = float64(after.RollbackKeptKeyVersions - before.RollbackKeptKeyVersions)
	}
	if err := c.countEntries(ctx, m); err != nil {
		return err
	}
	if !errors.Is(dropErr, coordinator.ErrInRecovery) {
		out.Verify, out.VerifyDetail = results.VerifyFail,
			fmt.Sprintf("a drop index during the rollback ended with %v, want ErrInRecovery", dropErr)
	}
	select {
	case err := <-waiter:
		if !errors.Is(err, indexer.ErrIndexRollback) {
			out.Verify, out.VerifyDetail = results.VerifyFail,
				fmt.Sprintf("a scan waiting across the rollback ended with %v, want ErrIndexRollback", err)
		}
	case <-time.After(10 * time.Second):
		out.Verify, out.VerifyDetail = results.VerifyFail, "a scan waiting across the rollback was never failed"
	}
	return nil
}

// backgroundIngest applies mutations at rate (0: closed loop) until the
// returned function is called, which returns the driver's error.
func (c *cellRun) backgroundIngest(ctx context.Context, rate float64) (stop func() error) {
	d := &driver{c: c, rate: rate}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.run(dctx, 0) }()
	return func() error {
		cancel()
		return <-done
	}
}

// mutateAfterPersist starts the pipeline, waits for a round of persistent
// snapshots and applies the phase's mutations (a default count if none):
// the state a rollback or restart phase recovers from. It returns the
// persisted vector.
func (c *cellRun) mutateAfterPersist(ctx context.Context, ph Phase) (*upr.TsVbuuid, error) {
	if err := c.p.ix.Start(ctx); err != nil {
		return nil, err
	}
	persisted, err := c.waitPersisted(ctx)
	if err != nil {
		return nil, err
	}
	n := ph.Mutations
	if n == 0 {
		n = defaultRecoveryMutations
	}
	d := &driver{c: c}
	return persisted, d.run(ctx, n)
}

// restart stops the indexer cleanly after some mutations, reopens it and
// measures the reopen, the first consistent scan and the catch-up.
//
// With point below-restart, the chosen vbuckets fail over while the index
// node is down, at half the seqno of its newest persistent snapshot: below
// the vector it restarts from (the design's recovery step 7, a failover
// timestamp lower than the UPR restart timestamp). The restarted node is
// answered with Rollback and goes back to an older recovery point, or to
// zero.
func (c *cellRun) restart(ctx context.Context, ph Phase, m map[string]float64) error {
	if _, err := c.mutateAfterPersist(ctx, ph); err != nil {
		return err
	}
	if ph.Point == PointBelowRestart {
		if err := c.p.waitCaughtUp(ctx, catchUpTimeout); err != nil {
			return err
		}
		if err := c.p.ix.Stop(); err != nil {
			return err
		}
		persisted := c.p.ix.PersistedTS()
		vbs, err := chooseVbuckets(c.rng, c.p.spec.Vbuckets, ph.Vbuckets)
		if err != nil {
			return err
		}
		var below float64
		for _, vb := range vbs {
			var branch upr.Seqno
			if persisted != nil {
				branch = persisted.Seqnos[vb] / 2
				if branch < persisted.Seqnos[vb] {
					below++
				}
			}
			if err := c.p.failover(vb, branch); err != nil {
				return err
			}
		}
		m["vbuckets_failed_over"] = float64(len(vbs))
		m["vbuckets_failed_over_below_restart"] = below
	}
	kv := c.p.kv.CurrentSeqnos()
	start := time.Now()
	open, _, err := c.p.restart(ctx)
	if err != nil {
		return err
	}
	m["open_ms"] = ms(open)
	return c.afterResume(ctx, m, start, kv)
}

// afterResume measures what follows a recovery that began at start, with
// KV at kv, once its streams run again: the first consistent scan
// (first_scan_ms), caught up (recovery_ms from start, catch_up_ms from
// now), the mutations replayed from the vector the streams restarted from,
// and the index's entries.
func (c *cellRun) afterResume(ctx context.Context, m map[string]float64, start time.Time, kv *upr.TsVbuuid) error {
	// The vector the streams restarted from, after any rollback.
	from := c.p.ix.From()
	resumed := time.Now()
	if err := c.waitScannable(ctx); err != nil {
		return err
	}
	m["first_scan_ms"] = ms(time.Since(start))
	if err := c.p.waitCaughtUp(ctx, catchUpTimeout); err != nil {
		return err
	}
	m["recovery_ms"] = ms(time.Since(start))
	m["catch_up_ms"] = ms(time.Since(resumed))
	if kv.Sum() >= from.Sum() {
		m["mutations_replayed"] = float64(kv.Sum() - from.Sum())
	}
	return c.countEntries(ctx, m)
}

// countEntries sets index_entries to the number of entries of every live
// index together (partitions and all), counted by a Count scan of each at
// the latest snapshot. It runs after what a phase measures.
func (c *cellRun) countEntries(ctx context.Context, m map[string]float64) error {
	total := 0
	for _, inst := range c.p.insts {
		res, err := c.p.ix.Scan(ctx, indexer.ScanRequest{InstID: inst.ID, Kind: indexer.ScanCount})
		if err != nil {
			return fmt.Errorf("count the entries of %s: %w", inst.Defn.Name, err)
		}
		total += res.Count
	}
	m["index_entries"] = float64(total)
	return nil
}

// rebuildMetric marks the phase that measured a rebuild from zero: its
// value is that phase's recovery_ms.
const rebuildMetric = "rebuild_from_zero_ms"

// isRebuild reports whether a rollback phase rebuilds every index from
// zero: an unknown vbuuid on every vbucket leaves no persistent snapshot
// usable, so every slice is emptied and the whole bucket streamed again,
// through the same flow and the same measurements as a rollback to a
// snapshot.
func isRebuild(ph Phase, failed, vbuckets int) bool {
	return ph.Type == PhaseRollback && ph.Point == PointUnknownVbuuid && failed == vbuckets
}

// addRebuildRatios relates each rollback and restart of the cell to the
// cell's rebuild from zero (the last phase isRebuild picked, if any):
// recovery_to_rebuild_ratio is the phase's recovery_ms (until caught up)
// over the rebuild's, and rollback_to_rebuild_ratio the engines' share
// alone, the phase's engine_rollback_ms over the same. A cell without a
// rebuild phase gets neither.
func addRebuildRatios(cell *results.Cell) {
	var rebuild float64
	for _, ph := range cell.Phases {
		if v, ok := ph.Metrics[rebuildMetric]; ok && v > 0 {
			rebuild = v
		}
	}
	if rebuild == 0 {
		return
	}
	for _, ph := range cell.Phases {
		m := ph.Metrics
		if _, ok := m[rebuildMetric]; ok {
			continue
		}
		if v, ok := m["recovery_ms"]; ok {
			m["recovery_to_rebuild_ratio"] = v / rebuild
		}
		if v, ok := m["engine_rollback_ms"]; ok {
			m["rollback_to_rebuild_ratio"] = v / rebuild
		}
	}
}

// waitScannable polls until every index answers a scan again.
func (c *cellRun) waitScannable(ctx context.Context) error {
	for _, inst := range c.p.insts {
		for {
			_, err := c.p.ix.Scan(ctx, indexer.ScanRequest{InstID: inst.ID, Kind: indexer.ScanCount, Limit: 1, Timeout: time.Second})
			if err == nil {
				break
			}
			if ferr := c.p.failure(); ferr != nil {
				return ferr
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return nil
}

// chooseVbuckets picks n of total vbuckets at random (all when n is 0),
// sorted.
func chooseVbuckets(rng *rand.Rand, total, n int) ([]upr.Vbno, error) {
	if n > total {
		return nil, fmt.Errorf("rollback of %d vbuckets asked for, the bucket has %d", n, total)
	}
	if n == 0 {
		n = total
	}
	perm := rng.Perm(total)[:n]
	sort.Ints(perm)
	vbs := make([]upr.Vbno, n)
	for i, v := range perm {
		vbs[i] = upr.Vbno(v)
	}
	return vbs, nil
}

// dropIndex drops the phase's index while mutations stream in at the
// phase's rate, then checks the index is gone: not scannable, no data left.
// The indexes that remain are verified after the phase as usual.
func (c *cellRun) dropIndex(ctx context.Context, ph Phase, out *results.Phase) error {
	if err := c.p.ix.Start(ctx); err != nil {
		return err
	}
	var id uint64
	for _, inst := range c.p.insts {
		if inst.Defn.Name == ph.Index {
			id = inst.ID
		}
	}
	if id == 0 {
		return fmt.Errorf("drop-index: no live index %q", ph.Index)
	}
	rate := ph.Rate
	if rate == 0 {
		rate = 2000
	}
	d := &driver{c: c, rate: rate}
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- d.run(dctx, 0) }()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	ddl, err := c.p.dropIndex(ph.Index)
	out.Metrics["drop_ms"] = ms(time.Since(start))
	out.Metrics["ddl_ms"] = ms(ddl)
	time.Sleep(300 * time.Millisecond)
	stop()
	if derr := <-done; err == nil {
		err = derr
	}
	if err != nil {
		return err
	}
	out.Metrics["background_mutations"] = float64(d.applied.Load())
	if _, err := c.p.ix.Scan(ctx, indexer.ScanRequest{InstID: id, Kind: indexer.ScanCount}); err == nil {
		out.Verify, out.VerifyDetail = results.VerifyFail, fmt.Sprintf("dropped index %s still answers scans", ph.Index)
		return nil
	}
	var left []string
	for _, dir := range c.p.sliceDirs(ph.Index) {
		files, err := filesUnder(dir)
		if err != nil {
			return err
		}
		left = append(left, files...)
	}
	if len(left) > 0 {
		out.Verify, out.VerifyDetail = results.VerifyFail, fmt.Sprintf("dropped index %s left data on disk: %v", ph.Index, left)
	}
	return nil
}

// filesUnder lists the regular files under dir (none if dir is gone).
func filesUnder(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	return files, err
}
