package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idxbench/idxbench/coordinator"
	"github.com/idxbench/idxbench/engines/baseline"
	"github.com/idxbench/idxbench/harness/measure"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/indexer/node"
	"github.com/idxbench/idxbench/results"
	"github.com/idxbench/idxbench/workload/upr"
)

func init() {
	registerPhase(PhaseLoad, phaseKind{verifies: true, run: metricsOnly((*cellRun).load)})
	registerPhase(PhaseIngest, phaseKind{
		settings: []string{"mutations", "duration", "rate", "raw_ratio", "drift"},
		verifies: true,
		timed:    true,
		validate: func(p *Phase, at string) error {
			if p.Mutations == 0 && p.Duration == 0 {
				return fmt.Errorf("%s: an ingest phase needs mutations or duration", at)
			}
			return nil
		},
		refs: func(p *Phase, at string, st *indexRefs) error {
			if p.RawRatio && st.indexNodes > 1 {
				return fmt.Errorf("%s.raw_ratio: the raw replay follows one index node's stores; this topology has %d", at, st.indexNodes)
			}
			return nil
		},
		run: metricsOnly((*cellRun).ingest),
	})
	registerPhase(PhaseScan, phaseKind{
		settings: []string{"duration", "rate", "kind", "consistency", "clients", "limit", "index", "under_ingest", "scan_rate", "drift"},
		timed:    true,
		validate: validateScan,
		refs:     scanRefs,
		run:      (*cellRun).scan,
	})
	registerPhase(PhasePersist, phaseKind{
		run: func(c *cellRun, ctx context.Context, _ Phase, out *results.Phase) error {
			return c.persist(ctx, out.Metrics)
		},
	})
	registerPhase(PhaseRawIngest, phaseKind{
		settings: []string{"entries"},
		validate: func(p *Phase, at string) error {
			if p.Entries < 0 {
				return fmt.Errorf("%s.entries: %d is negative", at, p.Entries)
			}
			return nil
		},
		run: metricsOnly((*cellRun).rawIngest),
	})
}

func validateScan(p *Phase, at string) error {
	if p.Duration == 0 {
		return fmt.Errorf("%s.duration: a scan phase needs a duration", at)
	}
	if p.ScanRate < 0 {
		return fmt.Errorf("%s.scan_rate: %g is negative", at, p.ScanRate)
	}
	switch p.Kind {
	case "", "range", "lookup", "count", "all":
	default:
		return fmt.Errorf("%s.kind: %q is not range, lookup, count or all", at, p.Kind)
	}
	switch p.Consistency {
	case "", "any", "request_plus", "at_plus":
	default:
		return fmt.Errorf("%s.consistency: %q is not any, request_plus or at_plus", at, p.Consistency)
	}
	if p.Clients < 0 || p.Clients > 1024 {
		return fmt.Errorf("%s.clients: %d out of range [1,1024]", at, p.Clients)
	}
	if p.Limit < 0 {
		return fmt.Errorf("%s.limit: %d is negative", at, p.Limit)
	}
	return nil
}

// scanRefs refuses a scan of an index that is unknown or not yet built
// when the phase runs, or of no secondary index at all.
func scanRefs(p *Phase, at string, st *indexRefs) error {
	if p.Index != "" {
		if !st.live[p.Index] {
			return fmt.Errorf("%s: scans index %q, which %s", at, p.Index, st.whyNotLive(p.Index))
		}
		return nil
	}
	for name := range st.live {
		if !st.primary[name] {
			return nil
		}
	}
	return fmt.Errorf("%s: no secondary index is built when it runs; name one with index", at)
}

type indexerStats = indexer.Stats

// catchUpTimeout bounds how long a phase waits for the index to reflect
// everything the bucket holds.
const catchUpTimeout = 30 * time.Minute

// maxOutstanding bounds how far a closed-loop ingest may run ahead of what
// scans can see, so the source models a busy bucket rather than an
// unbounded backlog, and index lag stays meaningful.
const maxOutstanding = 100_000

