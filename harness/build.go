package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/idxbench/idxbench/coordinator"
	"github.com/idxbench/idxbench/indexer"
)

func init() {
	registerPhase(PhaseBuild, phaseKind{
		settings: []string{"rate", "indexes"},
		verifies: true,
		refs:     buildRefs,
		run:      metricsOnly((*cellRun).build),
	})
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

// build runs the initial build of deferred indexes (node.Build: one INIT
// stream for all of them, merged into MAINT) while MAINT keeps ingesting,
// and moves them through the coordinator's states: CREATED → INITIAL at
// the start, CATCHUP when INIT covers the build timestamp (the bucket's
// seqnos at the start), ACTIVE when the merge is done.
func (c *cellRun) build(ctx context.Context, ph Phase, m map[string]float64) error {
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
	buildTS := p.kv.CurrentSeqnos()
	m["indexes_built"] = float64(len(insts))
	defns := make([]indexer.InstanceDefn, len(insts))
	for i, inst := range insts {
		if err := p.place(inst); err != nil {
			return err
		}
		defns[i] = indexer.InstanceDefn{ID: inst.ID, Defn: inst.Defn}
	}

	// MAINT keeps ingesting throughout, closed loop unless a rate is set.
	d := &driver{c: c, rate: ph.Rate}
	dctx, stopDriver := context.WithCancel(ctx)
	defer stopDriver()
	var dwg sync.WaitGroup
	var derr error
	dwg.Add(1)
	go func() { defer dwg.Done(); derr = d.run(dctx, 0) }()
	stopIngest := func() error {
		stopDriver()
		dwg.Wait()
		return derr
	}
	fail := func(err error) error {
		stopIngest()
		return err
	}

	start := time.Now()
	b, err := p.ix.StartBuild(ctx, defns)
	if err != nil {
		return fail(err)
	}
	defer b.Close()
	if err := b.WaitFor(ctx, buildTS, catchUpTimeout); err != nil {
		return fail(err)
	}
	m["initial_build_ms"] = ms(time.Since(start))
	for _, inst := range insts {
		if err := p.coord.SetState(inst.Defn.Name, coordinator.Catchup); err != nil {
			return fail(err)
		}
	}
	if err := b.Merge(ctx, catchUpTimeout); err != nil {
		return fail(err)
	}
	for _, inst := range insts {
		if err := p.coord.SetState(inst.Defn.Name, coordinator.Active); err != nil {
			return fail(err)
		}
		inst.State = coordinator.Active
		p.insts = append(p.insts, inst)
	}
	m["active_ms"] = ms(time.Since(start))
	if err := stopIngest(); err != nil {
		return err
	}
	el := time.Since(start)
	m["maint_mutations"] = float64(d.applied.Load())
	m["maint_mutations_per_sec_during_build"] = float64(d.applied.Load()) / el.Seconds()
	return nil
}
