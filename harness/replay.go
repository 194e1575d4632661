package harness

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/idxbench/idxbench/engines"
)

// batchRecorder captures, while active, every batch the pipeline's stores
// apply, per store and in order, so the same entry stream can afterwards be
// written straight into fresh stores of the same engine: the raw rate the
// pipeline's ingest is measured against (pipeline_to_raw_ratio). Recording
// costs one copy of each batch, charged to the pipeline.
type batchRecorder struct {
	mu     sync.Mutex
	active bool
	stores []*recordedStore
}

type recordedStore struct {
	mu      sync.Mutex
	batches []recordedBatch
}

type recordedBatch struct {
	b engines.Batch
	d engines.Durability
}

// wrap returns e with every store it opens recorded.
func (r *batchRecorder) wrap(e engines.Engine) engines.Engine {
	open := e.Open
	w := e
	w.Open = func(dir string, o engines.Options) (engines.Store, error) {
		s, err := open(dir, o)
		if err != nil {
			return nil, err
		}
		rs := &recordedStore{}
		r.mu.Lock()
		r.stores = append(r.stores, rs)
		r.mu.Unlock()
		return &recordingStore{Store: s, r: r, rs: rs}, nil
	}
	return w
}

// start drops what was recorded and starts recording.
func (r *batchRecorder) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range r.stores {
		rs.mu.Lock()
		rs.batches = nil
		rs.mu.Unlock()
	}
	r.active = true
}

// stop stops recording and returns each store's batches.
func (r *batchRecorder) stop() [][]recordedBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active = false
	var out [][]recordedBatch
	for _, rs := range r.stores {
		rs.mu.Lock()
		if len(rs.batches) > 0 {
			out = append(out, rs.batches)
		}
		rs.batches = nil
		rs.mu.Unlock()
	}
	return out
}

func (r *batchRecorder) isActive() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active
}

type recordingStore struct {
	engines.Store
	r  *batchRecorder
	rs *recordedStore
}

func (s *recordingStore) Apply(b *engines.Batch, d engines.Durability) error {
	if s.r.isActive() {
		var c engines.Batch
		for i := 0; i < b.Len(); i++ {
			op := b.Op(i)
			if op.Kind == engines.OpSet {
				c.Set(op.Keyspace, op.Key, op.Value)
			} else {
				c.Delete(op.Keyspace, op.Key)
			}
		}
		s.rs.mu.Lock()
		s.rs.batches = append(s.rs.batches, recordedBatch{b: c, d: d})
		s.rs.mu.Unlock()
	}
	return s.Store.Apply(b, d)
}

// replayRaw writes each store's recorded batches, in order and with the same
// durability, into a fresh store of engine e under dir — stores in parallel
// over GOMAXPROCS workers, as the flusher applies slices — and returns the
// wall time it took and the operations written.
func replayRaw(e engines.Engine, opts engines.Options, dir string, streams [][]recordedBatch) (time.Duration, int, error) {
	stores := make([]engines.Store, len(streams))
	var errs []error
	for i := range streams {
		s, err := e.Open(filepath.Join(dir, fmt.Sprintf("s%d", i)), opts)
		if err != nil {
			errs = append(errs, err)
			break
		}
		stores[i] = s
	}
	defer func() {
		for _, s := range stores {
			if s != nil {
				s.Destroy()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return 0, 0, fmt.Errorf("raw replay: %w", err)
	}
	ops := 0
	for _, st := range streams {
		for _, rb := range st {
			ops += rb.b.Len()
		}
	}
	work := make(chan int, len(streams))
	for i := range streams {
		work <- i
	}
	close(work)
	errc := make([]error, len(streams))
	start := time.Now()
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(streams)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				for _, rb := range streams[i] {
					if err := stores[i].Apply(&rb.b, rb.d); err != nil {
						errc[i] = err
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), ops, errors.Join(errc...)
}
