// Package node is the index node: an indexer, the slices it owns on disk,
// and the stream manager that keeps its topics (MAINT, and INIT during a
// build) flowing from KV — the indexer's side of the UPR protocol.
//
// The stream manager owns the flows that involve both KV and the slices:
//
//   - Resume: ask KV for every vbucket's stream from a vector; while some
//     vbuckets answer Rollback, roll the slices back to recovery points at
//     or below those seqnos and ask again from the vector they restored.
//   - Recovery hold: after a restore, check the newest restored vector is
//     still on KV's history (a crash after an unprocessed failover can
//     leave a slice past the branch point) and roll back what is not.
//   - Restart: close the indexer, reopen its slices, restore each to its
//     newest recovery point and resume from the oldest.
//   - Initial build (Build): an INIT topic backfills the new instances
//     into an indexer of their own, then merges them into MAINT.
//   - Drop: KV stops sending for the instance; its slices are destroyed.
//
// KV is reached only through the KV interface below (implemented in
// process by the KV node, or over the network), and measurement through
// the indexer's Recorder, so the package knows nothing of the harness.
//
// An index node is driven through API, in process (*Node) or across
// processes (*Client, served by Register and ServeWith). Cluster is the
// same API over several index nodes: the index client's side of replicas
// (placement from the partition map, scans failing over between
// replicas).
//
// Concurrency: the flows (Start, Resume, Stop, Restart, Build, Drop,
// CreateInstance) are called from one goroutine at a time; the readers
// (Scan, Stats, the vectors, Wait*) are safe from any goroutine.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/upr"
)

// KV is what the stream manager needs of the KV side.
type KV interface {
	// Probe returns the rollback seqno of every vbucket that answers a
	// stream request from ts with Rollback, opening no stream.
	Probe(ctx context.Context, ts *upr.TsVbuuid) (map[upr.Vbno]upr.Seqno, error)
	// OpenTopic starts a topic: every vbucket's stream from req.From,
	// projected for req.Instances.
	OpenTopic(ctx context.Context, req projector.TopicRequest) (projector.Topic, error)
	// CurrentSeqnos is KV's current vector.
	CurrentSeqnos() *upr.TsVbuuid
}

// Config is what an index node is opened with.
type Config struct {
	// Indexer configures the node's indexer (and, with its Recorder's
	// operation names prefixed "init_", the INIT indexer of a build).
	// KVSeqnos defaults to KV.CurrentSeqnos.
	Indexer indexer.Config
	// KV is the KV side. Required.
	KV KV
	// Promote, when set, runs beside the MAINT indexer while its topic
	// runs: stability-timestamp promotion in coordinator mode, which lives
	// with the coordinator.
	Promote func(ctx context.Context, ix *indexer.Indexer) error
}

// maxRollbacks bounds the Rollback answers one resume follows before it
// gives up: each rollback moves the slices to an older recovery point, so
// more than a few means KV and the slices disagree about history.
const maxRollbacks = 3

// Node is one index node.
type Node struct {
	cfg Config

	// mu guards ix (swapped by Restart) and the running topic's state for
	// the readers.
	mu    sync.Mutex
	ix    *indexer.Indexer
	insts []indexer.InstanceDefn // the instances MAINT feeds
	from  *upr.TsVbuuid          // the vector MAINT last (re)started from

	run *running // MAINT while it runs

	failMu sync.Mutex
	failed chan struct{} // closed on the first failure of a running topic
	err    error
}

// running is a topic being consumed by an indexer.
type running struct {
	topic  projector.Topic
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Open opens the node's indexer over cfg.Indexer.Dir: empty at first, the
// slices of an earlier node after a restart (call Recover then).
func Open(cfg Config) (*Node, error) {
	if cfg.KV == nil {
		return nil, errors.New("index node: no KV")
	}
	if cfg.Indexer.KVSeqnos == nil {
		cfg.Indexer.KVSeqnos = cfg.KV.CurrentSeqnos
	}
	if cfg.Indexer.EngineOptions.DiskSpace == nil {
		// The MAINT indexer, an INIT build's and a restart's share the
		// data directory: their slices keep their free-space reserves
		// together.
		cfg.Indexer.EngineOptions.DiskSpace = new(engines.DiskSpace)
	}
	n := &Node{cfg: cfg, failed: make(chan struct{})}
	ix, err := indexer.New(cfg.Indexer)
	if err != nil {
		return nil, err
	}
	n.ix = ix
	return n, nil
}

// Config is the indexer's effective configuration.
func (n *Node) Config() indexer.Config { return n.indexer().Config() }

func (n *Node) indexer() *indexer.Indexer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ix
}

