package harness

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/idxbench/idxbench/harness/measure"
	"github.com/idxbench/idxbench/results"
)

// A capacity phase searches for the highest ingest rate the cell sustains
// under an end-to-end SLO, the way pebble's `bench write` searches for the
// rate an LSM sustains without its shape degrading: open-loop ingest at a
// target rate for a step, judged pass or fail; the rate rises
// geometrically while steps pass; after a failure the pipeline drains,
// rests (cool-off) and the search backs off to the last passing rate, then
// bisects (geometrically) between it and the lowest failing one. The
// answer is the split between passing and failing steps that misclassifies
// the fewest, so one noisy step does not decide it.
//
// A step passes when, over its period, the p99 of index lag stays within
// slo.lag_p99, the p99 of request_plus scans issued during it (when
// slo.scan_p99 is set) within slo.scan_p99, the backlog (bucket mutations
// no snapshot covers; a line through samples every 100ms) did not grow by
// more than queue_slack's worth of the
// target rate (default: the lag SLO's worth), and the driver achieved at
// least 90% of the target.

func init() {
	registerPhase(PhaseCapacity, phaseKind{
		settings: []string{"slo", "step", "growth", "rate", "max_rate", "cool_off", "precision", "queue_slack",
			"duration", "clients", "scan_rate", "limit", "index"},
		verifies: true,
		validate: validateCapacity,
		refs: func(p *Phase, at string, st *indexRefs) error {
			if p.SLO.ScanP99 == 0 {
				return nil
			}
			return scanRefs(p, at, st)
		},
		run: (*cellRun).capacity,
	})
}

// SLO is what every step of a capacity search must meet.
type SLO struct {
	// LagP99 bounds the p99 of index lag over a step; default 1s.
	LagP99 Duration `yaml:"lag_p99,omitempty"`
	// ScanP99 bounds the p99 of request_plus range scans issued during a
	// step; 0 (default) runs no scans and judges none.
	ScanP99 Duration `yaml:"scan_p99,omitempty"`
}

// CapacityOverrides are the capacity command's flags: each one set
// replaces that setting in every capacity phase of the scenario.
type CapacityOverrides struct {
	LagP99    time.Duration `json:"lag_p99,omitempty"`
	ScanP99   time.Duration `json:"scan_p99,omitempty"`
	Step      time.Duration `json:"step,omitempty"`
	Bound     time.Duration `json:"bound,omitempty"`
	StartRate float64       `json:"start_rate,omitempty"`
	MaxRate   float64       `json:"max_rate,omitempty"`
}

// Validate checks the overrides' values.
func (o *CapacityOverrides) Validate() error {
	if o == nil {
		return nil
	}
	switch {
	case o.LagP99 < 0:
		return fmt.Errorf("--slo-lag %s is negative", o.LagP99)
	case o.ScanP99 < 0:
		return fmt.Errorf("--slo-scan %s is negative", o.ScanP99)
	case o.Step != 0 && o.Step < minCapacityStep:
		return fmt.Errorf("--step %s is below the %s minimum", o.Step, minCapacityStep)
	case o.Bound < 0:
		return fmt.Errorf("--bound %s is negative", o.Bound)
	case o.StartRate < 0:
		return fmt.Errorf("--start-rate %g is negative", o.StartRate)
	case o.MaxRate < 0:
		return fmt.Errorf("--max-rate %g is negative", o.MaxRate)
	case o.MaxRate > 0 && o.StartRate > o.MaxRate:
		return fmt.Errorf("--start-rate %g is above --max-rate %g", o.StartRate, o.MaxRate)
	}
	return nil
}

// CheckCapacityScenario refuses a scenario the capacity command cannot
// use: one without a capacity phase, or whose capacity phases the
// overrides make invalid (a bound shorter than a step).
func CheckCapacityScenario(nameOrFile string, o *CapacityOverrides) error {
	sc, _, err := LoadScenario(nameOrFile)
	if err != nil {
		return err
	}
	found := false
	for i, ph := range sc.Phases {
		if ph.Type != PhaseCapacity {
			continue
		}
		found = true
		ph = o.apply(ph)
		if err := validateCapacity(&ph, fmt.Sprintf("scenario %s: phases[%d]", sc.Name, i)); err != nil {
			return fmt.Errorf("with the flags applied, %w", err)
		}
	}
	if !found {
		return fmt.Errorf("scenario %s has no capacity phase", sc.Name)
	}
	return nil
}

