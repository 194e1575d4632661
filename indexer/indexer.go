package indexer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// Sentinel errors; tested with errors.Is.
var (
	// ErrScanTimeout: no snapshot covering the scan's consistency vector
	// appeared within the scan's timeout.
	ErrScanTimeout = errors.New("indexer: scan timed out waiting for a consistent snapshot")
	// ErrIndexRollback: the index rolled back while the scan waited.
	ErrIndexRollback = errors.New("indexer: index rolled back while the scan waited")
	// ErrNoSuchIndex: no index instance has the requested id or name.
	ErrNoSuchIndex = errors.New("indexer: no such index")
	// ErrClosed: the indexer was closed.
	ErrClosed = errors.New("indexer: closed")
	// ErrRecovering: the indexer is rolling back or restarting; index
	// changes are refused and latest-snapshot scans fail until the first
	// snapshot after it.
	ErrRecovering = errors.New("indexer: in recovery")
)

// Source delivers the projector's batches for this indexer. Recv blocks
// until a batch is there; it returns io.EOF when the stream is over and
// ctx's error when ctx is done. The indexer owns each batch it receives.
// The key versions of one mutation (one per instance) must arrive in one
// batch: after a batch, a vbucket whose last seqno ends its snapshot is
// taken to be complete at that seqno.
type Source interface {
	Recv(ctx context.Context) (*projector.Batch, error)
}

// InstanceDefn is an index instance: an index definition with the id the
// projector tags its key versions with.
type InstanceDefn = projector.InstanceDefn

// InstanceState is where an instance is in its life.
type InstanceState uint8

// Instance states. An instance created before the stream starts is fed by
// the MAINT stream and is ACTIVE at once; the initial-build flow (INITIAL,
// CATCHUP) belongs to a later stage.
const (
	StateCreated InstanceState = iota + 1
	StateInitial
	StateCatchup
	StateActive
	StateDeleted
)

func (s InstanceState) String() string {
	switch s {
	case StateCreated:
		return "CREATED"
	case StateInitial:
		return "INITIAL"
	case StateCatchup:
		return "CATCHUP"
	case StateActive:
		return "ACTIVE"
	case StateDeleted:
		return "DELETED"
	}
	return fmt.Sprintf("InstanceState(%d)", uint8(s))
}

type instance struct {
	id     uint64
	defn   defn.IndexDefn
	state  InstanceState
	slices []*slice
}

// Indexer is one indexer node: it reads key versions from a Source into
// mutation queues, flushes them into per-partition slices up to stability
// timestamps, takes in-memory and persistent snapshots, and serves scans.
type Indexer struct {
	cfg     Config
	running atomic.Bool
	kick    chan struct{}

	// flushMu serialises flushes, snapshots, persistent snapshots and
	// instance changes; it guards the fields up to mu.
	flushMu     sync.Mutex
	insts       map[uint64]*instance
	flushed     *upr.TsVbuuid // what every slice's contents correspond to
	lastPersist time.Time
	persistedTS *upr.TsVbuuid // guarded by mu; see PersistedTS
	lagPending  []int64       // sampled EmitNanos flushed but not yet visible
	stalls      int           // flush-loop wakes that found the queue full and no ST
	broken      error         // a failed apply leaves slices behind the vector
	rounds      []*round      // flush rounds in flight, oldest first
	roundDone   chan struct{} // a round's last job finished
	sem         chan struct{} // bounds the flush jobs writing at once

	// mu guards the stream-side state and the published snapshot; it is
	// held briefly and never across engine calls.
	mu          sync.Mutex
	space       *sync.Cond // signalled when queue space frees
	tk          *timekeeper
	q           *mutationQueue
	inflight    int           // key versions taken by a flush, not yet applied
	pendingST   *upr.TsVbuuid // coordinator mode: promoted, not yet flushed
	snap        *snapshot
	snapCh      chan struct{} // closed and replaced when a snapshot is published
	persistCh   chan struct{} // closed and replaced when a round of persistent snapshots completes
	rollbackGen uint64
	lagSeq      int
	closed      bool
	// statsReaders are the Stats calls that started before Close and
	// still hold a snapshot; Close waits for them (Stats may run from a
	// monitor while the node restarts).
	statsReaders sync.WaitGroup
	// recovering is set from a rollback or restart until the first
	// snapshot after it; holdUntil is the vector that snapshot must
	// cover (slices may have been restored to different vectors).
	recovering bool
	holdUntil  *upr.TsVbuuid

	st stats
}

