package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/rpc"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/harness/measure"
	"github.com/idxbench/idxbench/results"
	"github.com/idxbench/idxbench/results/metricsexport"
)

// cellRun is one cell in progress: its pipeline, the phase being measured,
// and where ticks go.
type cellRun struct {
	job    CellJob
	sc     *Scenario
	engine engines.Engine
	opts   engines.Options
	dir    string // the cell's own data directory
	stderr io.Writer
	ticks  *results.TickWriter
	rng    *rand.Rand
	p      *pipeline
	// raw replays the stores' recorded calls for raw_ratio phases (nil if
	// none) until rawPhases of them have run.
	raw       rawReplayer
	rawPhases int
	// prof is the running per-phase CPU profile (see startProfile).
	prof *os.File
	// longestPersist is the longest round of persistent snapshots so far
	// (nanoseconds): waits for a round allow for it, since a round of an
	// O(data) snapshot (a bbolt file copy) grows with the data.
	longestPersist atomic.Int64
	// compactor compacts the bucket's history as the run goes.
	compactor *compactor
	// tally watches the pipeline's stores for the engine figures of each
	// phase (nil when they live in an index node process).
	tally *storeTally

	// period names what the current phase is doing when it is not its
	// main work ("catch-up", "raw replay"), for the tick lines; "" for the
	// main work.
	period atomic.Pointer[string]

	// sourceMutations counts the mutations drivers applied to the bucket,
	// for the Prometheus export.
	sourceMutations atomic.Int64

	// pendingBuilds are the initial builds in progress: one a build-index phase
	// with wait: false left catching up, completed by the next one.
	pendingBuilds []*buildRun
	// restores are the indexer's restores of its slices since a phase
	// last took them, for a rollback's timeline.
	restoreMu sync.Mutex
	restores  []restoreSpan

	// The current phase's measurement.
	mu    sync.Mutex
	phase string // its name, for the Prometheus export's labels
	reg   *measure.Registry
	ixRec *measure.Recorder
}

