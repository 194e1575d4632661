package harness

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/idxbench/idxbench/coordinator"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/indexer/node"
	"github.com/idxbench/idxbench/results"
	"github.com/idxbench/idxbench/workload/upr"
)

// Faults a build-index phase injects while its build is in CATCHUP.
const (
	// BuildFaultKVRollback fails some vbuckets over: MAINT rolls back, and
	// the build's catch-up is discarded and started again.
	BuildFaultKVRollback = "kv-rollback"
	// BuildFaultRestart restarts the index node: the build in progress is
	// lost with it and starts again once the node is back.
	BuildFaultRestart = "restart"
	// BuildFaultBackfillRollback is a KV rollback while INIT is still
	// backfilling (INITIAL, right after its stream request), branching
	// below the build timestamp: the backfill holds mutations KV lost.
	BuildFaultBackfillRollback = "kv-rollback-backfill"
)

func init() {
	registerPhase(PhaseBuild, phaseKind{
		settings: []string{"rate", "indexes", "fault", "vbuckets", "wait"},
		verifies: true,
		validate: func(p *Phase, at string) error {
			switch p.Fault {
			case "", BuildFaultKVRollback, BuildFaultRestart, BuildFaultBackfillRollback:
			default:
				return fmt.Errorf("%s.fault: %q is not %s, %s or %s", at, p.Fault, BuildFaultKVRollback, BuildFaultBackfillRollback, BuildFaultRestart)
			}
			if p.Vbuckets != 0 && p.Fault != BuildFaultKVRollback && p.Fault != BuildFaultBackfillRollback {
				return fmt.Errorf("%s.vbuckets: only a build with fault %s or %s fails vbuckets over", at, BuildFaultKVRollback, BuildFaultBackfillRollback)
			}
			if p.Vbuckets < 0 || p.Vbuckets > 1024 {
				return fmt.Errorf("%s.vbuckets: %d out of range [0,1024]", at, p.Vbuckets)
			}
			if !p.waits() && p.Fault != "" {
				return fmt.Errorf("%s.fault: a build with wait: false injects no fault (the phase that completes it may)", at)
			}
			if !p.waits() && p.Verify != nil && *p.Verify {
				return fmt.Errorf("%s.verify: a build with wait: false ends before its indexes are built; the phase that completes it verifies", at)
			}
			return nil
		},
		refs: buildRefs,
		run:  (*cellRun).build,
	})
}

// waits reports whether a build-index phase waits for its build to be
// ACTIVE (the default) rather than ending once it is in CATCHUP.
func (p Phase) waits() bool { return p.Wait == nil || *p.Wait }

// checkPendingBuilds refuses a scenario in which a build-index phase with
// wait: false is followed by anything but a build-index phase, which
// completes it (the builds are node flows that must not interleave with
// another phase's), or by nothing.
func checkPendingBuilds(phases []Phase) error {
	pending := ""
	for i, p := range phases {
		if pending != "" && p.Type != PhaseBuild {
			return fmt.Errorf("phases[%d] (%s): build %q (wait: false) is still catching up; only a build-index phase may follow it", i, p.Label(), pending)
		}
		if p.Type == PhaseBuild {
			if pending != "" && p.Fault != "" {
				return fmt.Errorf("phases[%d] (%s): a fault while build %q (wait: false) is catching up is not supported", i, p.Label(), pending)
			}
			pending = ""
			if !p.waits() {
				pending = p.Label()
			}
		}
	}
	if pending != "" {
		return fmt.Errorf("build %q (wait: false) is the last phase; a build-index phase must follow and complete it", pending)
	}
	return nil
}

// buildRefs refuses a build of an index that is not deferred or is
// already built, and marks the built indexes live.
func buildRefs(p *Phase, at string, st *indexRefs) error {
	names := p.Indexes
	if len(names) == 0 {
		for name := range st.deferred {
			names = append(names, name)
		}
		if len(names) == 0 {
			return fmt.Errorf("%s: no deferred index is left to build", at)
		}
	}
	for _, name := range names {
		if !st.deferred[name] {
			return fmt.Errorf("%s: builds index %q, which is not a deferred index waiting to be built", at, name)
		}
		delete(st.deferred, name)
		st.live[name] = true
	}
	return nil
}

