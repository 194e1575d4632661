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
	// compiled are the projector's instances, given to every projector a
	// (re)start creates.
	compiled []*projector.Instance
	cfg      pipelineConfig

	// ixMu guards swapping ix (a restart) against goroutines that read
	// stats while a phase runs; see current.
	ixMu sync.Mutex

	started bool
	from    *upr.TsVbuuid // the vector the streams last (re)started from
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
	p := &pipeline{spec: gen.Spec(), gen: gen, cfg: cfg}
	p.bucket = gen.NewBucket(workload.BucketOptions{})
	p.oracle = workload.NewOracle(p.bucket)
	if p.coord, err = coordinator.Open(cfg.dir); err != nil {
		return nil, err
	}
	if p.ix, err = p.openIndexer(); err != nil {
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

// openIndexer opens an indexer over the pipeline's directory: empty at
// first, the slices of an earlier one after a restart.
func (p *pipeline) openIndexer() (*indexer.Indexer, error) {
	return p.openIndexerWith(p.cfg.recorder)
}

func (p *pipeline) openIndexerWith(rec indexer.Recorder) (*indexer.Indexer, error) {
	s := p.cfg.settings
	dur := engines.NoSync
	if s.Durability == "sync" {
		dur = engines.Sync
	}
	return indexer.New(indexer.Config{
		Engine:              p.cfg.engine,
		EngineOptions:       p.cfg.opts,
		Dir:                 filepath.Join(p.cfg.dir, "slices"),
		NumVbuckets:         p.spec.Vbuckets,
		SnapshotInterval:    s.SnapshotInterval.D(),
		PersistInterval:     s.PersistInterval.D(),
		MaxRollbacks:        s.MaxRollbacks,
		QueueSize:           s.QueueSize,
		FlushBatchSize:      s.FlushBatchSize,
		BackIndexCacheBytes: s.BackIndexCacheBytes,
		Durability:          dur,
		STMode:              s.STMode,
		KVSeqnos:            p.bucket.CurrentSeqnos,
		Clock:               p.bucket.Now,
		Recorder:            rec,
	})
}

// resume starts the streams from ts, and while the bucket answers some
// vbuckets with Rollback, rolls the indexer back to those points and tries
// again from the vector the rollback restored. It returns how many
// rollbacks that took.
func (p *pipeline) resume(ctx context.Context, ts *upr.TsVbuuid) (rollbacks int, err error) {
	for {
		err := p.startFrom(ctx, ts)
		var rb *rollbackNeeded
		if !errors.As(err, &rb) {
			return rollbacks, err
		}
		if rollbacks++; rollbacks > 3 {
			return rollbacks, fmt.Errorf("still asked to roll back after %d rollbacks: %w", rollbacks-1, err)
		}
		if ts, err = p.ix.Rollback(rb.points); err != nil {
			return rollbacks, err
		}
		if ts, err = p.checkHold(ctx, ts); err != nil {
			return rollbacks, err
		}
	}
}

// restart is a clean indexer restart: stop the streams, close the indexer,
// reopen the coordinator's metadata and the slices, recover each slice to
// its newest persistent snapshot and resume the streams from the oldest.
// It returns when the streams run again, with the time the reopen took and
// the vector the streams restarted from.
func (p *pipeline) restart(ctx context.Context) (open time.Duration, from *upr.TsVbuuid, err error) {
	if err := p.stop(); err != nil {
		return 0, nil, err
	}
	p.ixMu.Lock()
	err = p.ix.Close()
	p.ix = nil // stats readers see no indexer until the new one is open
	p.ixMu.Unlock()
	if err != nil {
		return 0, nil, fmt.Errorf("close indexer: %w", err)
	}
	start := time.Now()
	if p.coord, err = coordinator.Open(p.cfg.dir); err != nil {
		return 0, nil, err
	}
	ix, err := p.openIndexer()
	if err != nil {
		return 0, nil, err
	}
	p.ixMu.Lock()
	p.ix = ix
	p.ixMu.Unlock()
	p.insts, p.compiled = nil, nil
	for _, inst := range p.coord.Instances() {
		if inst.State != coordinator.Active {
			continue
		}
		compiled, err := projector.Compile(inst.ID, inst.Defn)
		if err != nil {
			return 0, nil, err
		}
		if err := p.ix.CreateInstance(indexer.InstanceDefn{ID: inst.ID, Defn: inst.Defn}); err != nil {
			return 0, nil, fmt.Errorf("reopen index %q: %w", inst.Defn.Name, err)
		}
		p.insts = append(p.insts, inst)
		p.compiled = append(p.compiled, compiled)
	}
	ts, err := p.recoverSlices(ctx)
	if err != nil {
		return 0, nil, err
	}
	open = time.Since(start)
	_, err = p.resume(ctx, ts)
	return open, ts, err
}

// stats reads the serving indexer's stats, for goroutines other than the
// one running phases (tickers, the metrics exporter). ok is false while a
// restart has closed one indexer and not yet opened the next.
func (p *pipeline) stats() (st indexer.Stats, ok bool) {
	p.ixMu.Lock()
	defer p.ixMu.Unlock()
	if p.ix == nil {
		return st, false
	}
	return p.ix.Stats(), true
}

// dropIndex drops an index while the streams run: the coordinator marks it
// DELETED (refused during recovery), the projector stops sending for it,
// and the indexer removes it from scans and destroys its slices.
func (p *pipeline) dropIndex(name string) error {
	inst, err := p.coord.Drop(name)
	if err != nil {
		return err
	}
	if p.proj != nil {
		p.proj.DropInstance(inst.ID)
	}
	for i := range p.compiled {
		if p.compiled[i].ID == inst.ID {
			p.compiled = append(p.compiled[:i], p.compiled[i+1:]...)
			break
		}
	}
	for i := range p.insts {
		if p.insts[i].ID == inst.ID {
			p.insts = append(p.insts[:i], p.insts[i+1:]...)
			break
		}
	}
	return p.ix.DropInstance(inst.ID)
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
	p.compiled = append(p.compiled, compiled)
	if p.proj != nil {
		if err := p.proj.AddInstance(compiled); err != nil {
			return err
		}
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
	return p.startFrom(ctx, upr.NewTsVbuuid(p.spec.Vbuckets))
}

// startFrom requests every vbucket's stream from ts (the vector a restart or
// rollback restored) and starts the projector and the indexer on it. A
// vbucket the bucket answers with Rollback is collected and returned as
// *rollbackNeeded before anything starts.
func (p *pipeline) startFrom(ctx context.Context, ts *upr.TsVbuuid) error {
	feed, rollbacks, err := p.requestStreams(ctx, ts)
	if err != nil {
		return err
	}
	if len(rollbacks) > 0 {
		return &rollbackNeeded{points: rollbacks}
	}
	p.from = ts.Clone()
	p.feed = feed
	p.tr = projector.NewChanTransport(16)
	proj, err := projector.New([]projector.Transport{p.tr}, projector.Options{})
	if err != nil {
		return err
	}
	if err := proj.AddInstance(p.compiled...); err != nil {
		return err
	}
	p.proj = proj
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

// rollbackNeeded says the bucket answered some stream requests with
// Rollback: the seqno each vbucket must roll back to.
type rollbackNeeded struct {
	points map[upr.Vbno]upr.Seqno
}

func (r *rollbackNeeded) Error() string {
	return fmt.Sprintf("the bucket asked %d vbucket(s) to roll back", len(r.points))
}

// requestStreams asks for every vbucket's stream from ts: when the bucket
// answers some with Rollback it returns their points and no feed, else it
// opens the feed the projector will read.
func (p *pipeline) requestStreams(ctx context.Context, ts *upr.TsVbuuid) (*workload.Feed, map[upr.Vbno]upr.Seqno, error) {
	rollbacks, err := p.probe(ctx, ts)
	if err != nil || len(rollbacks) > 0 {
		return nil, rollbacks, err
	}
	feed, err := p.openFeed(ts)
	return feed, nil, err
}

// probe reads the bucket's answer to a stream request from ts for every
// vbucket (the bucket decides each answer when the stream is requested)
// through a feed of its own, and returns the rollback points of those
// answered with Rollback.
func (p *pipeline) probe(ctx context.Context, ts *upr.TsVbuuid) (map[upr.Vbno]upr.Seqno, error) {
	probe, err := p.openFeed(ts)
	if err != nil {
		return nil, err
	}
	defer probe.Close()
	rollbacks := map[upr.Vbno]upr.Seqno{}
	answered := make([]bool, p.spec.Vbuckets)
	left := p.spec.Vbuckets
	buf := make([]upr.Event, 1024)
	for left > 0 {
		n, err := probe.Next(ctx, buf)
		if err != nil {
			return nil, err
		}
		for _, ev := range buf[:n] {
			if answered[ev.Vb] {
				continue
			}
			answered[ev.Vb] = true
			left--
			if ev.Op == upr.OpRollback {
				rollbacks[ev.Vb] = ev.RollbackSeqno
			}
			// Nothing more of this vbucket is needed.
			if ev.Op == upr.OpStreamBegin {
				probe.CloseStream(ev.Vb)
			}
		}
	}
	return rollbacks, nil
}

// recoverSlices is the restart flow's recovery: every slice back to its
// newest persistent snapshot, then checkHold. It returns the vector to
// resume the streams from.
func (p *pipeline) recoverSlices(ctx context.Context) (*upr.TsVbuuid, error) {
	ts, err := p.ix.Recover()
	if err != nil {
		return nil, err
	}
	return p.checkHold(ctx, ts)
}

// checkHold makes sure the newest vector the slices were restored to is
// still on the bucket's history. A crash after a failover the indexer never
// processed can leave a slice restored past the branch point, on the old
// vbuuid; no snapshot on the new branch could ever cover it, so the slices
// are rolled back to the points the bucket names. It returns the vector to
// resume from: ts, or the one that rollback restored.
//
// A hold the bucket accepts is confirmed (Indexer.ConfirmHold): its
// positions on an older vbuuid lie before the branch point, and the
// streams will resend them under the newest vbuuid.
func (p *pipeline) checkHold(ctx context.Context, ts *upr.TsVbuuid) (*upr.TsVbuuid, error) {
	for range 4 {
		hold := p.ix.RecoveryHold()
		if hold == nil {
			return ts, nil
		}
		points, err := p.probe(ctx, hold)
		if err != nil {
			return nil, err
		}
		if len(points) == 0 {
			p.ix.ConfirmHold()
			return ts, nil
		}
		if ts, err = p.ix.Rollback(points); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("recovery hold still off the bucket's history after 4 rollbacks")
}

// openFeed opens a feed with one endless stream per vbucket from ts.
func (p *pipeline) openFeed(ts *upr.TsVbuuid) (*workload.Feed, error) {
	feed := p.bucket.NewFeed()
	for vb := 0; vb < p.spec.Vbuckets; vb++ {
		req := upr.StreamRequest{
			Vb: upr.Vbno(vb), Start: ts.Seqnos[vb], End: workload.EndlessSeqno, Vbuuid: ts.Vbuuids[vb],
			SnapStart: ts.Snapshots[vb][0], SnapEnd: ts.Snapshots[vb][1],
		}
		if err := feed.Request(req); err != nil {
			feed.Close()
			return nil, fmt.Errorf("stream request %+v: %w", req, err)
		}
	}
	return feed, nil
}

// stop stops the projector, the indexer's Run and the feed, leaving the
// indexer open with whatever it flushed.
func (p *pipeline) stop() error {
	if !p.started {
		return nil
	}
	p.cancel()
	p.feed.Close()
	p.tr.Close()
	p.wg.Wait()
	p.started = false
	return p.failure()
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

// waitCaughtUp waits until a snapshot covers everything the bucket holds now.
func (p *pipeline) waitCaughtUp(ctx context.Context, timeout time.Duration) error {
	if err := waitCovered(ctx, p.ix, p.bucket.CurrentSeqnos(), timeout, p.failure); err != nil {
		return fmt.Errorf("waiting for the index to catch up with the bucket: %w", err)
	}
	return nil
}

// waitCovered waits until a snapshot of ix covers ts, polling failed so that
// a failure of the goroutines feeding ix ends the wait with that failure.
func waitCovered(ctx context.Context, ix *indexer.Indexer, ts *upr.TsVbuuid, timeout time.Duration, failed func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ix.WaitForTS(ctx, ts) }()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if ferr := failed(); err != nil && ferr != nil {
				return ferr
			}
			return err
		case <-t.C:
			if err := failed(); err != nil {
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
	if p.tr != nil {
		p.tr.Close()
	}
	p.wg.Wait()
	if p.ix == nil {
		return p.failure()
	}
	return errors.Join(p.failure(), p.ix.Close())
}