// CreateInstance adds an instance fed by MAINT from its next start (an
// instance for data already streamed is built with Build instead).
func (n *Node) CreateInstance(d indexer.InstanceDefn) error {
	if n.run != nil {
		return fmt.Errorf("create index %q: the streams are running; build it instead", d.Defn.Name)
	}
	if err := n.ix.CreateInstance(d); err != nil {
		return fmt.Errorf("create index %q: %w", d.Defn.Name, err)
	}
	n.mu.Lock()
	n.insts = append(n.insts, d)
	n.mu.Unlock()
	return nil
}

// Instances are the instances MAINT feeds.
func (n *Node) Instances() []indexer.InstanceDefn {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]indexer.InstanceDefn(nil), n.insts...)
}

// Drop stops KV sending for the instance and drops it from the indexer,
// destroying its slices. It is refused during recovery.
func (n *Node) Drop(id uint64) error {
	if n.run != nil {
		if err := n.run.topic.DropInstance(id); err != nil {
			return err
		}
	}
	n.mu.Lock()
	for i := range n.insts {
		if n.insts[i].ID == id {
			n.insts = append(n.insts[:i], n.insts[i+1:]...)
			break
		}
	}
	n.mu.Unlock()
	return n.ix.DropInstance(id)
}

// Start starts MAINT from seqno 0 (a backfill of what KV holds, then live
// mutations) unless it runs already.
func (n *Node) Start(ctx context.Context) error {
	if n.run != nil {
		return nil
	}
	_, err := n.Resume(ctx, upr.NewTsVbuuid(n.ix.Config().NumVbuckets))
	return err
}

// Running reports whether MAINT runs.
func (n *Node) Running() bool { return n.run != nil }

// Resume starts MAINT from ts. While KV answers some vbuckets with
// Rollback, it rolls the slices back to those points (scans waiting meanwhile
// fail with ErrIndexRollback) and asks again from the vector the rollback
// restored. It returns how many rollbacks that took.
func (n *Node) Resume(ctx context.Context, ts *upr.TsVbuuid) (rollbacks int, err error) {
	if n.run != nil {
		return 0, errors.New("index node: resume while the streams run")
	}
	for {
		points, err := n.cfg.KV.Probe(ctx, ts)
		if err != nil {
			return rollbacks, fmt.Errorf("stream request: %w", err)
		}
		if len(points) == 0 {
			return rollbacks, n.startMaint(ctx, ts)
		}
		if rollbacks++; rollbacks > maxRollbacks {
			return rollbacks, fmt.Errorf("KV still asks %d vbucket(s) to roll back after %d rollbacks", len(points), rollbacks-1)
		}
		if ts, err = n.ix.Rollback(points); err != nil {
			return rollbacks, err
		}
		if ts, err = n.CheckHold(ctx, ts); err != nil {
			return rollbacks, err
		}
	}
}

// startMaint opens MAINT from ts and runs the indexer on it.
func (n *Node) startMaint(ctx context.Context, ts *upr.TsVbuuid) error {
	topic, err := n.cfg.KV.OpenTopic(ctx, projector.TopicRequest{Topic: projector.TopicMaint, From: ts, Instances: n.Instances()})
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.from = ts.Clone()
	n.mu.Unlock()
	r := &running{topic: topic}
	ctx, r.cancel = context.WithCancel(ctx)
	ix := n.ix
	n.newRun()
	n.goRun(r, func() error {
		err := ix.Run(ctx, topic)
		if (err == nil || benign(err)) && ctx.Err() == nil {
			// KV ended the topic (its node stopped or dropped the
			// session): the index would silently stop moving.
			return fmt.Errorf("topic %s ended by KV while the index node was reading it", projector.TopicMaint)
		}
		return err
	})
	if n.cfg.Promote != nil && ix.Config().STMode == indexer.ModeCoordinator {
		n.goRun(r, func() error { return n.cfg.Promote(ctx, ix) })
	}
	n.run = r
	return nil
}

// goRun runs f as one of r's goroutines; its first real failure is the
// node's failure and stops r.
func (n *Node) goRun(r *running, f func() error) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := f(); err != nil && !benign(err) {
			n.fail(err)
			r.cancel()
		}
	}()
}

// benign reports whether err is how a topic or an indexer ends when it is
// stopped on purpose.
func benign(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) || errors.Is(err, projector.ErrTransportClosed)
}