// buildRun is one initial build in progress: its instances, its INIT
// stream, the build timestamp it must reach to be in CATCHUP.
type buildRun struct {
	label   string
	insts   []coordinator.Instance
	b       node.Builder
	buildTS *upr.TsVbuuid
	start   time.Time // of the build's first attempt
	attempt time.Time // of the current attempt
	// catchup is when INIT reached the build timestamp (zero before).
	catchup time.Time
}

// startBuild starts an INIT stream for insts (a new attempt of br if it
// is set) at the bucket's current seqnos.
func (c *cellRun) startBuild(ctx context.Context, br *buildRun) error {
	defns := make([]indexer.InstanceDefn, len(br.insts))
	for i, inst := range br.insts {
		if err := c.p.place(inst); err != nil {
			return err
		}
		defns[i] = indexer.InstanceDefn{ID: inst.ID, Defn: inst.Defn}
	}
	br.buildTS = c.p.kv.CurrentSeqnos()
	br.attempt, br.catchup = time.Now(), time.Time{}
	b, err := c.p.ix.StartBuild(ctx, defns)
	if err != nil {
		return err
	}
	br.b = b
	return nil
}

// waitCatchup waits until br's INIT stream covers its build timestamp and
// moves its indexes to CATCHUP.
func (c *cellRun) waitCatchup(ctx context.Context, br *buildRun) error {
	if !br.catchup.IsZero() {
		return nil
	}
	if err := br.b.WaitFor(ctx, br.buildTS, catchUpTimeout); err != nil {
		return err
	}
	br.catchup = time.Now()
	for _, inst := range br.insts {
		if err := c.p.coord.SetState(inst.Defn.Name, coordinator.Catchup); err != nil {
			return err
		}
	}
	return nil
}

// merge merges br into MAINT and marks its indexes ACTIVE. Before, none
// of them may answer a scan: an index is served only once caught up.
func (c *cellRun) merge(ctx context.Context, br *buildRun, out *results.Phase) error {
	for _, inst := range br.insts {
		if _, err := c.p.ix.Scan(ctx, indexer.ScanRequest{InstID: inst.ID, Kind: indexer.ScanCount, Timeout: time.Second}); err == nil {
			addVerdict(out, true, false, fmt.Sprintf("index %s answered a scan before it was ACTIVE", inst.Defn.Name))
		}
	}
	if err := br.b.Merge(ctx, catchUpTimeout); err != nil {
		return err
	}
	if err := br.b.Close(); err != nil {
		return err
	}
	for _, inst := range br.insts {
		if err := c.p.coord.SetState(inst.Defn.Name, coordinator.Active); err != nil {
			return err
		}
		inst.State = coordinator.Active
		c.p.insts = append(c.p.insts, inst)
	}
	return nil
}

// discard drops br's catch-up: its INIT stream stops, its slices go and its
// indexes are INITIAL again, to be built from a new backfill.
func (c *cellRun) discard(br *buildRun) error {
	err := br.b.Close()
	br.b = nil
	if br.catchup.IsZero() {
		return err // still INITIAL: a backfill discarded
	}
	for _, inst := range br.insts {
		if serr := c.p.coord.SetState(inst.Defn.Name, coordinator.Initial); err == nil {
			err = serr
		}
	}
	return err
}

// closePendingBuilds closes the builds an interrupted run left catching
// up.
func (c *cellRun) closePendingBuilds() error {
	var errs []error
	for _, br := range c.pendingBuilds {
		if br.b != nil {
			errs = append(errs, br.b.Close())
		}
	}
	c.pendingBuilds = nil
	return errors.Join(errs...)
}

// ingestLoop is MAINT's background ingest during a build: started and
// stopped around the faults, counting what it applied over every run.
type ingestLoop struct {
	c       *cellRun
	rate    float64
	applied int64
	stop    context.CancelFunc
	wg      sync.WaitGroup
	d       *driver
	err     error
}

