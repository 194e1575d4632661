package harness

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/harness/measure"
)

// batchRecorder captures every call that changes a pipeline store — batches,
// recovery points created and dropped, rollbacks, destroys — per store
// directory and in order, from the cell's start, so a raw_ratio phase can be
// replayed straight into fresh stores of the same engine: the raw rate the
// pipeline's ingest is measured against (pipeline_to_raw_ratio).
//
// The replay first applies, untimed, what came before the phase, so the raw
// stores hold what the pipeline's held when the phase began (an engine
// writes into a populated store more slowly than into an empty one), then
// times the phase's own calls. Recording costs one copy of each batch,
// charged to the pipeline, and holds every batch of the cell in memory until
// the last raw_ratio phase is done.
type batchRecorder struct {
	mu     sync.Mutex
	active atomic.Bool
	stores map[string]*recordedStore // by directory: a reopened store continues its stream
	order  []*recordedStore
}

type recordedStore struct {
	mu    sync.Mutex
	ops   []recordedOp
	mark  int    // ops[:mark] came before the measured phase
	arena []byte // copies of the keys read, in chunks never overwritten
}

// keep copies b into the store's arena. The caller holds mu.
func (rs *recordedStore) keep(b []byte) []byte {
	if cap(rs.arena)-len(rs.arena) < len(b) {
		rs.arena = make([]byte, 0, max(64<<10, len(b)))
	}
	n := len(rs.arena)
	rs.arena = append(rs.arena, b...)
	return rs.arena[n:len(rs.arena):len(rs.arena)]
}

type recordedKind uint8

const (
	recApply recordedKind = iota
	recCreateRP
	recDropRP
	recRollback
	recGet
)

// recordedOp is one call to replay: a batch applied with its durability, a
// point read (key in meta, keyspace in id), or a recovery-point call with
// its id (and meta for a create).
type recordedOp struct {
	kind recordedKind
	b    *engines.Batch
	d    engines.Durability
	id   uint64
	meta []byte
}

// replayStream is one store's recorded calls: pre is applied untimed, timed
// is measured.
type replayStream struct {
	pre, timed []recordedOp
}

func newBatchRecorder() *batchRecorder {
	r := &batchRecorder{stores: make(map[string]*recordedStore)}
	r.active.Store(true)
	return r
}

// wrap returns e with every store it opens recorded.
func (r *batchRecorder) wrap(e engines.Engine) engines.Engine {
	return engines.WrapStores(e, func(dir string, s engines.Store) engines.Store {
		r.mu.Lock()
		defer r.mu.Unlock()
		if !r.active.Load() {
			return s
		}
		rs := r.stores[dir]
		if rs == nil {
			rs = &recordedStore{}
			r.stores[dir] = rs
			r.order = append(r.order, rs)
		}
		return &recordingStore{Store: s, r: r, rs: rs}
	})
}

// mark starts a measured phase: what every store recorded so far becomes
// the untimed prefix of its replay.
func (r *batchRecorder) mark() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range r.order {
		rs.mu.Lock()
		rs.mark = len(rs.ops)
		rs.mu.Unlock()
	}
}

// streams returns, per store that changed during the measured phase, its
// calls before the phase and during it. Recording goes on.
func (r *batchRecorder) streams() []replayStream {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []replayStream
	for _, rs := range r.order {
		rs.mu.Lock()
		if len(rs.ops) > rs.mark {
			out = append(out, replayStream{pre: rs.ops[:rs.mark:rs.mark], timed: rs.ops[rs.mark:len(rs.ops):len(rs.ops)]})
		}
		rs.mu.Unlock()
	}
	return out
}

// stop ends recording and drops everything recorded.
func (r *batchRecorder) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active.Store(false)
	r.stores, r.order = nil, nil
}

type recordingStore struct {
	engines.Store
	r  *batchRecorder
	rs *recordedStore
}

func (s *recordingStore) add(op recordedOp) {
	if !s.r.active.Load() {
		return
	}
	s.rs.mu.Lock()
	s.rs.ops = append(s.rs.ops, op)
	s.rs.mu.Unlock()
}

func (s *recordingStore) Apply(b *engines.Batch, d engines.Durability) error {
	if s.r.active.Load() {
		s.add(recordedOp{kind: recApply, b: b.Clone(), d: d})
	}
	return s.Store.Apply(b, d)
}