// newRun clears the failure of an earlier run of MAINT: a caller that saw
// it has stopped MAINT and now resumes (after KV came back, say).
func (n *Node) newRun() {
	n.failMu.Lock()
	defer n.failMu.Unlock()
	if n.err != nil {
		n.err, n.failed = nil, make(chan struct{})
	}
}

// failedCh is closed when the current run of MAINT fails.
func (n *Node) failedCh() <-chan struct{} {
	n.failMu.Lock()
	defer n.failMu.Unlock()
	return n.failed
}

func (n *Node) fail(err error) {
	n.failMu.Lock()
	defer n.failMu.Unlock()
	if n.err == nil {
		n.err = err
		close(n.failed)
	}
}

// Failure is the first error MAINT's topic or indexer reported since MAINT
// last started, if any.
func (n *Node) Failure() error {
	n.failMu.Lock()
	defer n.failMu.Unlock()
	return n.err
}

// Stop stops MAINT, leaving the indexer open with whatever it flushed.
func (n *Node) Stop() error {
	if n.run == nil {
		return nil
	}
	stop(n.run)
	n.run = nil
	return n.Failure()
}

func stop(r *running) {
	r.cancel()
	r.topic.Close()
	r.wg.Wait()
}

// From is the vector MAINT last (re)started from.
func (n *Node) From() *upr.TsVbuuid {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.from == nil {
		return nil
	}
	return n.from.Clone()
}

// Recover restores every slice to its newest recovery point (an emptied
// slice when it has none) and returns the vector to resume from: the
// oldest of them. Call CheckHold before resuming once KV is up.
func (n *Node) Recover() (*upr.TsVbuuid, error) {
	ts, err := n.ix.Recover()
	if err != nil {
		return nil, fmt.Errorf("recover slices: %w", err)
	}
	return ts, nil
}

// CheckHold makes sure the newest vector the slices were restored to is
// still on KV's history. A crash after a failover the indexer never
// processed can leave a slice restored past the branch point, on the old
// vbuuid; no snapshot on the new branch could ever cover it, so the slices
// are rolled back to the points KV names. It returns the vector to resume
// from: ts, or the one that rollback restored.
//
// A hold KV accepts is confirmed (Indexer.ConfirmHold): its positions on
// an older vbuuid lie before the branch point, and the streams will resend
// them under the newest vbuuid.
func (n *Node) CheckHold(ctx context.Context, ts *upr.TsVbuuid) (*upr.TsVbuuid, error) {
	for range maxRollbacks + 1 {
		hold := n.ix.RecoveryHold()
		if hold == nil {
			return ts, nil
		}
		points, err := n.cfg.KV.Probe(ctx, hold)
		if err != nil {
			return nil, fmt.Errorf("stream request: %w", err)
		}
		if len(points) == 0 {
			n.ix.ConfirmHold()
			return ts, nil
		}
		if ts, err = n.ix.Rollback(points); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("recovery hold still off KV's history after %d rollbacks", maxRollbacks+1)
}

// Restart is a clean restart of the node: stop MAINT, close the indexer,
// reopen the slices of insts, restore each to its newest recovery point and
// resume from the oldest. It returns when MAINT runs again, with the time
// the reopen took (up to the restore) and the vector MAINT restarted from.
func (n *Node) Restart(ctx context.Context, insts []indexer.InstanceDefn) (open time.Duration, from *upr.TsVbuuid, err error) {
	return n.RestartWith(ctx, insts, nil)
}

// RestartWith is Restart with the indexer's configuration changed by
// change (nil changes nothing) before it reopens, for a run that compares
// settings which only take effect at open (the ST mode). The change stays
// for later restarts. A configuration that fails validation leaves the
// node stopped and reports it.
func (n *Node) RestartWith(ctx context.Context, insts []indexer.InstanceDefn, change func(*indexer.Config)) (open time.Duration, from *upr.TsVbuuid, err error) {
	cfg := n.cfg.Indexer
	if change != nil {
		change(&cfg)
		chk := cfg
		if err := chk.EnsureDefaults().Validate(); err != nil {
			return 0, nil, fmt.Errorf("restart with new settings: %w", err)
		}
	}
	if err := n.Stop(); err != nil {
		return 0, nil, err
	}
	n.cfg.Indexer = cfg
	n.mu.Lock()
	err = n.ix.Close()
	n.ix = nil // readers see no indexer until the new one is open
	n.insts = nil
	n.mu.Unlock()
	if err != nil {
		return 0, nil, fmt.Errorf("close indexer: %w", err)
	}
	start := time.Now()
	ix, err := indexer.New(n.cfg.Indexer)
	if err != nil {
		return 0, nil, err
	}
	n.mu.Lock()
	n.ix = ix
	n.mu.Unlock()
	for _, d := range insts {
		if err := n.CreateInstance(d); err != nil {
			return 0, nil, err
		}
	}
	ts, err := n.Recover()
	if err != nil {
		return 0, nil, err
	}
	if ts, err = n.CheckHold(ctx, ts); err != nil {
		return 0, nil, err
	}
	open = time.Since(start)
	_, err = n.Resume(ctx, ts)
	return open, ts, err
}

// WaitCovered waits until a snapshot covers ts, for at most timeout. A
// failure of the running topic ends the wait with that failure.
func (n *Node) WaitCovered(ctx context.Context, ts *upr.TsVbuuid, timeout time.Duration) error {
	return waitCovered(ctx, n.indexer(), ts, timeout, n.failedCh(), n.Failure)
}

// WaitCaughtUp waits until a snapshot covers what KV holds now.
func (n *Node) WaitCaughtUp(ctx context.Context, timeout time.Duration) error {
	if err := n.WaitCovered(ctx, n.cfg.KV.CurrentSeqnos(), timeout); err != nil {
		return fmt.Errorf("waiting for the index to catch up with KV: %w", err)
	}
	return nil
}

// waitCovered waits until a snapshot of ix covers ts, or failed is closed
// (then it returns failure()).
func waitCovered(ctx context.Context, ix *indexer.Indexer, ts *upr.TsVbuuid, timeout time.Duration,
	failed <-chan struct{}, failure func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ix.WaitForTS(ctx, ts) }()
	select {
	case err := <-done:
		if ferr := failure(); err != nil && ferr != nil {
			return ferr
		}
		return err
	case <-failed:
		cancel()
		<-done
		return failure()
	}
}