// load inserts the spec's documents into the bucket, then starts the streams
// from seqno 0, so every index is built from the backfill, and times the
// build until a snapshot covers the whole bucket.
func (c *cellRun) load(ctx context.Context, ph Phase, m map[string]float64) error {
	t0 := time.Now()
	docs, err := c.p.load()
	if err != nil {
		return err
	}
	m["kv_load_ms"] = ms(time.Since(t0))
	m["docs"] = float64(docs)

	sizes := c.startSizeSampler() // disk and memory as the index grows
	defer sizes.close()
	start := time.Now()
	if err := c.p.ix.Start(ctx); err != nil {
		return err
	}
	if err := c.p.waitCaughtUp(ctx, catchUpTimeout); err != nil {
		return err
	}
	build := time.Since(start)
	m["build_ms"] = ms(build)
	if docs > 0 {
		m["docs_per_sec"] = float64(docs) / build.Seconds()
	}
	if err := c.countEntries(ctx, m); err != nil {
		return err
	}
	sizes.finish(m, m["index_entries"], c.storeCount())
	return nil
}

// driver applies generated operations to the bucket, closed loop (as fast as
// the bound on outstanding mutations allows) or open loop at rate ops/s,
// recording open-loop latency from each operation's intended start.
type driver struct {
	c    *cellRun
	rate float64
	// compact lets the driver compact the bucket's history between chunks
	// (compactor): set in phases that run no INIT stream.
	compact bool
	applied atomic.Int64
	// checked is when failure last asked the nodes (run's goroutine only).
	checked time.Time
}

// driverChunk is the most operations the driver applies at once: closed
// loop, between two checks of the bound on outstanding mutations; open
// loop, when it has fallen behind its schedule.
const driverChunk = 1024

// run applies n operations (n = 0: until ctx is done) in chunks, so a KV
// node in another process costs one request per chunk, not per operation.
// Closed loop, a chunk is driverChunk operations; open loop, every
// operation whose intended start has passed (at most driverChunk), each
// recorded from its intended start to the end of its chunk, so a slow
// bucket shows as latency instead of a lower rate (no coordinated
// omission).
func (d *driver) run(ctx context.Context, n int) error {
	p := d.c.p
	rec := d.c.reg.Recorder(workerIngest)
	start := time.Now()
	intended := func(i int) time.Time {
		return start.Add(time.Duration(float64(i) / d.rate * float64(time.Second)))
	}
	base := p.kv.CurrentSeqnos().Sum()
	for i := 0; n == 0 || i < n; {
		if ctx.Err() != nil {
			if n == 0 {
				return nil // a timed run ends when ctx does
			}
			return ctx.Err()
		}
		if err := d.failure(); err != nil {
			return err
		}
		k := driverChunk
		if d.rate == 0 {
			if err := d.throttle(ctx, base+uint64(i)); err != nil {
				if n == 0 && ctx.Err() != nil {
					return nil
				}
				return err
			}
		} else {
			due := int(time.Since(start).Seconds()*d.rate) + 1 - i
			if due <= 0 {
				select {
				case <-time.After(time.Until(intended(i))):
				case <-ctx.Done():
				}
				continue
			}
			k = min(k, due)
		}
		if n > 0 {
			k = min(k, n-i)
		}
		t := time.Now()
		if err := p.apply(k); err != nil {
			return err
		}
		end := time.Now()
		if d.rate > 0 {
			for j := range k {
				rec.RecordIntended("kv_mutation", intended(i+j), end)
			}
		} else {
			per := end.Sub(t) / time.Duration(k)
			for range k {
				rec.Record("kv_mutation", per)
			}
		}
		i += k
		d.applied.Add(int64(k))
		d.c.sourceMutations.Add(int64(k))
		if d.compact {
			d.c.compactor.tick(end)
		}
	}
	return nil
}

// failureEvery bounds how often the driver asks the nodes whether one
// failed: in the procs topology each ask is a call to every index node,
// and an open-loop driver turns once per due operation.
const failureEvery = 10 * time.Millisecond

// failure is the pipeline's failure, asked at most every failureEvery.
func (d *driver) failure() error {
	if now := time.Now(); now.Sub(d.checked) >= failureEvery {
		d.checked = now
		return d.c.p.failure()
	}
	return nil
}