// RunCell runs every phase of the job's scenario on one engine in this
// process, and returns the cell's results. The cell's data lives in a fresh
// directory under job.DataDir that is removed at the end.
func RunCell(ctx context.Context, job CellJob, stderr io.Writer) (results.Cell, error) {
	cell := results.Cell{Engine: job.Engine, Dir: job.DirLabel, Cores: job.Cores, Repeat: job.Repeat, Phases: []results.Phase{}}
	sc, err := ParseScenario(job.Scenario)
	if err != nil {
		return cell, err
	}
	spec, err := EffectiveWorkload(sc, job.Overrides)
	if err != nil {
		return cell, err
	}
	eng, err := engines.Lookup(job.Engine)
	if err != nil {
		return cell, err
	}
	if job.Slowdown > 0 {
		eng = slowedEngine(eng, job.Slowdown, time.Sleep)
	}
	var opts engines.Options
	opts.EnsureDefaults()
	cell.EngineDescription = eng.Describe(opts)
	cell.EngineOptions = results.ParseSettings(cell.EngineDescription)
	if job.Slowdown > 0 {
		cell.EngineOptions["injected_slowdown"] = strconv.FormatFloat(job.Slowdown, 'g', -1, 64)
	}
	cell.Durability = sc.Indexer.Durability
	if cell.Durability == "" {
		cell.Durability = engines.NoSync.String()
	}
	if job.Cores == 0 {
		cell.Cores = runtime.GOMAXPROCS(0)
	}

	dir, err := makeOwnedDir(job.DataDir, "cell-"+job.Engine+"-")
	if err != nil {
		return cell, fmt.Errorf("cell data dir under %s: %w", job.DataDir, err)
	}
	defer removeOwnedDir(dir)

	c := &cellRun{job: job, sc: sc, engine: eng, opts: opts, dir: dir, stderr: stderr,
		rng: rand.New(rand.NewPCG(spec.Seed, uint64(job.Repeat)))}
	if job.TicksPath != "" {
		if c.ticks, err = results.OpenTickWriter(job.TicksPath); err != nil {
			return cell, err
		}
		defer c.ticks.Close()
	}
	for _, ph := range sc.Phases {
		if ph.RawRatio {
			c.rawPhases++
		}
	}
	pcfg := pipelineConfig{
		spec: spec, engine: eng, opts: opts, dir: filepath.Join(dir, "pipeline"),
		settings: sc.Indexer, recorder: indexerRecorder{c}, indexNodes: sc.indexNodes(spec),
	}
	switch {
	case job.Topology == TopologyProcs:
		exe := job.Executable
		if exe == "" {
			if exe, err = os.Executable(); err != nil {
				return cell, err
			}
		}
		pcfg.procs = &procsConfig{exe: exe, engine: job.Engine, indexCPUs: job.IndexCPUs, kvCPUs: job.KVCPUs,
			scenario: job.Scenario, overrides: job.Overrides, slowdown: job.Slowdown, stderr: stderr,
			record: c.rawPhases > 0, etcd: job.Etcd, attach: job.Attach}
		if len(pcfg.procs.indexCPUs) == 0 {
			if pcfg.procs.indexCPUs, pcfg.procs.kvCPUs, err = NodeCPUs(cell.Cores); err != nil {
				return cell, err
			}
		}
	case c.rawPhases > 0:
		rec := newBatchRecorder()
		pcfg.engine = rec.wrap(eng)
		c.raw = newLocalReplayer(rec, eng, opts, dir)
	}
	if pcfg.procs == nil {
		c.tally = newStoreTally()
		pcfg.engine = c.tally.wrap(pcfg.engine)
	}
	c.p, err = newPipeline(ctx, pcfg)
	if err != nil {
		return cell, err
	}
	c.compactor = newCompactor(c.p)
	cell.Topology = TopologyInproc
	if pcfg.procs != nil {
		cell.Topology = TopologyProcs
		if c.rawPhases > 0 {
			if c.p.ctl == nil {
				c.p.close()
				return cell, errors.New("raw_ratio replays the index node's store calls in its process; an attached cluster's nodes do not record them")
			}
			c.raw = remoteReplayer{c.p.ctl}
		}
	}
	for _, np := range c.p.processes() {
		cell.Nodes = append(cell.Nodes, results.Node{Role: np.role, Pid: np.pid, CPUs: np.cpus})
	}
	defer func() {
		if cerr := errors.Join(c.closePendingBuilds(), c.p.close()); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if job.MetricsAddr != "" {
		mctx, stop := context.WithCancel(ctx)
		defer stop()
		addr, err := metricsexport.Serve(mctx, job.MetricsAddr, cellSource{c})
		if err != nil {
			return cell, err
		}
		if !job.Quiet {
			fmt.Fprintf(stderr, "cell %s: Prometheus metrics at http://%s/metrics\n", job.Engine, addr)
		}
	}
	if !job.Quiet {
		// The indexer's line ends with the generic engine options; the
		// engine's own description says which of them apply to it.
		ixLine, _, _ := strings.Cut(c.p.ix.Config().String(), " engine_options=")
		fmt.Fprintf(stderr, "cell %s: seed %d, %d docs, %d vbuckets, indexer %s; engine %s\n",
			job.Engine, spec.Seed, spec.Docs, spec.Vbuckets, ixLine, cell.EngineDescription)
	}
	for _, ph := range applyDuration(sc.Phases, job.Overrides) {
		if ctx.Err() != nil {
			return cell, ctx.Err()
		}
		res, perr := c.runPhase(ctx, ph)
		cell.Phases = append(cell.Phases, res)
		if perr != nil {
			return cell, fmt.Errorf("phase %s: %w", ph.Label(), perr)
		}
	}
	addRebuildRatios(&cell)
	return cell, nil
}

// indexerRecorder forwards the indexer's operation timings to the current
// phase's registry.
type indexerRecorder struct{ c *cellRun }

func (r indexerRecorder) Record(op string, d time.Duration) {
	if op == "rollback" || op == "recover" {
		r.c.noteRestore(d)
	}
	if op == "persist" {
		for old := r.c.longestPersist.Load(); int64(d) > old && !r.c.longestPersist.CompareAndSwap(old, int64(d)); {
			old = r.c.longestPersist.Load()
		}
	}
	r.c.mu.Lock()
	rec := r.c.ixRec
	r.c.mu.Unlock()
	if rec != nil {
		rec.Record(indexerOp(op), d)
	}
}

// indexerOp is the name an indexer operation is recorded under in a
// phase's registry. The indexer times its scans under the names the scan
// clients use ("scan_range_any"); recorded apart, as
// "indexer_scan_range_any", a scan counts once, and "scan_…" is the
// client's end-to-end figure.
func indexerOp(op string) string {
	if strings.HasPrefix(op, "scan_") {
		return "indexer_" + op
	}
	return op
}

// pullNodeTimings drains the index node's recorder, when it runs as a
// process of its own, into the current phase (or drops it between phases,
// as in process).
func (c *cellRun) pullNodeTimings(ctx context.Context) {
	var ctls []*rpc.Client
	c.p.editProcs(func() {
		for _, m := range c.p.members {
			ctls = append(ctls, m.ctl)
		}
	})
	for _, ctl := range ctls {
		if ctl != nil { // an attached cluster's node serves no harness services
			c.pullTimingsOf(ctx, ctl)
		}
	}
}

func (c *cellRun) pullTimingsOf(ctx context.Context, ctl *rpc.Client) {
	var ws map[string]measure.Window
	if err := rpcCall(ctx, ctl, recServiceName+".Drain", &struct{}{}, &ws); err != nil {
		return // a dead node is reported by the phase
	}
	if w, ok := ws["persist"]; ok {
		for d, old := int64(w.Max()), c.longestPersist.Load(); d > old && !c.longestPersist.CompareAndSwap(old, d); {
			old = c.longestPersist.Load()
		}
	}
	for op, w := range ws {
		if name := indexerOp(op); name != op {
			delete(ws, op)
			ws[name] = w
		}
	}
	c.mu.Lock()
	rec := c.ixRec
	c.mu.Unlock()
	if rec != nil {
		rec.Add(ws)
	}
}

// persistWait bounds a wait for rounds of persistent snapshots: the
// interval and the longest round seen so far, n times, plus a margin.
func (c *cellRun) persistWait(n int, margin time.Duration) time.Duration {
	iv := c.p.ix.Config().PersistInterval
	return time.Duration(n)*(iv+time.Duration(c.longestPersist.Load())) + margin
}

// Worker ids of a phase's registry.
const (
	workerIndexer = iota
	workerIngest
	workerScan0 // scan clients are workerScan0 + i
)

// runPhase measures one phase: a fresh registry, a ticker printing and
// recording a tick every second, resource accounting around it, and the
// phase's own metrics and verification.
func (c *cellRun) runPhase(ctx context.Context, ph Phase) (results.Phase, error) {
	out := results.Phase{Name: ph.Label(), Verify: results.VerifySkipped, Metrics: map[string]float64{}}
	c.pullNodeTimings(ctx) // what the node did between phases is no phase's
	start := time.Now()
	reg := measure.NewRegistry(start, measure.Options{})
	c.mu.Lock()
	c.reg, c.ixRec, c.phase = reg, reg.Recorder(workerIndexer), ph.Label()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.ixRec = nil
		c.mu.Unlock()
	}()

	if err := c.startProfile(ph.Label()); err != nil {
		return out, err
	}
	var drift *driftSampler
	if ph.Drift {
		drift = &driftSampler{}
	}
	c.setPeriod("")
	printer := measure.NewTickPrinter(c.stderr, tickGauges...)
	stopTicks := c.startTicker(ph.Label(), reg, printer, &out, drift)
	span := measure.Begin()
	nodesBefore := c.p.nodeCounters(true)
	before, _ := c.p.ix.Stats()
	var tallyBefore tallyMark
	if c.tally != nil {
		tallyBefore = c.tally.mark()
	}

	var err error
	if k := phaseKinds[ph.Type]; k != nil {
		err = k.run(c, ctx, ph, &out)
	} else {
		err = fmt.Errorf("phase type %q is not runnable", ph.Type)
	}
	res := span.End()
	nodesAfter := c.p.nodeCounters(false)
	if perr := c.stopProfile(); err == nil {
		err = perr
	}
	stopTicks()
	c.pullNodeTimings(ctx)
	final := reg.Tick(time.Now())
	if !c.job.Quiet {
		printer.Total(ph.Label(), final)
	}
	c.addResourceMetrics(out.Metrics, res, before)
	c.compactor.report(out.Metrics)
	addNodeMetrics(out.Metrics, c.p.nodeCosts(nodesBefore, nodesAfter))
	if c.tally != nil {
		c.tally.report(out.Metrics, tallyBefore, out.Metrics["bytes_written"])
	}
	addLatencyMetrics(out.Metrics, final)
	addRateMetrics(out.Metrics)
	if err != nil {
		return out, err
	}
	if drift != nil {
		dv := drift.verdict(c.p.ix.Config().SnapshotInterval)
		dv.addMetrics(out.Metrics)
		addVerdict(&out, !dv.TooShort, dv.OK(), dv.String())
	}
	if c.job.Verify && ph.Verifies() {
		vstart := time.Now()
		v, verr := c.verify(ctx)
		if verr != nil {
			return out, verr
		}
		// What the check costs (a full scan of every index and a walk of
		// the bucket's history), and how far the indexes are off.
		out.Metrics["verify_ms"] = ms(time.Since(vstart))
		out.Metrics["verify_mismatches"] = float64(v.Differing)
		addVerdict(&out, true, v.OK(), v.String())
	}
	if out.Verify == results.VerifyFail {
		fmt.Fprintf(c.stderr, "cell %s phase %s: VERIFICATION FAILED: %s\n", c.job.Engine, ph.Label(), out.VerifyDetail)
	}
	return out, nil
}