// PersistCond is what a wait for persistent snapshots waits for; the zero
// value waits for the first round.
type PersistCond struct {
	// MinRounds is the number of rounds that persisted something
	// (Stats.NumPersisted) to wait for.
	MinRounds int64
	// Covers, when set, is a vector the latest round must cover.
	Covers *upr.TsVbuuid
}

func (c PersistCond) ok(ts *upr.TsVbuuid, rounds int64) bool {
	return ts != nil && rounds >= c.MinRounds && (c.Covers == nil || c.Covers.SeqnosLE(ts))
}

// WaitPersisted waits until the latest round of persistent snapshots
// satisfies cond, for at most timeout, and returns its vector. A failure of
// the running topic ends the wait.
func (n *Node) WaitPersisted(ctx context.Context, timeout time.Duration, cond PersistCond) (*upr.TsVbuuid, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ix, failed := n.indexer(), n.failedCh()
	type answer struct {
		ts  *upr.TsVbuuid
		err error
	}
	done := make(chan answer, 1)
	go func() {
		ts, err := ix.WaitPersisted(ctx, cond.ok)
		done <- answer{ts, err}
	}()
	select {
	case a := <-done:
		if ferr := n.Failure(); a.err != nil && ferr != nil {
			return nil, ferr
		}
		return a.ts, a.err
	case <-failed:
		cancel()
		<-done
		return nil, n.Failure()
	}
}

// Scan serves a scan from the indexer.
func (n *Node) Scan(ctx context.Context, req indexer.ScanRequest) (*indexer.ScanResult, error) {
	ix := n.indexer()
	if ix == nil {
		return nil, indexer.ErrRecovering
	}
	return ix.Scan(ctx, req)
}

// Stats are the indexer's stats; ok is false while a restart has closed
// one indexer and not yet opened the next.
func (n *Node) Stats() (st indexer.Stats, ok bool) {
	ix := n.indexer()
	if ix == nil {
		return st, false
	}
	return ix.Stats(), true
}

// HWT is the indexer's high-watermark timestamp.
func (n *Node) HWT() *upr.TsVbuuid { return n.indexer().HWT() }

// SnapshotTS is the vector of the latest snapshot scans can read.
func (n *Node) SnapshotTS() *upr.TsVbuuid { return n.indexer().SnapshotTS() }

// PersistedTS is the vector of the latest round of persistent snapshots
// (nil before the first).
func (n *Node) PersistedTS() *upr.TsVbuuid { return n.indexer().PersistedTS() }

// Close stops MAINT and closes the indexer's stores. It returns the first
// failure of the running topic too.
func (n *Node) Close() error {
	if n.run != nil {
		stop(n.run)
		n.run = nil
	}
	n.mu.Lock()
	ix := n.ix
	n.ix = nil
	n.mu.Unlock()
	if ix == nil {
		return n.Failure()
	}
	return errors.Join(n.Failure(), ix.Close())
}