// throttle waits while the bucket is more than maxOutstanding mutations
// ahead of the latest snapshot.
func (d *driver) throttle(ctx context.Context, kvSum uint64) error {
	for {
		snap := d.c.p.ix.SnapshotTS().Sum()
		if kvSum < snap+maxOutstanding {
			return nil
		}
		if err := d.failure(); err != nil {
			return err
		}
		select {
		case <-time.After(2 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ingest applies the phase's mutations (or runs for its duration) and times
// until a snapshot covers them all.
func (c *cellRun) ingest(ctx context.Context, ph Phase, m map[string]float64) error {
	if err := c.p.ix.Start(ctx); err != nil {
		return err
	}
	rate := ph.Rate
	if rate == 0 {
		rate = c.p.spec.Rate
	}
	d := &driver{c: c, rate: rate, compact: true}
	// 0 says the driver ran closed loop: its index lag is then mostly
	// queueing behind the driver's cap of outstanding mutations, which the
	// end-of-run table's legend says.
	m["driver_target_mutations_per_sec"] = rate
	raw := ph.RawRatio && c.raw != nil
	if raw {
		if err := c.raw.mark(ctx); err != nil {
			return err
		}
	}
	cpu0 := c.pipelineCPU()
	nodes0 := c.p.nodeCounters(false)
	self0 := measure.ProcessCPU()
	selfIO0, _ := measure.ReadProc(os.Getpid())
	start := time.Now()
	dctx := ctx
	if ph.Mutations == 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, ph.Duration.D())
		defer cancel()
	}
	if err := d.run(dctx, ph.Mutations); err != nil {
		return err
	}
	m["source_seconds"] = time.Since(start).Seconds()
	c.setPeriod("catch-up")
	if err := c.p.waitCaughtUp(ctx, catchUpTimeout); err != nil {
		return err
	}
	el := time.Since(start)
	cpu := c.pipelineCPU() - cpu0
	n := d.applied.Load()
	m["mutations"] = float64(n)
	m["ingest_seconds"] = el.Seconds()
	m["mutations_per_sec"] = float64(n) / el.Seconds()
	// CPU per mutation over the ingest alone (not a raw replay after it).
	if n > 0 {
		total := measure.ProcessCPU() - self0
		selfIO, _ := measure.ReadProc(os.Getpid())
		written := float64(selfIO.BytesWritten) - float64(selfIO0.BytesWritten)
		for role, rc := range c.p.nodeCosts(nodes0, c.p.nodeCounters(false)) {
			total += rc.cpu
			written += rc.written
			m["cpu_us_per_mutation_"+role+"_node"] = float64(rc.cpu.Microseconds()) / float64(n)
		}
		m["cpu_us_per_mutation"] = float64(total.Microseconds()) / float64(n)
		// The same cost as a rate: on a shared machine it moves less than
		// mutations_per_sec, which counts the time other processes took.
		if total > 0 {
			m["mutations_per_cpu_sec"] = float64(n) / total.Seconds()
		}
		m["bytes_written_per_mutation"] = max(written, 0) / float64(n)
	}
	if raw {
		c.rawPhases--
		if c.prof != nil {
			if err := c.startProfile(ph.Label() + "-raw-replay"); err != nil {
				return err
			}
		}
		c.setPeriod("raw replay")
		r, err := c.raw.replay(ctx, c.rawPhases == 0)
		if err != nil {
			return err
		}
		// CPU time is steadier than wall time on a shared machine: when
		// both runs are CPU-bound the two ratios agree.
		m["ingest_cpu_seconds"] = cpu.Seconds()
		m["raw_replay_cpu_seconds"] = r.CPU.Seconds()
		m["pipeline_to_raw_cpu_ratio"] = r.CPU.Seconds() / cpu.Seconds()
		if r.CPU > 0 {
			m["raw_mutations_per_cpu_sec"] = float64(n) / r.CPU.Seconds()
		}
		m["raw_replay_seconds"] = r.Wall.Seconds()
		m["raw_replay_ops"] = float64(r.Ops)
		m["raw_mutations_per_sec"] = float64(n) / r.Wall.Seconds()
		m["pipeline_to_raw_ratio"] = r.Wall.Seconds() / el.Seconds()
	}
	return nil
}

// pipelineCPU is the CPU time the pipeline's indexer has used so far: this
// process's, or the index node's when it runs as a process of its own.
func (c *cellRun) pipelineCPU() time.Duration {
	for _, np := range c.p.processes() {
		if np.role == RoleIndex {
			pc, _ := measure.ReadProc(np.pid)
			return pc.CPU
		}
	}
	return measure.ProcessCPU()
}

// scan runs the phase's scan clients for its duration, with a background
// open-loop ingest when under_ingest is set. request_plus scans are checked
// to see every mutation applied before they were issued; with --verify,
// every answer is compared with the oracle at the snapshot it read
// (scanChecker).
//
// The clients record each scan under "scan_<kind>_<consistency>", from
// request to answer as the client sees it; the indexer's own timing of the
// same scans arrives as "indexer_scan_…" (indexerOp).
func (c *cellRun) scan(ctx context.Context, ph Phase, out *results.Phase) error {
	if err := c.p.ix.Start(ctx); err != nil {
		return err
	}
	m := out.Metrics
	inst, err := c.scanTarget(ph.Index)
	if err != nil {
		return err
	}
	keys, err := c.sampleKeys(ctx, inst.Defn.Name, 4096)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("index %s is empty: nothing to scan (load documents first)", inst.Defn.Name)
	}
	clients := ph.Clients
	if clients == 0 {
		clients = 2
	}
	limit := ph.Limit
	if limit == 0 {
		limit = 100
	}
	kind, cons := scanKind(ph.Kind), scanConsistency(ph.Consistency)
	op := "scan_" + kind.String() + "_" + cons.String()

	var chk *scanChecker
	if c.job.Verify {
		// No scan from now on reads a snapshot older than this one.
		start := c.p.ix.SnapshotTS()
		if start == nil {
			start = upr.NewTsVbuuid(c.p.spec.Vbuckets)
		}
		if chk, err = newScanChecker(c.p.oracle, inst.Defn, clients, start, c.p.waitReplica); err != nil {
			return err
		}
		defer chk.finish()
		c.compactor.setFloor(chk.Floor)
		defer c.compactor.setFloor(nil)
	}

	pctx, cancel := context.WithTimeout(ctx, ph.Duration.D())
	defer cancel()
	var wg sync.WaitGroup
	var ingestErr error
	var d *driver
	if ph.UnderIngest {
		rate := ph.Rate
		if rate == 0 {
			rate = 1000
		}
		d = &driver{c: c, rate: rate, compact: true}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ingestErr = d.run(pctx, 0)
		}()
	}
	var stale, scans, warmup atomic.Int64
	var firstErr error
	var errOnce sync.Once
	// Open loop, each client's scans are due every period, the clients
	// staggered across it.
	var period time.Duration
	if ph.ScanRate > 0 {
		period = time.Duration(float64(clients) / ph.ScanRate * float64(time.Second))
	}
	begin := time.Now()
	// The measured window: at once without ingest; under ingest, from the
	// background ingest's first mutation, so the scans before it (request_plus
	// ones answer at once with nothing to wait for) do not dilute the
	// figures. Scans outside it still run and are still checked.
	var measureFrom atomic.Int64
	if d == nil {
		measureFrom.Store(begin.UnixNano())
	}
	for i := 0; i < clients; i++ {
		rng := rand.New(rand.NewPCG(c.rng.Uint64(), uint64(i)))
		rec := c.reg.Recorder(workerScan0 + i)
		due := begin.Add(period * time.Duration(i) / time.Duration(clients))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := int64(1); pctx.Err() == nil; seq++ {
				if period > 0 {
					if wait := time.Until(due); wait > 0 {
						select {
						case <-time.After(wait):
						case <-pctx.Done():
							return
						}
					}
				}
				req := indexer.ScanRequest{InstID: inst.ID, Kind: kind, Consistency: cons, Limit: limit}
				k := keys[rng.IntN(len(keys))]
				switch kind {
				case indexer.ScanRange:
					req.Low, req.Inclusion = k, indexer.IncludeLow
				case indexer.ScanLookup:
					req.Equal = k
				case indexer.ScanCount:
					k2 := keys[rng.IntN(len(keys))]
					if compareKeys(k2, k) < 0 {
						k, k2 = k2, k
					}
					req.Low, req.High, req.Inclusion, req.Limit = k, k2, indexer.IncludeBoth, 0
				}
				// The vector the scan must see: the bucket now. An at_plus
				// scan is asked for exactly that vector (read once: a second
				// read under ingest would be newer than what was asked).
				kv := c.p.kv.CurrentSeqnos()
				if cons == indexer.AtPlus {
					req.TS = kv
				}
				t := time.Now()
				if measureFrom.Load() == 0 && d.applied.Load() > 0 {
					measureFrom.CompareAndSwap(0, t.UnixNano())
				}
				from := measureFrom.Load()
				measured := from != 0 && t.UnixNano() >= from
				if period > 0 {
					// Latency counts from when the scan was due, so a
					// system that falls behind shows it (no coordinated
					// omission).
					t, due = due, due.Add(period)
				}
				res, err := c.p.ix.Scan(pctx, req)
				if err != nil {
					if pctx.Err() != nil {
						return
					}
					if measured {
						rec.RecordError(op)
					}
					errOnce.Do(func() { firstErr = err })
					continue
				}
				if measured {
					rec.Record(op, time.Since(t))
					scans.Add(1)
				} else {
					warmup.Add(1)
				}
				if cons != indexer.AnyConsistency && !kv.SeqnosLE(res.TS) {
					stale.Add(1)
				}
				if chk != nil && !chk.submit(ctx, scanCheck{client: i, seq: seq, req: req, res: res}) {
					return
				}
			}
		}()
	}
	wg.Wait()
	end := time.Now()
	if chk != nil {
		chk.finish()
	}
	if ingestErr != nil {
		return ingestErr
	}
	window := ph.Duration.D()
	if from := measureFrom.Load(); from != 0 && d != nil {
		window = end.Sub(time.Unix(0, from))
		m["scan_warmup_ms"] = ms(time.Unix(0, from).Sub(begin))
		m["scans_before_ingest"] = float64(warmup.Load())
	}
	if err := c.p.failure(); err != nil {
		return err
	}
	c.pullNodeTimings(ctx) // the index node's own timings of the scans
	final := c.reg.Tick(time.Now())
	for _, s := range final.Ops {
		switch s.Op {
		case op:
			m["scans"] = float64(s.CumCount)
			m["scans_per_sec"] = float64(s.CumCount) / window.Seconds()
			m["scan_p50_ms"] = ms(s.CumP50)
			m["scan_p95_ms"] = ms(s.CumP95)
			m["scan_p99_ms"] = ms(s.CumP99)
			m["scan_max_ms"] = ms(s.CumMax)
			m["scan_errors"] = float64(s.CumErrs)
		case indexerOp(op):
			m["indexer_scan_p50_ms"] = ms(s.CumP50)
			m["indexer_scan_p99_ms"] = ms(s.CumP99)
		}
	}
	if d != nil {
		m["background_mutations"] = float64(d.applied.Load())
	}
	if firstErr != nil {
		return fmt.Errorf("scan %s: %w", inst.Defn.Name, firstErr)
	}
	v := scanVerdict{Consistency: cons, Scans: scans.Load() + warmup.Load(), Stale: stale.Load()}
	m["scans_checked"] = 0
	if chk != nil {
		if chk.err != nil {
			return chk.err
		}
		v.Checking, v.Checked, v.Mismatches, v.FirstMismatch = true, chk.checked, chk.mismatches, chk.firstMismatch
		m["scans_checked"] = float64(chk.checked)
		m["scan_mismatches"] = float64(chk.mismatches)
		if chk.rebuilds > 0 {
			m["scan_check_rebuilds"] = float64(chk.rebuilds)
		}
	}
	if v.Judged() {
		addVerdict(out, true, v.OK(), v.String())
	}
	return nil
}

