package harness

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idxbench/idxbench/engines"
)

// Costs a capacity planner sizes from, beside the CPU and bytes written
// per mutation every ingest-like phase reports (addNodeMetrics):
//
//   - write_amp: what the engines say they wrote (WAL, flushes,
//     compactions) over the bytes of the batches the indexer gave them, in
//     the phase; io_write_amp the same with the process's physical writes
//     (the whole cell's, so recovery points and results count too);
//   - engine_<name>: each engine-specific figure (pebble's l0_files,
//     bbolt's free_pages, …), summed over the stores (averaged for ratios
//     such as read_amp), at the end of the phase;
//   - in the load phase, disk and engine memory split into a fixed part per
//     store and a part per index entry, fitted over samples taken as the
//     index grows from empty (sizeSampler).
//
// The engine figures need the stores in this process, so a procs topology,
// whose stores live in the index node, reports only the fit.

// storeTally watches every store the cell's pipeline opens: the bytes of
// the batches applied to them, and their engine-side counters across a
// reopen (a rollback or restart resets an engine's counters).
type storeTally struct {
	logical atomic.Int64 // batch bytes applied, all stores, ever

	mu     sync.Mutex
	live   map[*talliedStore]bool
	closed int64 // engine bytes written by stores since closed
	known  bool  // some store reports its engine bytes written
}

func newStoreTally() *storeTally { return &storeTally{live: map[*talliedStore]bool{}} }

func (t *storeTally) wrap(e engines.Engine) engines.Engine {
	return engines.WrapStores(e, func(_ string, s engines.Store) engines.Store {
		ts := &talliedStore{Store: s, t: t}
		t.mu.Lock()
		t.live[ts] = true
		t.mu.Unlock()
		return ts
	})
}

type talliedStore struct {
	engines.Store
	t *storeTally

	mu         sync.Mutex
	base, last int64 // engine bytes written before the last counter reset; the last reading
}

func (s *talliedStore) Apply(b *engines.Batch, d engines.Durability) error {
	s.t.logical.Add(int64(b.Bytes()))
	return s.Store.Apply(b, d)
}

// written reads the store's engine bytes written, carried across counter
// resets; ok is false when the engine does not count.
func (s *talliedStore) written() (n int64, m engines.Metrics, ok bool) {
	m, err := s.Store.Metrics()
	if err != nil || m.EngineBytesWritten < 0 {
		return 0, m, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.EngineBytesWritten < s.last {
		s.base += s.last
	}
	s.last = m.EngineBytesWritten
	return s.base + s.last, m, true
}

func (s *talliedStore) RollbackTo(id uint64) error {
	s.written() // the engine may reopen and restart its counters
	return s.Store.RollbackTo(id)
}

func (s *talliedStore) Close() error {
	s.retire()
	return s.Store.Close()
}

func (s *talliedStore) Destroy() error {
	s.retire()
	return s.Store.Destroy()
}

// retire folds a closing store's counter into the tally's.
func (s *talliedStore) retire() {
	n, _, ok := s.written()
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	if !s.t.live[s] {
		return
	}
	delete(s.t.live, s)
	if ok {
		s.t.closed += n
		s.t.known = true
	}
}

// tallyMark is the tally at one instant.
type tallyMark struct {
	logical, engineWritten int64
	known                  bool
	extra                  map[string]float64
}

// mark reads every live store.
func (t *storeTally) mark() tallyMark {
	t.mu.Lock()
	stores := slices.Collect(maps.Keys(t.live))
	mk := tallyMark{engineWritten: t.closed, known: t.known}
	t.mu.Unlock()
	sums, counts := map[string]float64{}, map[string]int{}
	for _, s := range stores {
		n, m, ok := s.written()
		if ok {
			mk.engineWritten += n
			mk.known = true
		}
		for k, v := range m.Extra {
			sums[k] += v
			counts[k]++
		}
	}
	mk.logical = t.logical.Load()
	mk.extra = map[string]float64{}
	for k, v := range sums {
		if isRatio(k) {
			v /= float64(counts[k])
		}
		mk.extra[k] = v
	}
	return mk
}

// isRatio tells an engine figure that is averaged over stores, not summed.
func isRatio(name string) bool {
	return strings.HasSuffix(name, "_amp") || strings.HasSuffix(name, "_ratio")
}

// report adds the phase's engine figures, from the mark at its start to
// now; physical is the bytes the cell's processes wrote in the phase.
func (t *storeTally) report(m map[string]float64, before tallyMark, physical float64) {
	now := t.mark()
	for k, v := range now.extra {
		m["engine_"+k] = v
	}
	logical := now.logical - before.logical
	if logical < minAmpBatchBytes {
		// A phase that gave the engines next to nothing (a raw-ingest
		// phase, whose own stores are not the pipeline's; a persist) has
		// no write amplification to speak of: the engines' background
		// work over a few bytes would read as a ratio of thousands.
		return
	}
	m["engine_batch_bytes"] = float64(logical)
	if now.known {
		written := now.engineWritten - before.engineWritten
		m["engine_bytes_written"] = float64(max(written, 0))
		m["write_amp"] = float64(max(written, 0)) / float64(logical)
	}
	if physical > 0 {
		m["io_write_amp"] = physical / float64(logical)
	}
}

// minAmpBatchBytes is the least the indexer must have given the engines in
// a phase for its write amplification to be reported.
const minAmpBatchBytes = 1 << 20

// sizeSampler samples the stores' disk and memory as an index grows, for a
// fit of fixed and per-entry costs.
type sizeSampler struct {
	c       *cellRun
	base    int64 // flushed key versions at the start
	mu      sync.Mutex
	samples []sizeSample
	stop    chan struct{}
	once    sync.Once
	done    sync.WaitGroup
}

type sizeSample struct {
	kvs          float64 // key versions flushed since the start
	disk, memory float64
}

// sizeSampleEvery spaces the samples: a load of tens of thousands of
// documents takes a few seconds.
const sizeSampleEvery = 100 * time.Millisecond

func (c *cellRun) startSizeSampler() *sizeSampler {
	s := &sizeSampler{c: c, stop: make(chan struct{})}
	st, _ := c.p.ix.Stats()
	s.base = st.FlushedKeyVersions
	s.add(st.FlushedKeyVersions, st.DiskBytes, st.EngineMemoryBytes)
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(sizeSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if st, ok := c.p.ix.Stats(); ok {
					s.add(st.FlushedKeyVersions, st.DiskBytes, st.EngineMemoryBytes)
				}
			}
		}
	}()
	return s
}