func (l *ingestLoop) start(ctx context.Context) {
	l.d = &driver{c: l.c, rate: l.rate}
	dctx, cancel := context.WithCancel(ctx)
	l.stop = cancel
	l.wg.Add(1)
	go func() { defer l.wg.Done(); l.err = l.d.run(dctx, 0) }()
}

// halt stops the ingest (a no-op when stopped) and returns its error.
func (l *ingestLoop) halt() error {
	if l.stop == nil {
		return nil
	}
	l.stop()
	l.wg.Wait()
	l.stop = nil
	l.applied += l.d.applied.Load()
	return l.err
}

// build runs the initial build of deferred indexes (node.Build: one INIT
// stream for all of them, merged into MAINT) while MAINT keeps ingesting,
// and moves them through the coordinator's states: CREATED → INITIAL at
// the start, CATCHUP when INIT covers the build timestamp (the bucket's
// seqnos at the start), ACTIVE when the merge is done.
//
// With fault set, a KV rollback or an index node restart comes while the
// build is in CATCHUP: the catch-up is discarded (the INIT stream stops,
// its slices go, the indexes are INITIAL again) and, once MAINT has
// recovered, the build starts again from a new backfill.
//
// With wait: false the phase ends once the build is in CATCHUP, leaving
// it catching up; the next phase, a build-index phase, starts its own
// build and then completes the earlier one before its own (earlier_…
// metrics), so the two INIT streams and MAINT run together.
func (c *cellRun) build(ctx context.Context, ph Phase, out *results.Phase) error {
	m := out.Metrics
	p := c.p
	if err := p.ix.Start(ctx); err != nil {
		return err
	}
	names := ph.Indexes
	if len(names) == 0 {
		all, err := p.coord.Instances()
		if err != nil {
			return err
		}
		for _, inst := range all {
			if inst.State == coordinator.Created {
				names = append(names, inst.Defn.Name)
			}
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("build-index: no deferred index to build")
	}
	ddl := time.Now()
	insts, err := p.coord.Build(names...)
	if err != nil {
		return err
	}
	m["ddl_ms"] = ms(time.Since(ddl))
	m["indexes_built"] = float64(len(insts))

	// MAINT keeps ingesting throughout, closed loop unless a rate is set.
	ingest := &ingestLoop{c: c, rate: ph.Rate}
	ingest.start(ctx)
	fail := func(err error) error {
		ingest.halt()
		return err
	}

	start := time.Now()
	br := &buildRun{label: ph.Label(), insts: insts, start: start}
	if err := c.startBuild(ctx, br); err != nil {
		return fail(err)
	}
	c.pendingBuilds = append(c.pendingBuilds, br)
	if ph.Fault == BuildFaultBackfillRollback {
		// Whether INIT was still short of the build timestamp: a probe
		// that gives it a millisecond.
		if br.b.WaitFor(ctx, br.buildTS, time.Millisecond) != nil {
			m["backfill_in_progress_at_fault"] = 1
		}
		if err := c.buildFault(ctx, ph, br, ingest, m); err != nil {
			return fail(err)
		}
	}
	if err := c.waitCatchup(ctx, br); err != nil {
		return fail(err)
	}
	m["initial_build_ms"] = ms(br.catchup.Sub(br.start))
	if ph.Fault == BuildFaultKVRollback || ph.Fault == BuildFaultRestart {
		if err := c.buildFault(ctx, ph, br, ingest, m); err != nil {
			return fail(err)
		}
		m["initial_build_ms"] = ms(br.catchup.Sub(br.start))
	}
	if !ph.waits() {
		if err := ingest.halt(); err != nil {
			return err
		}
		m["maint_mutations"] = float64(ingest.applied)
		return nil
	}

	// Complete the builds in the order they started: an earlier one left
	// catching up by a wait: false phase, then this one.
	for _, pb := range c.pendingBuilds {
		if err := c.waitCatchup(ctx, pb); err != nil {
			return fail(err)
		}
		if err := c.merge(ctx, pb, out); err != nil {
			return fail(err)
		}
		if pb != br {
			m["earlier_builds"]++
			m["earlier_initial_build_ms"] = ms(pb.catchup.Sub(pb.start))
			m["earlier_active_ms"] = ms(time.Since(pb.start))
		}
	}
	c.pendingBuilds = nil
	m["active_ms"] = ms(time.Since(start))
	if err := ingest.halt(); err != nil {
		return err
	}
	el := time.Since(start)
	m["maint_mutations"] = float64(ingest.applied)
	m["maint_mutations_per_sec_during_build"] = float64(ingest.applied) / el.Seconds()
	return nil
}

// buildFault injects the phase's fault while br is in CATCHUP (during its
// backfill for kv-rollback-backfill), discards the catch-up, lets MAINT
// recover and starts br again; it returns with br in CATCHUP once more. Metrics: catchup_discarded, discarded_build_ms
// (the lost attempt, from its start to the fault), rollbacks (a KV
// rollback's), fault_recovery_ms (from the fault until MAINT runs again).
func (c *cellRun) buildFault(ctx context.Context, ph Phase, br *buildRun, ingest *ingestLoop, m map[string]float64) error {
	rollback := ph.Fault == BuildFaultKVRollback || ph.Fault == BuildFaultBackfillRollback
	if rollback {
		// The failover ends MAINT's streams while mutations still flow:
		// stopped before the ingest, MAINT has not caught up with (and
		// persisted) everything it received.
		if err := c.p.ix.Stop(); err != nil {
			return err
		}
	}
	if err := ingest.halt(); err != nil {
		return err
	}
	fault := time.Now()
	m["discarded_build_ms"] = ms(fault.Sub(br.attempt))
	if err := c.discard(br); err != nil {
		return err
	}
	m["catchup_discarded"]++
	switch {
	case rollback:
		vbs, err := chooseVbuckets(c.rng, c.p.spec.Vbuckets, ph.Vbuckets)
		if err != nil {
			return err
		}
		from := c.p.ix.HWT()
		persisted := c.p.ix.PersistedTS()
		for _, vb := range vbs {
			// Halfway between MAINT's newest persistent snapshot and what
			// it received: it rolls back to that snapshot.
			var branch upr.Seqno
			if persisted != nil {
				branch = persisted.Seqnos[vb]
			}
			top := min(from.Seqnos[vb], c.p.kv.HighSeqno(vb))
			if ph.Fault == BuildFaultBackfillRollback {
				// Below the end of INIT's backfill snapshot, so that the
				// backfill holds mutations KV lost.
				top = min(top, br.buildTS.Seqnos[vb])
			}
			branch = min(branch, top)
			branch += (top - branch) / 2
			if branch == top && top > 0 {
				// MAINT had persisted all it received: it loses its last
				// mutation at least, so that it has to roll back.
				branch = top - 1
			}
			if b := br.buildTS.Seqnos[vb]; ph.Fault == BuildFaultBackfillRollback && branch >= b && b > 0 {
				// At least the backfill's last item (the latest
				// version of its document, so surely sent) is lost.
				branch = b - 1
			}
			if ph.Fault == BuildFaultBackfillRollback && branch < br.buildTS.Seqnos[vb] {
				// The vbucket's backfill snapshot ends at the build
				// timestamp: what it holds past the branch is lost.
				m["backfill_vbuckets_past_branch"]++
			}
			if err := c.p.failover(vb, branch); err != nil {
				return err
			}
		}
		rollbacks, err := c.p.ix.Resume(ctx, from)
		if err != nil {
			return err
		}
		m["rollbacks"] = float64(rollbacks)
		m["vbuckets_failed_over"] = float64(len(vbs))
	default: // BuildFaultRestart
		if _, _, err := c.p.restart(ctx); err != nil {
			return err
		}
	}
	m["fault_recovery_ms"] = ms(time.Since(fault))
	ingest.start(ctx)
	if err := c.startBuild(ctx, br); err != nil {
		return err
	}
	return c.waitCatchup(ctx, br)
}