// addVerdict adds a judgement to the phase's verification: a failure fails
// it, and its detail joins the others'.
func addVerdict(out *results.Phase, judged, ok bool, detail string) {
	if out.VerifyDetail != "" {
		detail = out.VerifyDetail + " | " + detail
	}
	out.VerifyDetail = detail
	switch {
	case judged && !ok:
		out.Verify = results.VerifyFail
	case judged && out.Verify != results.VerifyFail:
		out.Verify = results.VerifyPass
	}
}

// tickGauges are the tick lines' gauge columns.
var tickGauges = []string{"queue", "pending", "st_age_ms"}

// setPeriod names what the phase does from now on, for the tick lines
// ("catch-up": the source stopped and the indexer drains; "raw replay");
// "" is the phase's main work.
func (c *cellRun) setPeriod(name string) { c.period.Store(&name) }

func (c *cellRun) currentPeriod() string {
	if p := c.period.Load(); p != nil {
		return *p
	}
	return ""
}

// startTicker prints and records a tick every second until the returned
// function is called; with drift set, it also samples the processes for
// the phase's drift verdict.
func (c *cellRun) startTicker(phase string, reg *measure.Registry, printer *measure.TickPrinter, out *results.Phase, drift *driftSampler) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		if !c.job.Quiet {
			fmt.Fprintf(c.stderr, "phase %s\n", phase)
		}
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				c.pullNodeTimings(context.Background())
				tick := reg.Tick(now)
				var gv []measure.Gauge
				st, ok := c.p.ix.Stats()
				if ok {
					gv = []measure.Gauge{
						{Name: "queue", Value: float64(st.MutationQueueSize)},
						{Name: "pending", Value: float64(st.DocsPending)},
						{Name: "st_age_ms", Value: float64(st.SinceLastSnapshot.Milliseconds())},
					}
				}
				res := c.processGauges()
				if !c.job.Quiet {
					printer.PrintPhase(phase, c.currentPeriod(), tick, gv)
				}
				for _, name := range slices.Sorted(maps.Keys(res)) {
					v := res[name]
					for _, bytes := range []string{seriesRSS, seriesHeap} {
						if strings.HasPrefix(name, bytes) {
							name = strings.TrimSuffix(bytes, "_bytes") + "_mb" + strings.TrimPrefix(name, bytes)
							v /= 1 << 20
						}
					}
					gv = append(gv, measure.Gauge{Name: name, Value: v})
				}
				c.recordTick(phase, tick, gv, out)
				if drift != nil {
					if ok {
						res[seriesQueue] = float64(st.MutationQueueSize)
					}
					for _, op := range tick.Ops {
						if op.Op == "index_lag" && op.Count > 0 {
							res[seriesLagP99] = ms(op.P99)
						}
					}
					drift.add(tick.Elapsed, res)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// processGauges samples every process of the cell: resident set
// (rss_bytes, rss_bytes_ROLE_node), goroutines and live heap (goroutines,
// heap_live_bytes, and the index node process's with _index_node).
func (c *cellRun) processGauges() map[string]float64 {
	rt := readRuntime()
	g := map[string]float64{
		seriesRSS:        float64(measure.RSSBytes()),
		seriesGoroutines: float64(rt.Goroutines),
		seriesHeap:       float64(rt.HeapLiveBytes),
	}
	for _, np := range c.p.processes() {
		if pc, ok := measure.ReadProc(np.pid); ok {
			g[seriesRSS+"_"+np.role+"_node"] = float64(pc.RSSBytes)
		}
	}
	if c.p.ctl != nil {
		var rt RuntimeFigures
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if rpcCall(ctx, c.p.ctl, recServiceName+".Runtime", &struct{}{}, &rt) == nil {
			g[seriesGoroutines+"_"+RoleIndex+"_node"] = float64(rt.Goroutines)
			g[seriesHeap+"_"+RoleIndex+"_node"] = float64(rt.HeapLiveBytes)
		}
		cancel()
	}
	return g
}

func (c *cellRun) recordTick(phase string, tick measure.Tick, gv []measure.Gauge, out *results.Phase) {
	gauges := map[string]float64{}
	for _, g := range gv {
		gauges[g.Name] = g.Value
	}
	key := results.CellKey{Engine: c.job.Engine, Dir: c.job.DirLabel, Cores: c.job.Cores, Repeat: c.job.Repeat}
	for _, op := range tick.Ops {
		t := results.Tick{
			Elapsed: tick.Elapsed.Seconds(), Op: op.Op, OpsPerSec: op.OpsPerSecInst,
			P50Ms: ms(op.P50), P95Ms: ms(op.P95), P99Ms: ms(op.P99), MaxMs: ms(op.Max),
			Errors: op.Errors, Gauges: gauges,
		}
		if c.ticks != nil {
			c.ticks.Write(results.TickRecord{CellKey: key, Phase: phase, Tick: t})
		} else {
			out.Series = append(out.Series, t)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// addLatencyMetrics turns the phase's cumulative histograms into metrics:
// index lag, flush, persist and snapshot times.
func addLatencyMetrics(m map[string]float64, final measure.Tick) {
	for _, op := range final.Ops {
		switch {
		case op.Op == "index_lag":
			m["index_lag_p50_ms"] = ms(op.CumP50)
			m["index_lag_p99_ms"] = ms(op.CumP99)
			m["index_lag_max_ms"] = ms(op.CumMax)
		case op.Op == "flush":
			m["flush_p50_ms"] = ms(op.CumP50)
			m["flush_p99_ms"] = ms(op.CumP99)
			m["flushes"] = float64(op.CumCount)
		case op.Op == "persist":
			m["persist_ms"] = ms(op.CumP50)
			m["persist_max_ms"] = ms(op.CumMax)
			m["persists"] = float64(op.CumCount)
		case op.Op == "rollback":
			m["rollback_ms"] = ms(op.CumMax)
			m["engine_rollback_ms"] = max(m["engine_rollback_ms"], ms(op.CumMax))
		case op.Op == "recover":
			m["restore_ms"] = ms(op.CumMax)
			m["engine_rollback_ms"] = max(m["engine_rollback_ms"], ms(op.CumMax))
		case op.Op == "snapshot":
			m["snapshot_p99_ms"] = ms(op.CumP99)
			m["snapshots"] = float64(op.CumCount)
		case op.Op == "verify_on_open":
			m["verify_slices"] = float64(op.CumCount)
			m["verify_slice_max_ms"] = ms(op.CumMax)
		case op.Op == "verify_engine_on_open":
			m["verify_engine_slice_max_ms"] = ms(op.CumMax)
		case op.Op == "st_delay":
			m["st_delay_p50_ms"] = ms(op.CumP50)
			m["st_delay_p99_ms"] = ms(op.CumP99)
		}
	}
}

// addRateMetrics relates a phase's counts to its wall time and to the
// background ingest of a scan phase: snapshots_per_sec, and
// cpu_us_per_background_mutation (the whole process's CPU, scans
// included, per mutation ingested meanwhile), which compares the cost of
// two settings at the same ingest and scan rates.
func addRateMetrics(m map[string]float64) {
	if w := m["wall_seconds"]; w > 0 {
		if n, ok := m["snapshots"]; ok {
			m["snapshots_per_sec"] = n / w
		}
	}
	if n := m["background_mutations"]; n > 0 {
		m["cpu_us_per_background_mutation"] = m["cpu_seconds"] * 1e6 / n
	}
}

// addNodeMetrics adds what each node process cost during the phase —
// cpu_seconds_ROLE_node, bytes_written_ROLE_node — to the phase's totals
// (cpu_seconds, bytes_written), records each one's peak_rss_bytes_ROLE_node,
// and the CPU per mutation of the whole cell and of each node, unless the
// phase measured those over its mutations alone.
func addNodeMetrics(m map[string]float64, costs map[string]roleCost) {
	for role, rc := range costs {
		cpu := rc.cpu.Seconds()
		m["cpu_seconds_"+role+"_node"] = cpu
		m["bytes_written_"+role+"_node"] = rc.written
		m["peak_rss_bytes_"+role+"_node"] = rc.peakRSS
		m["cpu_seconds"] += cpu
		m["bytes_written"] += rc.written
	}
	n := m["mutations"]
	if n <= 0 {
		return
	}
	// A phase that timed its own mutations (ingest) has set these already.
	setDefault := func(k string, v float64) {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	setDefault("cpu_us_per_mutation", m["cpu_seconds"]*1e6/n)
	// Bytes that reached storage per mutation (the cell's, and in procs
	// its nodes'), for sizing a disk's write budget.
	setDefault("bytes_written_per_mutation", m["bytes_written"]/n)
	for role := range costs {
		setDefault("cpu_us_per_mutation_"+role+"_node", m["cpu_seconds_"+role+"_node"]*1e6/n)
	}
}

func (c *cellRun) addResourceMetrics(m map[string]float64, r measure.Resources, before indexerStats) {
	after, _ := c.p.ix.Stats()
	m["wall_seconds"] = r.Wall.Seconds()
	m["cpu_seconds"] = r.CPUSeconds
	m["peak_rss_bytes"] = float64(r.PeakRSSBytes)
	m["bytes_written"] = float64(r.BytesWritten)
	if after.DiskBytes > 0 {
		m["disk_bytes"] = float64(after.DiskBytes)
	}
	if n := after.FlushedKeyVersions - before.FlushedKeyVersions; n > 0 {
		m["key_versions_flushed"] = float64(n)
	}
}