// close stops the sampling goroutine; calling it again does nothing.
func (s *sizeSampler) close() {
	s.once.Do(func() { close(s.stop) })
	s.done.Wait()
}

func (s *sizeSampler) add(kvs, disk, memory int64) {
	s.mu.Lock()
	s.samples = append(s.samples, sizeSample{float64(kvs - s.base), float64(disk), float64(memory)})
	s.mu.Unlock()
}

// finish stops sampling, takes a last sample and adds the fit to m, in
// bytes per index entry: the index holds entries entries now, in stores
// stores.
func (s *sizeSampler) finish(m map[string]float64, entries float64, stores int) {
	s.close()
	if st, ok := s.c.p.ix.Stats(); ok {
		s.add(st.FlushedKeyVersions, st.DiskBytes, st.EngineMemoryBytes)
	}
	s.mu.Lock()
	samples := slices.Clone(s.samples)
	s.mu.Unlock()
	if entries <= 0 || stores <= 0 || len(samples) < 2 {
		return
	}
	last := samples[len(samples)-1]
	if last.kvs <= 0 {
		return
	}
	// The fit runs over key versions flushed; each added one entry, but
	// for documents whose key is missing, so scale to entries.
	perKV := last.kvs / entries
	m["index_stores"] = float64(stores)
	m["size_fit_samples"] = float64(len(samples))
	fit := func(name string, y func(sizeSample) float64) {
		xs, ys := make([]float64, len(samples)), make([]float64, len(samples))
		for i, sm := range samples {
			xs[i], ys[i] = sm.kvs, y(sm)
		}
		if ys[len(ys)-1] <= 0 {
			return // the engine does not report it
		}
		fixed, slope, ok := linearFit(xs, ys)
		if !ok {
			return
		}
		m[name+"_fixed"] = max(fixed, 0)
		m[name+"_fixed_per_store"] = max(fixed, 0) / float64(stores)
		m[name+"_per_entry"] = slope * perKV
		// What one would get by dividing the total by the entries: the
		// figure that misleads when the fixed part is large.
		m[name+"_per_entry_all_in"] = ys[len(ys)-1] / entries
	}
	fit("disk_bytes", func(sm sizeSample) float64 { return sm.disk })
	fit("engine_memory_bytes", func(sm sizeSample) float64 { return sm.memory })
}

// linearFit is the least-squares line y = a + b·x; ok is false when the xs
// do not spread.
func linearFit(xs, ys []float64) (a, b float64, ok bool) {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if n < 2 || d <= 0 {
		return 0, 0, false
	}
	b = (n*sxy - sx*sy) / d
	a = (sy - b*sx) / n
	return a, b, true
}

// storeCount is how many slice stores the cell's indexes have.
func (c *cellRun) storeCount() int {
	n := 0
	for _, inst := range c.p.insts {
		n += max(len(inst.Partitions), 1)
	}
	return n
}