// Get is recorded too: the back-index reads are engine work the stream
// asks for, not pipeline overhead.
func (s *recordingStore) Get(ks engines.Keyspace, key []byte) ([]byte, bool, error) {
	if s.r.active.Load() {
		s.rs.mu.Lock()
		s.rs.ops = append(s.rs.ops, recordedOp{kind: recGet, id: uint64(ks), meta: s.rs.keep(key)})
		s.rs.mu.Unlock()
	}
	return s.Store.Get(ks, key)
}

func (s *recordingStore) CreateRecoveryPoint(id uint64, meta []byte) error {
	s.add(recordedOp{kind: recCreateRP, id: id, meta: append([]byte(nil), meta...)})
	return s.Store.CreateRecoveryPoint(id, meta)
}

func (s *recordingStore) DropRecoveryPoint(id uint64) error {
	s.add(recordedOp{kind: recDropRP, id: id})
	return s.Store.DropRecoveryPoint(id)
}

func (s *recordingStore) RollbackTo(id uint64) error {
	s.add(recordedOp{kind: recRollback, id: id})
	return s.Store.RollbackTo(id)
}

// Destroy empties the store: its stream starts again from nothing.
func (s *recordingStore) Destroy() error {
	s.rs.mu.Lock()
	s.rs.ops, s.rs.mark = nil, 0
	s.rs.mu.Unlock()
	return s.Store.Destroy()
}

func (op *recordedOp) replay(s engines.Store) error {
	switch op.kind {
	case recApply:
		return s.Apply(op.b, op.d)
	case recCreateRP:
		return s.CreateRecoveryPoint(op.id, op.meta)
	case recDropRP:
		return s.DropRecoveryPoint(op.id)
	case recRollback:
		return s.RollbackTo(op.id)
	case recGet:
		_, _, err := s.Get(engines.Keyspace(op.id), op.meta)
		return err
	}
	return fmt.Errorf("recorded call of unknown kind %d", op.kind)
}

// replayRaw replays each stream into a fresh store of engine e under dir,
// removed afterwards (see replayStreams). Opening the stores, replaying
// what came before the phase and destroying them are not measured.
func replayRaw(e engines.Engine, opts engines.Options, dir string, streams []replayStream) (RawReplay, error) {
	stores := make([]engines.Store, len(streams))
	defer func() {
		for _, s := range stores {
			if s != nil {
				s.Destroy()
			}
		}
	}()
	for i := range streams {
		s, err := e.Open(filepath.Join(dir, fmt.Sprintf("s%d", i)), opts)
		if err != nil {
			return RawReplay{}, fmt.Errorf("raw replay: %w", err)
		}
		stores[i] = s
	}
	return replayStreams(stores, streams)
}

// replayStreams replays streams[i] into stores[i], stores in parallel over
// GOMAXPROCS workers as the flusher applies slices: first every stream's
// prefix, untimed, then the measured calls. It returns the wall time and
// this process's CPU time over the measured part alone — the same window,
// so the raw side's CPU figure times the work its wall figure does — and
// the batch operations it wrote.
func replayStreams(stores []engines.Store, streams []replayStream) (RawReplay, error) {
	run := func(ops func(replayStream) []recordedOp) error {
		work := make(chan int, len(streams))
		for i := range streams {
			work <- i
		}
		close(work)
		errc := make([]error, len(streams))
		var wg sync.WaitGroup
		for range min(runtime.GOMAXPROCS(0), len(streams)) {
			wg.Go(func() {
				for i := range work {
					for _, op := range ops(streams[i]) {
						if err := op.replay(stores[i]); err != nil {
							errc[i] = fmt.Errorf("raw replay: %w", err)
							break
						}
					}
				}
			})
		}
		wg.Wait()
		names := make([]string, len(streams))
		for i := range names {
			names[i] = fmt.Sprintf("s%d", i)
		}
		return engines.JoinStoreErrors(errc, names, "replay stores")
	}
	if err := run(func(s replayStream) []recordedOp { return s.pre }); err != nil {
		return RawReplay{}, err
	}
	n := 0
	for _, st := range streams {
		for _, op := range st.timed {
			if op.kind == recApply {
				n += op.b.Len()
			}
		}
	}
	cpu0 := measure.ProcessCPU()
	start := time.Now()
	err := run(func(s replayStream) []recordedOp { return s.timed })
	return RawReplay{Wall: time.Since(start), CPU: measure.ProcessCPU() - cpu0, Ops: n}, err
}