// New returns an indexer with no instances. cfg is copied and completed
// with EnsureDefaults.
func New(cfg Config) (*Indexer, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.EngineOptions.DiskSpace == nil {
		// The slices share the data directory's filesystem and fill it
		// together.
		cfg.EngineOptions.DiskSpace = new(engines.DiskSpace)
	}
	ix := &Indexer{
		cfg:         cfg,
		kick:        make(chan struct{}, 1),
		roundDone:   make(chan struct{}, 1),
		sem:         make(chan struct{}, runtime.GOMAXPROCS(0)),
		insts:       make(map[uint64]*instance),
		flushed:     upr.NewTsVbuuid(cfg.NumVbuckets),
		lastPersist: time.Now(),
		tk:          newTimekeeper(cfg.NumVbuckets),
		q:           newMutationQueue(cfg.NumVbuckets),
		snapCh:      make(chan struct{}),
		persistCh:   make(chan struct{}),
	}
	ix.space = sync.NewCond(&ix.mu)
	ix.snap = &snapshot{seq: 0, ts: upr.NewTsVbuuid(cfg.NumVbuckets), taken: time.Now(), insts: map[uint64]*snapInstance{}}
	ix.snap.refs.Store(1)
	return ix, nil
}

// Config returns the effective configuration.
func (ix *Indexer) Config() Config { return ix.cfg }

