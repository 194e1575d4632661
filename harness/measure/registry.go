package measure

import (
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Options configure a Registry. The zero value works.
type Options struct {
	// MaxLatency is the largest latency a histogram tracks; larger ones
	// are recorded as MaxLatency (default 10 minutes).
	MaxLatency time.Duration
	// SigFigs is the histograms' precision in significant decimal digits,
	// 1 to 5 (default 2: values within 1%, about 20 KiB per histogram).
	SigFigs int
	// Disabled records counts only, no latencies: it exists to measure what
	// the histograms cost (compare a run with and without).
	Disabled bool
}

func (o Options) withDefaults() Options {
	if o.MaxLatency <= 0 {
		o.MaxLatency = 10 * time.Minute
	}
	if o.SigFigs < 1 || o.SigFigs > 5 {
		o.SigFigs = 2
	}
	return o
}

// Latencies are recorded in microseconds: enough resolution for the
// fastest engine operation, and a small histogram.
const unit = time.Microsecond

func (o Options) newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(o.MaxLatency/unit), o.SigFigs)
}

// Registry merges the Recorders of a phase's workers. Create one per phase.
type Registry struct {
	opts  Options
	start time.Time

	mu        sync.Mutex
	recorders map[int]*Recorder
	ops       map[string]*opTotals
	last      time.Time
}

// opTotals is what the registry keeps per operation type.
type opTotals struct {
	window, cum       *hdrhistogram.Histogram
	count, errors     int64 // this tick
	cumCount, cumErrs int64
}

// NewRegistry starts a registry whose elapsed time counts from start.
func NewRegistry(start time.Time, opts Options) *Registry {
	return &Registry{
		opts:      opts.withDefaults(),
		start:     start,
		last:      start,
		recorders: map[int]*Recorder{},
		ops:       map[string]*opTotals{},
	}
}

// Recorder returns worker's recorder, the same one for the same id. Each
// worker should use its own: a Recorder is safe for concurrent use, but
// sharing one makes its workers contend.
func (r *Registry) Recorder(worker int) *Recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.recorders[worker]
	if rec == nil {
		rec = &Recorder{opts: r.opts, ops: map[string]*window{}}
		r.recorders[worker] = rec
	}
	return rec
}

// OpStat is one operation type's figures at a tick. Window figures cover
// the time since the previous tick; Cum figures the whole phase so far.
type OpStat struct {
	Op                 string
	Count, Errors      int64
	CumCount, CumErrs  int64
	OpsPerSecInst      float64
	OpsPerSecCum       float64
	P50, P95, P99, Max time.Duration
	// Cumulative percentiles, for the end-of-phase summary.
	CumP50, CumP95, CumP99, CumMax time.Duration
}

// Tick is what Registry.Tick returns: the time it accounts to and a stat
// per operation type seen so far, sorted by name.
type Tick struct {
	Now     time.Time
	Elapsed time.Duration
	Ops     []OpStat
}

// Tick collects every worker's window up to now, folds it into the
// cumulative histograms and returns the figures. Call it once a second
// from one goroutine (calls are serialized); now must not go backwards.
func (r *Registry) Tick(now time.Time) Tick {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.ops {
		t.window.Reset()
		t.count, t.errors = 0, 0
	}
	for _, rec := range r.recorders {
		for op, w := range rec.swap() {
			t := r.ops[op]
			if t == nil {
				t = &opTotals{window: r.opts.newHist(), cum: r.opts.newHist()}
				r.ops[op] = t
			}
			if w.full != nil {
				t.window.Merge(w.full)
				t.cum.Merge(w.full)
				w.full.Reset()
			}
			t.count += w.count
			t.errors += w.errors
		}
	}
	dt := now.Sub(r.last).Seconds()
	total := now.Sub(r.start).Seconds()
	r.last = now
	tick := Tick{Now: now, Elapsed: now.Sub(r.start)}
	for op, t := range r.ops {
		t.cumCount += t.count
		t.cumErrs += t.errors
		s := OpStat{Op: op, Count: t.count, Errors: t.errors, CumCount: t.cumCount, CumErrs: t.cumErrs}
		if dt > 0 {
			s.OpsPerSecInst = float64(t.count) / dt
		}
		if total > 0 {
			s.OpsPerSecCum = float64(t.cumCount) / total
		}
		s.P50, s.P95, s.P99, s.Max = quantiles(t.window)
		s.CumP50, s.CumP95, s.CumP99, s.CumMax = quantiles(t.cum)
		tick.Ops = append(tick.Ops, s)
	}
	sort.Slice(tick.Ops, func(i, j int) bool { return tick.Ops[i].Op < tick.Ops[j].Op })
	return tick
}

