package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/idxbench/idxbench/coordinator"
	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload"
	"github.com/idxbench/idxbench/workload/upr"
)

// pipeline is one cell's complete indexer pipeline: the KV bucket simulator
// and its generator, the oracle, the coordinator, the projector reading a
// feed of every vbucket, and the indexer on the cell's engine.
type pipeline struct {
	spec   workload.Spec
	gen    *workload.Generator
	bucket *workload.Bucket
	oracle *workload.Oracle
	coord  *coordinator.Coordinator
	ix     *indexer.Indexer
	proj   *projector.Projector
	tr     *projector.ChanTransport
	feed   *workload.Feed
	insts  []coordinator.Instance

	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errMu   sync.Mutex
	err     error // first error of a pipeline goroutine
}

// pipelineConfig is what a pipeline is built from.
type pipelineConfig struct {
	spec     workload.Spec
	engine   engines.Engine
	opts     engines.Options
	dir      string
	settings IndexerSettings
	recorder indexer.Recorder
}

func newPipeline(cfg pipelineConfig) (*pipeline, error) {
	gen, err := workload.NewGenerator(cfg.spec)
	if err != nil {
		return nil, err
	}
	p := &pipeline{spec: gen.Spec(), gen: gen}
	p.bucket = gen.NewBucket(workload.BucketOptions{})
	p.oracle = workload.NewOracle(p.bucket)
	if p.coord, err = coordinator.Open(cfg.dir); err != nil {
		return nil, err
	}
	s := cfg.settings
	dur := engines.NoSync
	if s.Durability == "sync" {
		dur = engines.Sync
	}
	p.ix, err = indexer.New(indexer.Config{
		Engine:           cfg.engine,
		EngineOptions:    cfg.opts,
		Dir:              filepath.Join(cfg.dir, "slices"),
		NumVbuckets:      p.spec.Vbuckets,
		SnapshotInterval: s.SnapshotInterval.D(),
		PersistInterval:  s.PersistInterval.D(),
		MaxRollbacks:     s.MaxRollbacks,
		QueueSize:        s.QueueSize,
		FlushBatchSize:   s.FlushBatchSize,
		Durability:       dur,
		STMode:           s.STMode,
		KVSeqnos:         p.bucket.CurrentSeqnos,
		Clock:            p.bucket.Now,
		Recorder:         cfg.recorder,
	})
	if err != nil {
		return nil, err
	}
	p.tr = projector.NewChanTransport(16)
	if p.proj, err = projector.New([]projector.Transport{p.tr}, projector.Options{}); err != nil {
		p.ix.Close()
		return nil, err
	}
	for _, d := range p.spec.Indexes {
		inst, err := p.coord.Create(d)
		if err != nil {
			p.ix.Close()
			return nil, err
		}
		if inst.State == coordinator.Created {
			// Deferred: built later by a build phase.
			continue
		}
		if err := p.addInstance(inst); err != nil {
			p.ix.Close()
			return nil, err
		}
	}
	return p, nil
}

// addInstance makes an instance live in the indexer and the projector and
// marks it ACTIVE.
func (p *pipeline) addInstance(inst coordinator.Instance) error {
	compiled, err := projector.Compile(inst.ID, inst.Defn)
	if err != nil {
		return err
	}
	if err := p.ix.CreateInstance(indexer.InstanceDefn{ID: inst.ID, Defn: inst.Defn}); err != nil {
		return fmt.Errorf("create index %q: %w", inst.Defn.Name, err)
	}
	if err := p.proj.AddInstance(compiled); err != nil {
		return err
	}
	if err := p.coord.SetState(inst.Defn.Name, coordinator.Active); err != nil {
		return err
	}
	inst.State = coordinator.Active
	p.insts = append(p.insts, inst)
	return nil
}

// start opens a stream from seqno 0 for every vbucket (a backfill of what
// the bucket holds, then live mutations) and starts the projector and the
// indexer (and, in coordinator mode, stability-timestamp promotion).
func (p *pipeline) start(ctx context.Context) error {
	if p.started {
		return nil
	}
	p.feed = p.bucket.NewFeed()
	for vb := 0; vb < p.spec.Vbuckets; vb++ {
		req := upr.StreamRequest{Vb: upr.Vbno(vb), End: workload.EndlessSeqno}
		if err := p.feed.Request(req); err != nil {
			return err
		}
	}
	ctx, p.cancel = context.WithCancel(ctx)
	p.started = true
	p.goRun(func() error { return p.proj.Run(ctx, p.feed) })
	p.goRun(func() error { return p.ix.Run(ctx, p.tr) })
	if p.ix.Config().STMode == indexer.ModeCoordinator {
		iv := p.ix.Config().SnapshotInterval
		p.goRun(func() error {
			return coordinator.RunPromotion(ctx, iv, p.spec.Vbuckets, []coordinator.Node{p.ix})
		})
	}
	return nil
}

func (p *pipeline) goRun(f func() error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := f(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) &&
			!errors.Is(err, workload.ErrFeedClosed) && !errors.Is(err, projector.ErrTransportClosed) {
			p.errMu.Lock()
			if p.err == nil {
				p.err = err
			}
			p.errMu.Unlock()
			if p.cancel != nil {
				p.cancel()
			}
		}
	}()
}

// failure is the first error a pipeline goroutine reported, if any.
func (p *pipeline) failure() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// waitCaughtUp waits until a snapshot covers everything the bucket holds now,
// polling so that a pipeline failure ends the wait.
func (p *pipeline) waitCaughtUp(ctx context.Context, timeout time.Duration) error {
	target := p.bucket.CurrentSeqnos()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.ix.WaitForTS(ctx, target) }()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				if ferr := p.failure(); ferr != nil {
					return ferr
				}
				return fmt.Errorf("waiting for the index to catch up with the bucket: %w", err)
			}
			return nil
		case <-t.C:
			if err := p.failure(); err != nil {
				cancel()
				return err
			}
		}
	}
}

// close stops the goroutines and closes the indexer's stores.
func (p *pipeline) close() error {
	if p.cancel != nil {
		p.cancel()
	}
	if p.feed != nil {
		p.feed.Close()
	}
	p.tr.Close()
	p.wg.Wait()
	return errors.Join(p.failure(), p.ix.Close())
}