func scanKind(s string) indexer.ScanKind {
	switch s {
	case "lookup":
		return indexer.ScanLookup
	case "count":
		return indexer.ScanCount
	case "all":
		return indexer.ScanAll
	}
	return indexer.ScanRange
}

func scanConsistency(s string) indexer.Consistency {
	switch s {
	case "request_plus":
		return indexer.RequestPlus
	case "at_plus":
		return indexer.AtPlus
	}
	return indexer.AnyConsistency
}

// scanTarget is the named instance, or the first secondary one.
func (c *cellRun) scanTarget(name string) (coordinator.Instance, error) {
	for _, inst := range c.p.insts {
		if name == "" && !inst.Defn.IsPrimary || inst.Defn.Name == name {
			return inst, nil
		}
	}
	if name != "" {
		return coordinator.Instance{}, fmt.Errorf("scan: no index %q in the workload", name)
	}
	return coordinator.Instance{}, errors.New("scan: the workload has no secondary index to scan")
}

// sampleKeys reads the whole index once and keeps up to n keys chosen at
// random, as scan starting points that exist in the data.
func (c *cellRun) sampleKeys(ctx context.Context, index string, n int) ([][]any, error) {
	res, err := c.p.ix.Scan(ctx, indexer.ScanRequest{Index: index, Kind: indexer.ScanAll})
	if err != nil {
		return nil, fmt.Errorf("sample keys of %s: %w", index, err)
	}
	es := res.Entries
	if len(es) <= n {
		keys := make([][]any, len(es))
		for i := range es {
			keys[i] = es[i].Key
		}
		return keys, nil
	}
	keys := make([][]any, n)
	for i := range keys {
		keys[i] = es[c.rng.IntN(len(es))].Key
	}
	return keys, nil
}

