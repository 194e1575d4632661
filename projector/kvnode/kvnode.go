// Package kvnode is the KV node of the pipeline: the simulated bucket, the
// generator that mutates it, and the projectors that run beside it — one per
// topic an index node asks for (MAINT, and INIT while a build runs).
//
// An index node talks to it through three calls, the same in-process and
// over the network: Probe (the answer each vbucket gives to a stream request
// from a vector: go ahead, or Rollback to a seqno), OpenTopic (the streams
// themselves, projected for the topic's instances) and CurrentSeqnos. The
// run's driver mutates the bucket through Next and Apply, and fault
// injection fails vbuckets over through Failover and restarts KV through
// Restart.
//
// In this package a topic's key versions reach the index node through an
// in-process channel transport; the dataport carries them over TCP.
package kvnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload"
	"github.com/idxbench/idxbench/workload/upr"
)

// Options configure a KV node. The zero value works.
type Options struct {
	// TopicBuffer is how many batches a topic's in-process transport
	// buffers before the projector waits for the index node (default 16).
	TopicBuffer int
	// Bucket configures the bucket simulator (its clock).
	Bucket workload.BucketOptions
}

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.TopicBuffer <= 0 {
		o.TopicBuffer = 16
	}
}

// Node is one KV node. Next and Apply must be called from one goroutine at
// a time (the driver's); everything else is safe for concurrent use.
type Node struct {
	opts   Options
	gen    *workload.Generator
	bucket *workload.Bucket

	// topics are the running topics, which a KV restart ends.
	mu     sync.Mutex
	topics map[*topic]struct{}
}

// New returns a KV node with an empty bucket shaped by spec.
func New(spec workload.Spec, opts Options) (*Node, error) {
	opts.EnsureDefaults()
	gen, err := workload.NewGenerator(spec)
	if err != nil {
		return nil, err
	}
	return &Node{opts: opts, gen: gen, bucket: gen.NewBucket(opts.Bucket)}, nil
}

// Spec is the effective workload spec (defaults filled in).
func (n *Node) Spec() workload.Spec { return n.gen.Spec() }

// Bucket is the simulated bucket, for an in-process oracle and for tests.
func (n *Node) Bucket() *workload.Bucket { return n.bucket }

// Load inserts the spec's initial documents and returns how many there are.
func (n *Node) Load() int {
	n.gen.Load(n.bucket)
	return n.gen.Loaded()
}

// Loaded is how many documents the load inserted (0 before Load).
func (n *Node) Loaded() int { return n.gen.Loaded() }

// Ops is how many operations the generator produced after the load.
func (n *Node) Ops() uint64 { return n.gen.Ops() }

// Next is the generator's next operation (after the load).
func (n *Node) Next() workload.Op { return n.gen.Next() }

// Apply applies op to the bucket.
func (n *Node) Apply(op workload.Op) { n.gen.Apply(n.bucket, op) }

// Failover fails vb over, keeping its history up to branch: a new vbuuid,
// and streams from past branch answered with Rollback.
func (n *Node) Failover(vb upr.Vbno, branch upr.Seqno) error { return n.bucket.Failover(vb, branch) }

// Restart restarts KV: every running topic ends (its connection drops, so
// the index node sees it end and must ask for its streams again), and each
// vbucket in persisted comes back with its history up to the seqno given,
// losing what was above it, under a new failover-log entry there if
// newEntry (see workload.Bucket.Restart). An empty persisted is a clean
// restart.
func (n *Node) Restart(persisted map[upr.Vbno]upr.Seqno, newEntry bool) error {
	if err := n.bucket.Restart(persisted, newEntry); err != nil {
		return err
	}
	n.mu.Lock()
	topics := make([]*topic, 0, len(n.topics))
	for t := range n.topics {
		topics = append(topics, t)
	}
	n.mu.Unlock()
	for _, t := range topics {
		t.Close()
	}
	return nil
}

// HighSeqno is vb's latest seqno.
func (n *Node) HighSeqno(vb upr.Vbno) upr.Seqno { return n.bucket.HighSeqno(vb) }

// CurrentSeqnos is every vbucket's latest seqno and vbuuid.
func (n *Node) CurrentSeqnos() *upr.TsVbuuid { return n.bucket.CurrentSeqnos() }

// Now is the bucket's clock (mutation emit times), in nanoseconds.
func (n *Node) Now() int64 { return n.bucket.Now() }

// Probe returns the rollback seqno of every vbucket that answers a stream
// request from ts with Rollback; it opens no stream for the others. The
// bucket decides each answer when the stream is requested, so a probe
// reads the answers through a feed of its own.
func (n *Node) Probe(ctx context.Context, ts *upr.TsVbuuid) (map[upr.Vbno]upr.Seqno, error) {
	probe, err := n.openFeed(ts)
	if err != nil {
		return nil, err
	}
	defer probe.Close()
	vbuckets := ts.Len()
	rollbacks := map[upr.Vbno]upr.Seqno{}
	answered := make([]bool, vbuckets)
	left := vbuckets
	buf := make([]upr.Event, 1024)
	for left > 0 {
		k, err := probe.Next(ctx, buf)
		if err != nil {
			return nil, err
		}
		for _, ev := range buf[:k] {
			if answered[ev.Vb] {
				continue
			}
			answered[ev.Vb] = true
			left--
			if ev.Op == upr.OpRollback {
				rollbacks[ev.Vb] = ev.RollbackSeqno
			}
			if ev.Op == upr.OpStreamBegin {
				probe.CloseStream(ev.Vb) // nothing more of it is needed
			}
		}
	}
	return rollbacks, nil
}