// apply replaces ph's capacity settings with the overrides that are set.
func (o *CapacityOverrides) apply(ph Phase) Phase {
	if o == nil {
		return ph
	}
	if o.LagP99 > 0 {
		ph.SLO.LagP99 = Duration(o.LagP99)
	}
	if o.ScanP99 > 0 {
		ph.SLO.ScanP99 = Duration(o.ScanP99)
	}
	if o.Step > 0 {
		ph.Step = Duration(o.Step)
	}
	if o.Bound > 0 {
		ph.Duration = Duration(o.Bound)
	}
	if o.StartRate > 0 {
		ph.Rate = o.StartRate
	}
	if o.MaxRate > 0 {
		ph.MaxRate = o.MaxRate
	}
	return ph
}

// Defaults and limits of the capacity settings.
const (
	defaultLagP99       = time.Second
	defaultCapacityStep = 10 * time.Second
	minCapacityStep     = 100 * time.Millisecond
	defaultCoolOff      = 5 * time.Second
	// defaultCapacityBound keeps a search within ten minutes per cell.
	defaultCapacityBound = 10 * time.Minute
	defaultStartRate     = 1000
	defaultGrowth        = 2
	defaultPrecision     = 0.05
	defaultScanClients   = 1
	defaultCapacityScans = 20 // request_plus scans/s in all, when scan_p99 is set
	// minAchieved is the fraction of the target rate a step must achieve.
	minAchieved = 0.9
	// minSearchRate ends a search that fails even at very low rates.
	minSearchRate = 1.0
	// maxSearchSteps stops a search that does not converge (a system that
	// flips between pass and fail at every rate) even within its bound.
	maxSearchSteps = 200
)

func validateCapacity(p *Phase, at string) error {
	switch {
	case p.Growth != 0 && (p.Growth <= 1 || p.Growth > 10):
		return fmt.Errorf("%s.growth: %g out of range (1,10]", at, p.Growth)
	case p.Precision != 0 && (p.Precision <= 0 || p.Precision >= 1):
		return fmt.Errorf("%s.precision: %g out of range (0,1)", at, p.Precision)
	case p.Step != 0 && p.Step.D() < minCapacityStep:
		return fmt.Errorf("%s.step: %s is below the %s minimum", at, p.Step.D(), minCapacityStep)
	case p.MaxRate < 0:
		return fmt.Errorf("%s.max_rate: %g is negative", at, p.MaxRate)
	case p.MaxRate > 0 && p.Rate > p.MaxRate:
		return fmt.Errorf("%s.rate: %g is above max_rate %g", at, p.Rate, p.MaxRate)
	case p.ScanRate < 0:
		return fmt.Errorf("%s.scan_rate: %g is negative", at, p.ScanRate)
	case p.Clients < 0 || p.Clients > 1024:
		return fmt.Errorf("%s.clients: %d out of range [1,1024]", at, p.Clients)
	case p.Limit < 0:
		return fmt.Errorf("%s.limit: %d is negative", at, p.Limit)
	}
	step := p.Step.D()
	if step == 0 {
		step = defaultCapacityStep
	}
	if p.Duration != 0 && p.Duration.D() < step {
		return fmt.Errorf("%s.duration: the search's bound %s is shorter than one step (%s)", at, p.Duration.D(), step)
	}
	return nil
}

// capacityConfig is a capacity phase's settings with defaults applied.
type capacityConfig struct {
	lagP99, scanP99      time.Duration
	step, coolOff, bound time.Duration
	slack                time.Duration
	start, growth        float64
	maxRate, precision   float64
	clients, limit       int
	scanRate             float64
	index                string
}

