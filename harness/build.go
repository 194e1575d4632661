package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/idxbench/idxbench/coordinator"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/upr"
)

// build is the initial-build flow of deferred indexes, built together from
// one INIT stream while the existing indexes keep consuming MAINT:
//
//  1. the coordinator moves them CREATED → INITIAL; the build timestamp is
//     the bucket's current seqnos;
//  2. an INIT stream (its own feed from seqno 0 — a backfill — its own
//     projector with only the new instances, and its own indexer over the
//     same slices directory) builds them; MAINT goes on, with mutations
//     applied throughout;
//  3. when the INIT snapshot covers the build timestamp they are CATCHUP;
//  4. merge: MAINT stops at its high-watermark; INIT goes on alone until its
//     snapshot covers that; INIT stops and the MAINT indexer adopts its
//     instances with their open slices, and MAINT's streams resume from
//     where they stopped, now feeding the new instances too (mutations INIT
//     already applied are replayed in order, which converges);
//  5. when MAINT's snapshot covers what INIT had built, they are ACTIVE.
func (c *cellRun) build(ctx context.Context, ph Phase, m map[string]float64) error {
	p := c.p
	if err := p.start(ctx); err != nil {
		return err
	}
	names := ph.Indexes
	if len(names) == 0 {
		for _, inst := range p.coord.Instances() {
			if inst.State == coordinator.Created {
				names = append(names, inst.Defn.Name)
			}
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("build-index: no deferred index to build")
	}
	insts, err := p.coord.Build(names...)
	if err != nil {
		return err
	}
	buildTS := p.bucket.CurrentSeqnos()
	m["indexes_built"] = float64(len(insts))

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

	start := time.Now()
	init, err := p.startInit(ctx, insts)
	if err != nil {
		stopIngest()
		return err
	}
	defer init.close()
	if err := init.waitFor(ctx, p, buildTS); err != nil {
		stopIngest()
		return err
	}
	m["initial_build_ms"] = ms(time.Since(start))
	for _, inst := range insts {
		if err := p.coord.SetState(inst.Defn.Name, coordinator.Catchup); err != nil {
			stopIngest()
			return err
		}
	}

	// Merge. MAINT stops where it is; INIT catches up with it alone.
	if err := p.stop(); err != nil {
		stopIngest()
		return err
	}
	hwt := p.ix.HWT()
	if err := init.waitFor(ctx, p, hwt); err != nil {
		stopIngest()
		return err
	}
	built := init.ix.SnapshotTS()
	init.stop()
	for _, inst := range insts {
		if err := p.ix.AdoptInstance(init.ix, inst.ID); err != nil {
			stopIngest()
			return fmt.Errorf("merge index %q into MAINT: %w", inst.Defn.Name, err)
		}
		compiled, err := projector.Compile(inst.ID, inst.Defn)
		if err != nil {
			stopIngest()
			return err
		}
		p.compiled = append(p.compiled, compiled)
	}
	if err := init.close(); err != nil {
		stopIngest()
		return err
	}
	if _, err := p.resume(ctx, hwt); err != nil {
		stopIngest()
		return err
	}
	if err := p.ix.WaitForTS(ctx, built); err != nil {
		stopIngest()
		return fmt.Errorf("waiting for MAINT to pass what INIT built: %w", err)
	}
	for _, inst := range insts {
		if err := p.coord.SetState(inst.Defn.Name, coordinator.Active); err != nil {
			stopIngest()
			return err
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

// initStream is an INIT stream: a backfill from seqno 0 for the instances
// being built, through a projector and an indexer of their own.
type initStream struct {
	ix      *indexer.Indexer
	feed    interface{ Close() error }
	tr      *projector.ChanTransport
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	err     error
	stopped bool
	closed  bool
}

func (p *pipeline) startInit(ctx context.Context, insts []coordinator.Instance) (*initStream, error) {
	ix, err := p.openIndexerWith(prefixRecorder{"init_", p.cfg.recorder})
	if err != nil {
		return nil, err
	}
	s := &initStream{ix: ix}
	var compiled []*projector.Instance
	for _, inst := range insts {
		if err := ix.CreateInstance(indexer.InstanceDefn{ID: inst.ID, Defn: inst.Defn}); err != nil {
			ix.Close()
			return nil, err
		}
		ci, err := projector.Compile(inst.ID, inst.Defn)
		if err != nil {
			ix.Close()
			return nil, err
		}
		compiled = append(compiled, ci)
	}
	feed, err := p.openFeed(upr.NewTsVbuuid(p.spec.Vbuckets))
	if err != nil {
		ix.Close()
		return nil, err
	}
	s.feed = feed
	s.tr = projector.NewChanTransport(16)
	proj, err := projector.New([]projector.Transport{s.tr}, projector.Options{})
	if err == nil {
		err = proj.AddInstance(compiled...)
	}
	if err != nil {
		feed.Close()
		ix.Close()
		return nil, err
	}
	ctx, s.cancel = context.WithCancel(ctx)
	run := func(f func() error) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				s.mu.Lock()
				if s.err == nil {
					s.err = err
				}
				s.mu.Unlock()
				s.cancel()
			}
		}()
	}
	run(func() error { return proj.Run(ctx, feed) })
	run(func() error { return ix.Run(ctx, s.tr) })
	return s, nil
}

// waitFor waits until the INIT indexer's snapshot covers ts.
func (s *initStream) waitFor(ctx context.Context, p *pipeline, ts *upr.TsVbuuid) error {
	failed := func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.err != nil {
			return s.err
		}
		return p.failure()
	}
	if err := waitCovered(ctx, s.ix, ts, catchUpTimeout, failed); err != nil {
		return fmt.Errorf("INIT stream: %w", err)
	}
	return nil
}

// stop stops the INIT stream's goroutines; its indexer stays open.
func (s *initStream) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cancel()
	s.feed.Close()
	s.tr.Close()
	s.wg.Wait()
}

// close stops the INIT stream and closes its indexer, with whatever
// instances it still holds. It is safe to call twice.
func (s *initStream) close() error {
	s.stop()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.ix.Close()
}

// prefixRecorder names the INIT indexer's operations apart from MAINT's.
type prefixRecorder struct {
	prefix string
	r      indexer.Recorder
}

func (p prefixRecorder) Record(op string, d time.Duration) {
	if p.r != nil {
		p.r.Record(p.prefix+op, d)
	}
}