// openFeed opens a feed with one endless stream per vbucket from ts.
func (n *Node) openFeed(ts *upr.TsVbuuid) (*workload.Feed, error) {
	if ts.Len() != n.bucket.Vbuckets() {
		return nil, fmt.Errorf("kv node: stream request over %d vbuckets, the bucket has %d", ts.Len(), n.bucket.Vbuckets())
	}
	feed := n.bucket.NewFeed()
	for vb := range ts.Len() {
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

// ApplyNext applies the generator's next n operations.
func (n *Node) ApplyNext(k int) {
	for range k {
		n.gen.Apply(n.bucket, n.gen.Next())
	}
}

// OpenTopic starts a topic: every vbucket's stream from req.From, projected
// for req.Instances, delivered through an in-process transport. The topic
// runs until it is closed or ctx is done. A vbucket the bucket answers with
// Rollback gets a StreamEnd; ask Probe first.
func (n *Node) OpenTopic(ctx context.Context, req projector.TopicRequest) (projector.Topic, error) {
	tr := projector.NewChanTransport(n.opts.TopicBuffer)
	t, err := n.openTopic(ctx, req, tr)
	if err != nil {
		return nil, err
	}
	return &chanTopic{topic: t, tr: tr}, nil
}

// openTopic starts a topic's projector sending to tr.
func (n *Node) openTopic(ctx context.Context, req projector.TopicRequest, tr projector.Transport) (*topic, error) {
	compiled := make([]*projector.Instance, 0, len(req.Instances))
	for _, d := range req.Instances {
		c, err := projector.Compile(d.ID, d.Defn)
		if err != nil {
			return nil, err
		}
		compiled = append(compiled, c)
	}
	if req.From == nil {
		return nil, fmt.Errorf("topic %s: no vector to start from", req.Topic)
	}
	feed, err := n.openFeed(req.From)
	if err != nil {
		return nil, err
	}
	proj, err := projector.New([]projector.Transport{tr}, projector.Options{})
	if err == nil {
		err = proj.AddInstance(compiled...)
	}
	if err != nil {
		feed.Close()
		return nil, fmt.Errorf("topic %s: %w", req.Topic, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	t := &topic{name: req.Topic, feed: feed, proj: proj, cancel: cancel, done: make(chan struct{})}
	if c, ok := tr.(interface{ Close() error }); ok {
		t.closeTransport = func() { c.Close() }
	}
	n.mu.Lock()
	if n.topics == nil {
		n.topics = map[*topic]struct{}{}
	}
	n.topics[t] = struct{}{}
	n.mu.Unlock()
	t.forget = func() {
		n.mu.Lock()
		delete(n.topics, t)
		n.mu.Unlock()
	}
	go t.run(ctx)
	return t, nil
}

// topic is a running topic: a feed and its projector.
type topic struct {
	name           string
	feed           *workload.Feed
	proj           *projector.Projector
	closeTransport func()
	forget         func() // removes the topic from its node's running ones
	cancel         context.CancelFunc
	once           sync.Once
	done           chan struct{}
	err            error // the projector's failure; set before done is closed
}

func (t *topic) run(ctx context.Context) {
	defer close(t.done)
	defer t.forget()
	err := t.proj.Run(ctx, t.feed)
	if err != nil && ctx.Err() == nil && !errors.Is(err, workload.ErrFeedClosed) &&
		!errors.Is(err, projector.ErrTransportClosed) && !errors.Is(err, io.EOF) {
		t.err = fmt.Errorf("projector of topic %s: %w", t.name, err)
	}
	// The receiver drains what was sent, then sees the end (or t.err).
	if t.closeTransport != nil {
		t.closeTransport()
	}
}

// DropInstance stops the topic's key versions for an instance.
func (t *topic) DropInstance(id uint64) error {
	t.proj.DropInstance(id)
	return nil
}

// Close stops the topic's projector and feed.
func (t *topic) Close() error {
	t.once.Do(func() {
		t.cancel()
		t.feed.Close()
		if t.closeTransport != nil {
			t.closeTransport()
		}
		<-t.done
	})
	return nil
}

// chanTopic is a topic received in process.
type chanTopic struct {
	*topic
	tr *projector.ChanTransport
}

// Recv implements projector.Topic.
func (t *chanTopic) Recv(ctx context.Context) (*projector.Batch, error) {
	b, err := t.tr.Recv(ctx)
	if errors.Is(err, projector.ErrTransportClosed) {
		select {
		case <-t.done:
			if t.err != nil {
				return nil, t.err
			}
		default:
		}
	}
	return b, err
}