func newCapacityConfig(ph Phase, snapshotInterval time.Duration) capacityConfig {
	cfg := capacityConfig{
		lagP99: ph.SLO.LagP99.D(), scanP99: ph.SLO.ScanP99.D(),
		step: ph.Step.D(), coolOff: ph.CoolOff.D(), bound: ph.Duration.D(), slack: ph.QueueSlack.D(),
		start: ph.Rate, growth: ph.Growth, maxRate: ph.MaxRate, precision: ph.Precision,
		clients: ph.Clients, limit: ph.Limit, scanRate: ph.ScanRate, index: ph.Index,
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.lagP99, defaultLagP99)
	def(&cfg.step, defaultCapacityStep)
	def(&cfg.coolOff, defaultCoolOff)
	def(&cfg.bound, defaultCapacityBound)
	// The backlog swings from one instant to the next (a snapshot's worth
	// of mutations; more while a persistent snapshot holds the flusher),
	// so one sample at each end of a step is noisy. Growth within the lag
	// SLO's worth of mutations is within what the SLO allows; more means
	// the oldest mutations still pending are older than the SLO, which the
	// lag of the visible ones cannot show yet.
	def(&cfg.slack, max(cfg.lagP99, 2*snapshotInterval))
	if cfg.start == 0 {
		cfg.start = defaultStartRate
	}
	if cfg.growth == 0 {
		cfg.growth = defaultGrowth
	}
	if cfg.precision == 0 {
		cfg.precision = defaultPrecision
	}
	if cfg.clients == 0 {
		cfg.clients = defaultScanClients
	}
	if cfg.limit == 0 {
		cfg.limit = 100
	}
	if cfg.scanRate == 0 {
		cfg.scanRate = defaultCapacityScans
	}
	return cfg
}