// persist waits for the indexer's next round of persistent snapshots, with
// a trickle of mutations so there is something to persist, and reports how
// long the round took.
func (c *cellRun) persist(ctx context.Context, m map[string]float64) error {
	if err := c.p.ix.Start(ctx); err != nil {
		return err
	}
	iv := c.p.ix.Config().PersistInterval
	if iv < 0 {
		return errors.New("persist phase: persistent snapshots are disabled (indexer.persist_interval < 0)")
	}
	st, _ := c.p.ix.Stats()
	before := st.NumPersisted
	limit := c.persistWait(3, 10*time.Second)
	d := &driver{c: c, rate: 1000}
	dctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	var derr error
	go func() { defer wg.Done(); derr = d.run(dctx, 0) }()
	_, err := c.p.ix.WaitPersisted(ctx, limit, node.PersistCond{MinRounds: before + 2})
	stop()
	wg.Wait()
	if derr != nil {
		return derr
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("no persistent snapshot within %s", limit)
	}
	if err != nil {
		return err
	}
	return c.p.waitCaughtUp(ctx, catchUpTimeout)
}

// rawIngest runs the raw-engine baseline on a fresh store of the cell's
// engine beside the pipeline's.
func (c *cellRun) rawIngest(ctx context.Context, ph Phase, m map[string]float64) error {
	dir := filepath.Join(c.dir, "raw")
	s, err := c.engine.Open(dir, c.opts)
	if err != nil {
		return fmt.Errorf("open raw store: %w", err)
	}
	cfg := baseline.Config{Entries: ph.Entries, Seed: c.p.spec.Seed}
	if cfg.Entries > 0 {
		cfg.Updates = max(cfg.Entries/4, 1)
	}
	r, err := baseline.Run(ctx, s, cfg, nil)
	err = errors.Join(err, s.Destroy())
	if err != nil {
		return err
	}
	m["entries"] = float64(r.Entries)
	m["entries_per_sec"] = r.EntriesPerSec
	m["kv_ops_per_sec"] = r.KVPerSec
	m["updates_per_sec"] = r.UpdatesPerSec
	m["bytes_written_per_entry"] = r.WriteBytesPerEntry
	if r.EngineBytesPerEntry >= 0 {
		m["engine_bytes_written_per_entry"] = r.EngineBytesPerEntry
	}
	m["raw_disk_bytes"] = float64(r.DiskBytes)
	m["recovery_point_ms"] = ms(r.RecoveryPoint)
	m["rollback_ms"] = ms(r.Rollback)
	m["scan_p50_ms"] = ms(r.ScanP50)
	m["scan_p99_ms"] = ms(r.ScanP99)
	return nil
}
