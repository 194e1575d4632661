package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/upr"
)

// Build is the initial build of instances whose data is already in KV,
// built together from one INIT topic while MAINT goes on:
//
//  1. StartBuild opens an INIT topic from seqno 0 (a backfill) for the new
//     instances only, consumed by an indexer of their own over the same
//     slices directory; MAINT keeps applying mutations throughout.
//  2. WaitFor(build timestamp): once INIT's snapshot covers KV's seqnos at
//     the start of the build the instances are in CATCHUP.
//  3. Merge: MAINT stops at its high-watermark; INIT goes on alone until
//     its snapshot covers that; INIT stops, the MAINT indexer adopts the
//     instances with their open slices, and MAINT resumes from where it
//     stopped, now feeding them too (mutations INIT already applied are
//     replayed in order, which converges). Merge returns when MAINT's
//     snapshot covers what INIT built: the instances are ACTIVE.
type Build struct {
	n     *Node
	insts []indexer.InstanceDefn
	ix    *indexer.Indexer
	run   *running
	// failMu guards err: the INIT topic's own failure.
	failMu sync.Mutex
	failed chan struct{}
	err    error
	closed bool
}

// StartBuild starts the INIT topic for insts. Close the build when done
// with it, merged or not.
func (n *Node) StartBuild(ctx context.Context, insts []indexer.InstanceDefn) (Builder, error) {
	cfg := n.cfg.Indexer
	cfg.Recorder = prefixRecorder{"init_", cfg.Recorder}
	ix, err := indexer.New(cfg)
	if err != nil {
		return nil, err
	}
	b := &Build{n: n, insts: insts, ix: ix, failed: make(chan struct{})}
	for _, d := range insts {
		if err := ix.CreateInstance(d); err != nil {
			ix.Close()
			return nil, fmt.Errorf("build index %q: %w", d.Defn.Name, err)
		}
	}
	topic, err := n.cfg.KV.OpenTopic(ctx, projector.TopicRequest{
		Topic: projector.TopicInit, From: upr.NewTsVbuuid(cfg.NumVbuckets), Instances: insts,
	})
	if err != nil {
		ix.Close()
		return nil, err
	}
	r := &running{topic: topic}
	ctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := ix.Run(ctx, topic); err != nil && !benign(err) {
			b.fail(err)
			r.cancel()
		}
	}()
	b.run = r
	return b, nil
}

func (b *Build) fail(err error) {
	b.failMu.Lock()
	defer b.failMu.Unlock()
	if b.err == nil {
		b.err = fmt.Errorf("INIT stream: %w", err)
		close(b.failed)
	}
}

// failure is the INIT topic's failure, else MAINT's.
func (b *Build) failure() error {
	b.failMu.Lock()
	err := b.err
	b.failMu.Unlock()
	if err != nil {
		return err
	}
	return b.n.Failure()
}

// WaitFor waits until INIT's snapshot covers ts, for at most timeout.
func (b *Build) WaitFor(ctx context.Context, ts *upr.TsVbuuid, timeout time.Duration) error {
	failed := make(chan struct{})
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	maintFailed := b.n.failedCh()
	go func() {
		select {
		case <-b.failed:
		case <-maintFailed:
		case <-stopWatch:
			return
		}
		close(failed)
	}()
	if err := waitCovered(ctx, b.ix, ts, timeout, failed, b.failure); err != nil {
		return fmt.Errorf("INIT stream: %w", err)
	}
	return nil
}

// Merge merges the built instances into MAINT (step 3 above) and returns
// once MAINT's snapshot covers what INIT built.
func (b *Build) Merge(ctx context.Context, timeout time.Duration) error {
	n := b.n
	if err := n.Stop(); err != nil {
		return err
	}
	hwt := n.ix.HWT()
	if err := b.WaitFor(ctx, hwt, timeout); err != nil {
		return err
	}
	built := b.ix.SnapshotTS()
	b.stop()
	for _, d := range b.insts {
		if err := n.ix.AdoptInstance(b.ix, d.ID); err != nil {
			return fmt.Errorf("merge index %q into MAINT: %w", d.Defn.Name, err)
		}
		n.mu.Lock()
		n.insts = append(n.insts, d)
		n.mu.Unlock()
	}
	if err := b.Close(); err != nil {
		return err
	}
	if _, err := n.Resume(ctx, hwt); err != nil {
		return err
	}
	if err := n.WaitCovered(ctx, built, timeout); err != nil {
		return fmt.Errorf("waiting for MAINT to pass what INIT built: %w", err)
	}
	return nil
}

// stop stops the INIT topic; its indexer stays open.
func (b *Build) stop() {
	if b.run != nil {
		stop(b.run)
		b.run = nil
	}
}

// Close stops the INIT topic and closes its indexer. The instances it
// still holds (none after a merge; all of a build abandoned before it,
// or discarded after a KV rollback or a restart) are dropped with their
// slices: nothing records them as built, and a later build of the same
// index must start from an empty slice, not from what this one left. It is
// safe to call twice.
func (b *Build) Close() error {
	b.stop()
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	for id := range b.ix.Instances() {
		errs = append(errs, b.ix.DropInstance(id))
	}
	return errors.Join(append(errs, b.ix.Close())...)
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