// capacity runs the search and reports every step, the sustainable rate
// and the costs per mutation over all steps.
func (c *cellRun) capacity(ctx context.Context, ph Phase, out *results.Phase) error {
	if err := c.p.ix.Start(ctx); err != nil {
		return err
	}
	ph = c.job.Overrides.Capacity.apply(ph)
	cfg := newCapacityConfig(ph, c.p.ix.Config().SnapshotInterval)
	var sc *capacityScanner
	if cfg.scanP99 > 0 {
		var err error
		if sc, err = c.newCapacityScanner(ctx, cfg); err != nil {
			return err
		}
	}
	search := &rateSearch{start: cfg.start, growth: cfg.growth, maxRate: cfg.maxRate, precision: cfg.precision}
	begin := time.Now()
	deadline := begin.Add(cfg.bound)
	for {
		rate, ok := search.next()
		if !ok {
			break
		}
		if time.Now().Add(cfg.step).After(deadline) {
			search.stop = stopBound
			break
		}
		st, err := c.capacityStep(ctx, cfg, rate, sc)
		if err != nil {
			return fmt.Errorf("capacity step at %.0f mutations/s: %w", rate, err)
		}
		out.Steps = append(out.Steps, st)
		search.observe(rate, st.Pass)
		if !c.job.Quiet {
			fmt.Fprintf(c.stderr, "capacity step %d: %s\n", len(out.Steps), describeStep(st))
		}
		if st.Pass {
			continue
		}
		// Cool off: drain the backlog the failed step left, then rest, so
		// the next step starts from the state a passing one would.
		if err := c.p.waitCaughtUp(ctx, max(time.Until(deadline), time.Millisecond)); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !time.Now().Before(deadline) {
				search.stop = stopBound
				break
			}
			return err
		}
		select {
		case <-time.After(min(cfg.coolOff, max(time.Until(deadline), 0))):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := c.p.waitCaughtUp(ctx, catchUpTimeout); err != nil {
		return err
	}
	rate, miss := sustainableRate(search.steps)
	out.Capacity = &results.Capacity{
		SustainablePerSec: rate, Misclassified: miss, LagP99Ms: ms(cfg.lagP99), ScanP99Ms: ms(cfg.scanP99),
		Stop: search.stop, BoundSeconds: cfg.bound.Seconds(),
	}
	addCapacityMetrics(out.Metrics, out.Steps, out.Capacity, time.Since(begin))
	if search.stop == stopBound {
		fmt.Fprintf(c.stderr, "cell %s phase %s: the capacity search stopped at its bound of %s after %d steps; "+
			"the sustainable rate %.0f mutations/s is less precise than asked\n",
			c.job.Engine, ph.Label(), cfg.bound, len(out.Steps), rate)
	}
	return nil
}

// addCapacityMetrics sums up a search: the sustainable rate, the steps,
// the lag at the sustainable rate, and the costs per mutation over every
// step.
func addCapacityMetrics(m map[string]float64, steps []results.Step, cap *results.Capacity, wall time.Duration) {
	m["sustainable_mutations_per_sec"] = cap.SustainablePerSec
	m["capacity_steps"] = float64(len(steps))
	m["capacity_misclassified_steps"] = float64(cap.Misclassified)
	m["capacity_search_seconds"] = wall.Seconds()
	bound := 0.0
	if cap.Stop == stopBound {
		bound = 1
	}
	m["capacity_stopped_at_bound"] = bound
	var n int64
	var cpu, written, engineWritten float64
	var at *results.Step // the last passing step at the sustainable rate
	for i := range steps {
		st := &steps[i]
		n += st.Mutations
		cpu += st.CPUSeconds
		written += st.BytesWritten
		engineWritten += max(st.EngineBytesWritten, 0)
		if st.Pass && st.TargetPerSec == cap.SustainablePerSec {
			at = st
		}
	}
	m["mutations"] = float64(n)
	if n > 0 {
		m["cpu_us_per_mutation"] = cpu * 1e6 / float64(n)
		m["bytes_written_per_mutation"] = written / float64(n)
		if engineWritten > 0 {
			m["engine_bytes_written_per_mutation"] = engineWritten / float64(n)
		}
	}
	if at != nil {
		m["sustainable_index_lag_p50_ms"] = at.LagP50Ms
		m["sustainable_index_lag_p99_ms"] = at.LagP99Ms
		if at.Seconds > 0 {
			// Cores busy at the sustainable rate: what sizing scales.
			m["sustainable_cpu_cores"] = at.CPUSeconds / at.Seconds
		}
		if at.ScanP99Ms > 0 {
			m["sustainable_scan_p99_ms"] = at.ScanP99Ms
		}
	}
}

// describeStep is a step's one-line account for stderr.
func describeStep(st results.Step) string {
	verdict := "pass"
	if !st.Pass {
		verdict = "FAIL: " + st.Why
	}
	scan := ""
	if st.ScanP99Ms > 0 {
		scan = fmt.Sprintf(", scan p99 %.1fms", st.ScanP99Ms)
	}
	return fmt.Sprintf("target %.0f/s, achieved %.0f/s, lag p50 %.1fms p99 %.1fms%s, pending %d → %d (growth %.0f), cpu %.2fs: %s",
		st.TargetPerSec, st.AchievedPerSec, st.LagP50Ms, st.LagP99Ms, scan, st.PendingStart, st.PendingEnd, st.PendingGrowth, st.CPUSeconds, verdict)
}

// capacityStep runs open-loop ingest at rate for one step (with the
// request_plus scans when sc is set) and judges it.
func (c *cellRun) capacityStep(ctx context.Context, cfg capacityConfig, rate float64, sc *capacityScanner) (results.Step, error) {
	lag0 := c.lagHistogram(ctx)
	pending0 := c.pending()
	nodes0 := c.p.nodeCounters(false)
	self0 := measure.ProcessCPU()
	io0, _ := measure.ReadProc(os.Getpid())
	st0, _ := c.p.ix.Stats()
	start := time.Now()

	sctx, cancel := context.WithTimeout(ctx, cfg.step)
	defer cancel()
	d := &driver{c: c, rate: rate, compact: true}
	var scans *scanWindow
	var wg sync.WaitGroup
	if sc != nil {
		scans = sc.start(sctx, ctx, &wg)
	}
	backlog := c.sampleBacklog(sctx, &wg, start, pending0)
	err := d.run(sctx, 0)
	cancel()
	wg.Wait()
	el := time.Since(start)
	if err != nil {
		return results.Step{}, err
	}
	if ctx.Err() != nil {
		return results.Step{}, ctx.Err()
	}
	if err := c.p.failure(); err != nil {
		return results.Step{}, err
	}

	pending1 := c.pending()
	lag := histDelta(c.lagHistogram(ctx), lag0)
	cpu := measure.ProcessCPU() - self0
	io1, _ := measure.ReadProc(os.Getpid())
	written := float64(io1.BytesWritten) - float64(io0.BytesWritten)
	for i, nc := range c.p.nodeCounters(false) {
		if i < len(nodes0) {
			cpu += nc.CPU - nodes0[i].CPU
			written += float64(nc.BytesWritten) - float64(nodes0[i].BytesWritten)
		}
	}
	st1, _ := c.p.ix.Stats()
	n := d.applied.Load()
	step := results.Step{
		TargetPerSec: rate, AchievedPerSec: float64(n) / el.Seconds(), Seconds: el.Seconds(), Mutations: n,
		PendingStart: pending0, PendingEnd: pending1, PendingGrowth: backlog.growth(el),
		CPUSeconds: cpu.Seconds(), BytesWritten: max(written, 0),
		EngineBytesWritten: float64(max(st1.EngineBytesWritten-st0.EngineBytesWritten, 0)),
	}
	if lag != nil && lag.TotalCount() > 0 {
		step.LagP50Ms = ms(time.Duration(lag.ValueAtQuantile(50)) * measure.Unit)
		step.LagP99Ms = ms(time.Duration(lag.ValueAtQuantile(99)) * measure.Unit)
	}
	if scans != nil {
		step.ScanP99Ms, step.ScanErrors = scans.p99(), scans.errors
	}
	judgeStep(&step, cfg, lag != nil && lag.TotalCount() > 0)
	return step, nil
}

// judgeStep decides a step's verdict against the SLO, naming every
// condition it missed.
func judgeStep(st *results.Step, cfg capacityConfig, lagSeen bool) {
	var why []string
	if !lagSeen && st.Mutations > 0 {
		why = append(why, "no mutation became visible")
	}
	if lim := ms(cfg.lagP99); st.LagP99Ms > lim {
		why = append(why, fmt.Sprintf("lag p99 %.1fms > %.0fms", st.LagP99Ms, lim))
	}
	if cfg.scanP99 > 0 {
		if lim := ms(cfg.scanP99); st.ScanP99Ms > lim {
			why = append(why, fmt.Sprintf("scan p99 %.1fms > %.0fms", st.ScanP99Ms, lim))
		}
		if st.ScanErrors > 0 {
			why = append(why, fmt.Sprintf("%d scans failed", st.ScanErrors))
		}
	}
	slack := int64(st.TargetPerSec * cfg.slack.Seconds())
	if grew := int64(st.PendingGrowth); grew > slack {
		why = append(why, fmt.Sprintf("queue grew by %d (slack %d)", grew, slack))
	}
	if st.AchievedPerSec < minAchieved*st.TargetPerSec {
		why = append(why, fmt.Sprintf("achieved %.0f/s < %.0f%% of target", st.AchievedPerSec, minAchieved*100))
	}
	st.Pass = len(why) == 0
	st.Why = strings.Join(why, "; ")
}

// backlogSamples are the backlog's samples over a step.
type backlogSamples struct {
	mu     sync.Mutex
	ts, vs []float64 // seconds since the step's start; mutations pending
}

// backlogEvery spaces the backlog's samples within a step.
const backlogEvery = 100 * time.Millisecond

// sampleBacklog samples the backlog until ctx is done. One sample at each
// end of a step would judge an instant — a persistent snapshot holding the
// flusher as the step ends looks like a growing queue — so the growth is
// read from a line through all of them.
func (c *cellRun) sampleBacklog(ctx context.Context, wg *sync.WaitGroup, start time.Time, first int64) *backlogSamples {
	b := &backlogSamples{ts: []float64{0}, vs: []float64{float64(first)}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(backlogEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				v := c.pending()
				b.mu.Lock()
				b.ts = append(b.ts, now.Sub(start).Seconds())
				b.vs = append(b.vs, float64(v))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// growth is how much the backlog grew over a step of length el, by the
// least-squares line through the samples (0 with too few of them).
func (b *backlogSamples) growth(el time.Duration) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, slope, ok := linearFit(b.ts, b.vs)
	if !ok {
		return 0
	}
	return slope * el.Seconds()
}

// pending is how many bucket mutations no snapshot covers yet.
func (c *cellRun) pending() int64 {
	kv := int64(c.p.kv.CurrentSeqnos().Sum())
	return max(kv-int64(c.p.ix.SnapshotTS().Sum()), 0)
}

// lagHistogram folds every recorder's timings so far into the phase's
// registry and returns a copy of its index lag histogram (nil: none yet).
// An extra Tick only shortens the ticker's current window.
func (c *cellRun) lagHistogram(ctx context.Context) *hdrhistogram.Histogram {
	c.pullNodeTimings(ctx)
	c.reg.Tick(time.Now())
	return c.reg.Histogram("index_lag")
}

// histDelta is what was recorded into a cumulative histogram between two
// copies of it: later minus earlier (earlier may be nil).
func histDelta(later, earlier *hdrhistogram.Histogram) *hdrhistogram.Histogram {
	if later == nil {
		return nil
	}
	before := map[int64]int64{}
	if earlier != nil {
		for _, b := range earlier.Distribution() {
			before[b.From] += b.Count
		}
	}
	d := later.Clone()
	d.Reset()
	for _, b := range later.Distribution() {
		if n := b.Count - before[b.From]; n > 0 {
			d.RecordValues(b.From, n)
		}
	}
	return d
}