func validIndexName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`+"\x00") {
		return fmt.Errorf("index name %q cannot name a directory", name)
	}
	return nil
}

// CreateInstance opens the instance's slices (Dir/<name>/p<N>, created if
// missing) and makes it scannable at the current snapshot. The instance is
// ACTIVE: key versions tagged with its id are applied from the next flush.
func (ix *Indexer) CreateInstance(d InstanceDefn) error {
	name := d.Defn.Name
	if d.ID == 0 {
		return fmt.Errorf("create index %q: instance id 0 is reserved for stream commands", name)
	}
	if err := validIndexName(name); err != nil {
		return fmt.Errorf("create index: %w", err)
	}
	defer ix.flushMu.Unlock()
	if err := ix.lockQuiet(); err != nil {
		return fmt.Errorf("create index %q: %w", name, err)
	}
	if err := ix.ddlAllowed(); err != nil {
		return fmt.Errorf("create index %q: %w", name, err)
	}
	if _, dup := ix.insts[d.ID]; dup {
		return fmt.Errorf("create index %q: instance %d exists", name, d.ID)
	}
	for _, in := range ix.insts {
		if in.defn.Name == name {
			return fmt.Errorf("create index %q: an index of that name exists (instance %d)", name, in.id)
		}
	}
	inst := &instance{id: d.ID, defn: d.Defn, state: StateActive}
	for p := range d.Defn.NumPartitions() {
		sname := fmt.Sprintf("%s/p%d", name, p)
		dir := filepath.Join(ix.cfg.Dir, name, fmt.Sprintf("p%d", p))
		s, err := openSlice(&ix.cfg, sname, dir, d.Defn.IsPrimary)
		if err != nil {
			for _, o := range inst.slices {
				err = errors.Join(err, o.store.Close())
			}
			return fmt.Errorf("create index %q: %w", name, err)
		}
		if s.rebuilt != nil {
			ix.noteRebuilt(s, s.rebuilt)
		}
		inst.slices = append(inst.slices, s)
	}
	ix.insts[d.ID] = inst
	if err := ix.publish(ix.snap.ts, false); err != nil {
		delete(ix.insts, d.ID)
		for _, s := range inst.slices {
			err = errors.Join(err, s.store.Close())
		}
		return fmt.Errorf("create index %q: %w", name, err)
	}
	ix.cfg.Logger.Info("index created", "index", name, "inst", d.ID, "partitions", len(inst.slices))
	return nil
}

// DropInstance removes the instance from scans and the flusher, waits until
// no scan reads it, and destroys its slices' stores.
func (ix *Indexer) DropInstance(id uint64) error {
	err := ix.lockQuiet()
	if err == nil {
		err = ix.ddlAllowed()
	}
	if err != nil {
		ix.flushMu.Unlock()
		return fmt.Errorf("drop instance %d: %w", id, err)
	}
	inst := ix.insts[id]
	if inst == nil {
		ix.flushMu.Unlock()
		return fmt.Errorf("drop instance %d: %w", id, ErrNoSuchIndex)
	}
	delete(ix.insts, id)
	inst.state = StateDeleted
	err = ix.publish(ix.snap.ts, false)
	ix.flushMu.Unlock()
	if err != nil {
		return fmt.Errorf("drop index %q: %w", inst.defn.Name, err)
	}
	var errs []error
	for _, s := range inst.slices {
		<-s.noViews()
		if err := s.store.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("drop index %q: destroy slice %q: %w", inst.defn.Name, s.name, err))
		}
	}
	ix.cfg.Logger.Info("index dropped", "index", inst.defn.Name, "inst", id)
	return errors.Join(errs...)
}

// Instances lists the instances with their states.
func (ix *Indexer) Instances() map[uint64]InstanceState {
	ix.flushMu.Lock()
	defer ix.flushMu.Unlock()
	m := make(map[uint64]InstanceState, len(ix.insts))
	for id, in := range ix.insts {
		m[id] = in.state
	}
	return m
}

func (ix *Indexer) ddlAllowed() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return ErrClosed
	}
	if ix.recovering {
		return ErrRecovering
	}
	return nil
}

func (ix *Indexer) isClosed() bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.closed
}

// Run reads src into the mutation queues and flushes them at stability
// timestamps until ctx is done (it then returns nil) or src or a flush
// fails (it returns the error). When src reports io.EOF, reading stops and
// flushing goes on until ctx is done. A flush in progress when ctx ends
// completes. Run may be called again after it returned, with a new source.
func (ix *Indexer) Run(ctx context.Context, src Source) error {
	if !ix.running.CompareAndSwap(false, true) {
		return errors.New("indexer: Run is already running")
	}
	defer ix.running.Store(false)
	if ix.isClosed() {
		return ErrClosed
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(rctx, func() {
		ix.mu.Lock()
		ix.space.Broadcast()
		ix.mu.Unlock()
	})
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := ix.read(rctx, src); err != nil {
			cancel(err)
		}
	})
	wg.Go(func() {
		if err := ix.flushLoop(rctx); err != nil {
			cancel(err)
		}
	})
	<-rctx.Done()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return context.Cause(rctx)
}

func (ix *Indexer) read(ctx context.Context, src Source) error {
	for {
		b, err := src.Recv(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("indexer: receive: %w", err)
		}
		if err := ix.receive(ctx, b); err != nil {
			return err
		}
	}
}

// receive routes one batch: stream commands to the timekeeper, data key
// versions into the queues. It blocks while the queues are full.
func (ix *Indexer) receive(ctx context.Context, b *projector.Batch) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for i := range b.KVs {
		kv := &b.KVs[i]
		if int(kv.Vb) >= ix.cfg.NumVbuckets {
			return fmt.Errorf("indexer: stream: %v key version for vb %d, the bucket has %d", kv.Cmd, kv.Vb, ix.cfg.NumVbuckets)
		}
		var err error
		switch kv.Cmd {
		case projector.StreamBegin:
			err = ix.tk.streamBegin(kv.Vb, kv.Vbuuid)
		case projector.StreamEnd:
		case projector.Snapshot:
			err = ix.tk.snapshot(kv.Vb, kv.Vbuuid, kv.SnapStart, kv.SnapEnd)
		case projector.Sync:
			err = ix.tk.seqno(kv.Vb, kv.Vbuuid, kv.Seqno)
		case projector.Upsert, projector.Deletion, projector.UpsertDeletion:
			// Block only before a new seqno: the key versions of one
			// mutation (one per instance) must enter together, or the
			// vbucket could look aligned at that seqno with some of
			// them still outside the queue. So the bound can be passed
			// by the key versions of one mutation, less one.
			if ix.q.len()+ix.inflight >= ix.cfg.QueueSize && kv.Seqno != ix.tk.cur[kv.Vb].seqno {
				ix.st.readerBlocks.Add(1)
				start := time.Now()
				for ix.q.len()+ix.inflight >= ix.cfg.QueueSize {
					if ctx.Err() != nil {
						return nil
					}
					ix.kickFlusher()
					ix.space.Wait()
				}
				ix.st.readerBlockedNanos.Add(int64(time.Since(start)))
			}
			if err = ix.tk.seqno(kv.Vb, kv.Vbuuid, kv.Seqno); err != nil {
				break
			}
			ix.q.push(item{
				inst: kv.InstID, part: int32(kv.Partition), vb: kv.Vb, cmd: kv.Cmd,
				seqno: kv.Seqno, emit: kv.EmitNanos, docid: kv.DocID, key: kv.Key,
			})
			if ix.q.len()+ix.inflight >= ix.cfg.QueueSize/2 {
				ix.kickFlusher()
			}
		default:
			err = fmt.Errorf("unknown command %d", kv.Cmd)
		}
		if err != nil {
			return fmt.Errorf("indexer: stream: %v key version (inst %d vb %d seqno %d): %w", kv.Cmd, kv.InstID, kv.Vb, kv.Seqno, err)
		}
	}
	if ix.tk.unstamped {
		ix.tk.stamp(time.Now().UnixNano())
	}
	if ix.tk.due && ix.cfg.STOnDemand {
		// A waiting scan's vector is covered: promote now.
		ix.kickFlusher()
	}
	ix.st.batchesReceived.Add(1)
	return nil
}

func (ix *Indexer) kickFlusher() {
	select {
	case ix.kick <- struct{}{}:
	default:
	}
}

// HWT is the high-watermark timestamp: per vbucket the last seqno received.
func (ix *Indexer) HWT() *upr.TsVbuuid {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.tk.hwt()
}

// AlignedHWT is the high-watermark cut back, per vbucket, to the last
// complete snapshot received: what the indexer could flush to and snapshot
// at now. The coordinator promotes from it.
func (ix *Indexer) AlignedHWT() *upr.TsVbuuid {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.tk.alignedHWT()
}

// PromoteST tells an indexer in coordinator mode that it may flush up to
// and snapshot at ts. ts must be snapshot-aligned and not ahead of what the
// indexer received. It returns at once; the flush follows in Run (use
// WaitForTS to wait for the snapshot). Promotions merge: per vbucket an
// older entry than the current stability timestamp's changes nothing.
func (ix *Indexer) PromoteST(ts *upr.TsVbuuid) error {
	if ix.cfg.STMode != ModeCoordinator {
		return fmt.Errorf("indexer: PromoteST in %s mode", ix.cfg.STMode)
	}
	ix.mu.Lock()
	st, err := ix.tk.promote(ts)
	if err == nil {
		ix.pendingST = st
	}
	ix.mu.Unlock()
	if err != nil {
		return fmt.Errorf("indexer: promote: %w", err)
	}
	ix.kickFlusher()
	return nil
}

// SnapshotTS is the vector of the latest in-memory snapshot.
func (ix *Indexer) SnapshotTS() *upr.TsVbuuid {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.snap.ts.Clone()
}

// WaitForTS waits until a snapshot covers ts (every seqno of ts reached,
// on the same branch). It fails with ErrIndexRollback when the index rolls
// back meanwhile, and with ctx's error when ctx is done.
func (ix *Indexer) WaitForTS(ctx context.Context, ts *upr.TsVbuuid) error {
	s, err := ix.waitFor(ctx, ts, 0, false)
	if err != nil {
		return err
	}
	return s.release()
}

// failWaiters fails every scan waiting for a snapshot with
// ErrIndexRollback; the rollback flow calls it before rolling slices back.
func (ix *Indexer) failWaiters() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.rollbackGen++
	close(ix.snapCh)
	ix.snapCh = make(chan struct{})
}

// closeViewWait bounds how long Close waits for scans still reading a
// slice to release their views.
const closeViewWait = time.Minute

// Close releases the latest snapshot and closes every slice's store. Call
// it after Run returned. A scan still reading when Close is called holds a
// view its store cannot close under, so Close first waits, up to
// closeViewWait, for each slice's views to be released (scans waiting for
// a snapshot are woken and fail); a store that fails to close is reported,
// the failures on one line.
func (ix *Indexer) Close() error {
	if ix.running.Load() {
		return errors.New("indexer: Close while Run is running")
	}
	ix.flushMu.Lock()
	defer ix.flushMu.Unlock()
	ix.mu.Lock()
	if ix.closed {
		ix.mu.Unlock()
		return nil
	}
	ix.closed = true
	snap := ix.snap
	close(ix.snapCh)
	ix.snapCh = make(chan struct{})
	close(ix.persistCh)
	ix.persistCh = make(chan struct{})
	ix.mu.Unlock()
	ix.statsReaders.Wait()
	first := snap.release()
	var errs []error
	var names []string
	deadline := time.Now().Add(closeViewWait)
	for _, inst := range ix.insts {
		for _, s := range inst.slices {
			if wait := time.Until(deadline); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-s.noViews():
				case <-t.C:
				}
				t.Stop()
			}
			if err := s.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close slice %q: %w", s.name, err))
				names = append(names, s.name)
			}
		}
	}
	return errors.Join(first, engines.JoinStoreErrors(errs, names, "slices"))
}