func quantiles(h *hdrhistogram.Histogram) (p50, p95, p99, max time.Duration) {
	if h.TotalCount() == 0 {
		return
	}
	d := func(v int64) time.Duration { return time.Duration(v) * unit }
	return d(h.ValueAtQuantile(50)), d(h.ValueAtQuantile(95)), d(h.ValueAtQuantile(99)), d(h.Max())
}

// Histogram returns a copy of op's cumulative latency histogram (values in
// microseconds), or nil if op was never recorded. For exports that want the
// whole distribution, such as Prometheus buckets.
func (r *Registry) Histogram(op string) *hdrhistogram.Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.ops[op]; t != nil {
		return t.cum.Clone()
	}
	return nil
}

// Recorder records one worker's operations.
type Recorder struct {
	opts Options
	mu   sync.Mutex
	ops  map[string]*window
	// last caches the most recent op's window: workers mostly repeat one
	// operation type, and this skips the map lookup.
	lastOp string
	last   *window
	_      [64]byte // keep the next recorder's mutex off this cache line
}

// window is one operation type's histogram since the last tick. full is
// the histogram the tick has taken; it is merged and reset outside the
// recorder's lock and handed back at the next swap.
type window struct {
	cur, full     *hdrhistogram.Histogram // nil when Options.Disabled
	count, errors int64
	// Workers' windows are small allocations that could share a cache
	// line; padding keeps one worker's increments off another's line.
	_ [96]byte
}

func (r *Recorder) get(op string) *window {
	if r.last != nil && r.lastOp == op {
		return r.last
	}
	w := r.ops[op]
	if w == nil {
		w = &window{}
		if !r.opts.Disabled {
			w.cur, w.full = r.opts.newHist(), r.opts.newHist()
		}
		r.ops[op] = w
	}
	r.lastOp, r.last = op, w
	return w
}

// Record records one operation of type op that took d.
func (r *Recorder) Record(op string, d time.Duration) {
	v := int64(d / unit)
	if v < 1 {
		v = 1
	}
	r.mu.Lock()
	w := r.get(op)
	w.count++
	if w.cur != nil {
		if v > w.cur.HighestTrackableValue() {
			v = w.cur.HighestTrackableValue()
		}
		w.cur.RecordValue(v)
	}
	r.mu.Unlock()
}

// RecordIntended records an operation of an open-loop driver from the time
// it was scheduled to start, not the time it did: when the system falls
// behind, the queueing delay is part of the latency users see.
func (r *Recorder) RecordIntended(op string, intendedStart, end time.Time) {
	r.Record(op, end.Sub(intendedStart))
}

// RecordError counts a failed operation of type op (its latency is not
// recorded).
func (r *Recorder) RecordError(op string) {
	r.mu.Lock()
	r.get(op).errors++
	r.mu.Unlock()
}

type taken struct {
	full          *hdrhistogram.Histogram
	count, errors int64
}

// swap hands the tick every op's current histogram and counts, replacing
// them with the empty histogram taken (and reset) at the previous tick.
func (r *Recorder) swap() map[string]taken {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]taken, len(r.ops))
	for op, w := range r.ops {
		h := w.cur
		if h != nil {
			w.cur, w.full = w.full, h
		}
		out[op] = taken{full: h, count: w.count, errors: w.errors}
		w.count, w.errors = 0, 0
	}
	return out
}

// Window is what a Recorder holds of one operation type since it was last
// drained, in a form that crosses a process boundary (gob or JSON): how a
// node in another process hands its timings to the cell that measures it.
type Window struct {
	Hist          *hdrhistogram.Snapshot // nil when Options.Disabled
	Count, Errors int64
}

// Drain takes what r recorded since the last Drain, leaving it empty. Use
// it on a recorder no Registry ticks.
func (r *Recorder) Drain() map[string]Window {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Window, len(r.ops))
	for op, w := range r.ops {
		if w.count == 0 && w.errors == 0 {
			continue
		}
		win := Window{Count: w.count, Errors: w.errors}
		if w.cur != nil {
			win.Hist = w.cur.Export()
			w.cur.Reset()
		}
		out[op] = win
		w.count, w.errors = 0, 0
	}
	return out
}

// Add records windows drained from another recorder as if they had been
// recorded here.
func (r *Recorder) Add(ws map[string]Window) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for op, win := range ws {
		w := r.get(op)
		w.count += win.Count
		w.errors += win.Errors
		if w.cur != nil && win.Hist != nil {
			w.cur.Merge(hdrhistogram.Import(win.Hist))
		}
	}
}

// Max is the largest latency in w (0 when it has none).
func (w Window) Max() time.Duration {
	if w.Hist == nil {
		return 0
	}
	return time.Duration(hdrhistogram.Import(w.Hist).Max()) * unit
}
