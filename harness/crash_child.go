// The crash test's child: one process's life between two kills — reopen
// the index node over the slices the last child left, regenerate the bucket
// from the progress file, recover, verify, then ingest (with injected KV
// rollbacks) until the parent kills it.

package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/idxbench/idxbench/coordinator"
	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/workload"
	"github.com/idxbench/idxbench/workload/upr"
)

// errDiverged is the child's error after it reported a divergence.
var errDiverged = errors.New("index diverged from the oracle")

// RunCrashChild is a crash-test child's whole life: read the job from
// stdin, recover, verify and report on stdout, then ingest until killed (or,
// for the final cycle, close cleanly). It returns only on failure, a
// divergence (already reported on stdout), ctx's end or after the final
// cycle; the caller prints the error on stderr, where the parent collects
// it.
func RunCrashChild(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	var job crashJob
	if err := json.NewDecoder(stdin).Decode(&job); err != nil {
		return fmt.Errorf("crash child: read job: %w", err)
	}
	c, err := newCrashChild(job, stdout)
	if err != nil {
		return err
	}
	defer c.status.close()
	err = c.run(ctx)
	if err == nil && c.p != nil {
		// After a failure the stores are left as they are, as a crash
		// would leave them; only a clean run closes them.
		err = c.p.close()
	}
	if err != nil {
		return fmt.Errorf("crash child, cycle %d: %w", job.Cycle, err)
	}
	return nil
}

// crashChild is one child process's state.
type crashChild struct {
	job      crashJob
	out      io.Writer
	rng      *rand.Rand
	engine   engines.Engine
	settings IndexerSettings
	status   *activity
	progress crashProgress
	applied  uint64 // operations applied after the load
	p        *pipeline
}

// crashProgress is the progress file: how many operations (after the
// load) the bucket may have had applied, and the failovers injected, in
// order. A child writes it before it applies what it records.
type crashProgress struct {
	Ops       uint64          `json:"ops"`
	Failovers []crashFailover `json:"failovers,omitempty"`
}

type crashFailover struct {
	AfterOps uint64    `json:"after_ops"`
	Vb       upr.Vbno  `json:"vb"`
	Branch   upr.Seqno `json:"branch"`
}

// opsChunk is how many operations a child reserves in the progress file at
// a time.
const opsChunk = 1024

func newCrashChild(job crashJob, out io.Writer) (*crashChild, error) {
	eng, err := engines.Lookup(job.Engine)
	if err != nil {
		return nil, err
	}
	st, err := openActivity(filepath.Join(job.Dir, crashStatusFile))
	if err != nil {
		return nil, err
	}
	c := &crashChild{job: job, out: out, status: st,
		rng:    rand.New(rand.NewPCG(job.Seed, uint64(job.Cycle))),
		engine: trackedEngine(eng, st),
	}
	// Each cycle draws its own persist interval and snapshot retention,
	// so the crash test covers several.
	c.settings = IndexerSettings{
		SnapshotInterval: Duration(20 * time.Millisecond),
		PersistInterval:  Duration(time.Duration(100+c.rng.IntN(201)) * time.Millisecond),
		MaxRollbacks:     2 + c.rng.IntN(4),
		VerifyOnOpen:     job.VerifyOnOpen,
	}
	if c.rng.IntN(2) == 0 {
		// The back-index cache starts out incomplete after a restore, so
		// recovery is where it can go wrong.
		c.settings.BackIndexCacheBytes = 8 << 20
	}
	data, err := os.ReadFile(filepath.Join(job.Dir, crashProgressFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read crash progress: %w", err)
	default:
		if err := json.Unmarshal(data, &c.progress); err != nil {
			return nil, fmt.Errorf("crash progress %s: %w", filepath.Join(job.Dir, crashProgressFile), err)
		}
	}
	return c, nil
}

func (c *crashChild) spec() workload.Spec {
	s := workload.DefaultSpec()
	s.Seed, s.Docs, s.Vbuckets = c.job.Seed, c.job.Docs, c.job.Vbuckets
	return s
}

func (c *crashChild) run(ctx context.Context) error {
	c.status.set(KillRollback) // recovering; the parent kills only after "verified"
	pcfg := pipelineConfig{
		spec: c.spec(), engine: c.engine, dir: filepath.Join(c.job.Dir, crashPipelineDir), settings: c.settings,
		kvAddr: c.job.KV,
	}
	pcfg.opts.EnsureDefaults()
	coord, err := coordinator.Open(pcfg.dir)
	if err != nil {
		return err
	}
	existing, err := coord.Instances()
	if err != nil {
		return err
	}
	fresh := len(existing) == 0
	var open time.Duration
	var from *upr.TsVbuuid
	start := time.Now()
	if fresh {
		if c.p, err = newPipeline(ctx, pcfg); err != nil {
			return err
		}
		from = upr.NewTsVbuuid(c.p.spec.Vbuckets)
	} else {
		if c.p, from, err = reopenPipeline(pcfg); err != nil {
			return err
		}
	}
	open = time.Since(start)
	st, _ := c.p.ix.Stats()
	rebuilt := st.SlicesRebuilt // damage found on open, or by verify_on_open

	start = time.Now()
	if err := c.regenerate(); err != nil {
		return err
	}
	if err := c.checkCovered(from); err != nil {
		return err
	}
	// The bucket now exists again, so a slice restored past a failover
	// the killed child never processed can be found and rolled back.
	if from, err = c.p.ix.CheckHold(ctx, from); err != nil {
		return fmt.Errorf("check the restored vectors against the bucket: %w", err)
	}
	regen := time.Since(start)

	start = time.Now()
	rollbacks, err := c.p.ix.Resume(ctx, from)
	if err != nil {
		return fmt.Errorf("resume streams from the recovered vector: %w", err)
	}
	if err := c.waitCaughtUp(ctx, "after recovery"); err != nil {
		return err
	}
	catchUp := time.Since(start)
	entries, err := c.verify(ctx, "after recovery")
	if err != nil {
		return err
	}
	kv := c.p.kv.CurrentSeqnos().Sum()
	var replayed uint64
	if s := from.Sum(); kv > s {
		replayed = kv - s
	}
	c.status.set(KillIngest)
	verified := time.Now()
	report := func() {
		fmt.Fprintf(c.out, "verified cycle=%d entries=%d open=%s catchup=%s regen=%s ops=%d replayed=%d rollbacks=%d rebuilt=%d persist_wait=%s\n",
			c.job.Cycle, entries, open, catchUp, regen, c.applied, replayed, rollbacks, rebuilt, time.Since(verified))
	}
	if c.job.Final {
		report()
		return nil
	}
	// Mostly, the report (and so the kill's window) waits for the first
	// round of persistent snapshots after the recovery, so every cycle
	// moves the recovery point on and replays stay bounded; one cycle in
	// four reports at once, so kills also land before that round.
	waitPersist := c.rng.IntN(4) != 0
	return c.ingest(ctx, func() bool { return !waitPersist || c.p.ix.PersistedTS() != nil }, report)
}

// reopenPipeline is the restart path of a new process: the index node
// reopens the coordinator's ACTIVE instances over their slices and restores
// every slice to its newest recovery point. It returns the vector to resume
// from. The bucket is still empty.
func reopenPipeline(cfg pipelineConfig) (*pipeline, *upr.TsVbuuid, error) {
	p, err := openNodes(context.Background(), cfg)
	if err != nil {
		return nil, nil, err
	}
	insts, defns, err := activeDefns(p.coord)
	if err != nil {
		return p, nil, err
	}
	for _, d := range defns {
		if err := p.ix.CreateInstance(d); err != nil {
			return p, nil, err
		}
	}
	p.insts = insts
	ts, err := p.ix.Recover()
	return p, ts, err
}

// regenerate rebuilds the bucket the earlier cycles built: the load, then
// the progress file's operations with its failovers at their places. With
// the KV node in a process of its own (which outlives the children), the
// bucket is there already and the pipeline's replica has replayed its
// history: only a first child loads it.
func (c *crashChild) regenerate() error {
	kv := c.p.kv
	if c.p.remote != nil {
		c.applied = kv.Ops()
		if kv.Loaded() == 0 {
			_, err := c.p.load()
			return err
		}
		return nil
	}
	kv.Load()
	fo := c.progress.Failovers
	for {
		for len(fo) > 0 && fo[0].AfterOps == c.applied {
			if err := kv.Failover(fo[0].Vb, fo[0].Branch); err != nil {
				return fmt.Errorf("replay failover %+v: %w", fo[0], err)
			}
			fo = fo[1:]
		}
		if c.applied >= c.progress.Ops {
			break
		}
		kv.Apply(kv.Next())
		c.applied++
	}
	if len(fo) > 0 {
		return fmt.Errorf("crash progress: failover %+v is after its %d operations", fo[0], c.progress.Ops)
	}
	return nil
}

// checkCovered fails when the recovered vector holds a seqno beyond what the
// bucket has on the same branch: the indexer would claim mutations KV never
// made. (On an older branch the resume is answered with Rollback.)
func (c *crashChild) checkCovered(from *upr.TsVbuuid) error {
	kv := c.p.kv.CurrentSeqnos()
	for vb := range from.Len() {
		if from.Vbuuids[vb] == kv.Vbuuids[vb] && from.Seqnos[vb] > kv.Seqnos[vb] {
			return fmt.Errorf("%w: recovered vector has vb %d at seqno %d, the regenerated bucket only %d (branch %d)",
				ErrCrashTest, vb, from.Seqnos[vb], kv.Seqnos[vb], kv.Vbuuids[vb])
		}
	}
	return nil
}

// verify compares every index with the oracle once the index covers the
// bucket. A difference is reported on stdout and returned as errDiverged.
func (c *crashChild) verify(ctx context.Context, when string) (entries int, err error) {
	v, err := (&cellRun{p: c.p}).verify(ctx)
	if err != nil {
		return 0, fmt.Errorf("verify %s: %w", when, err)
	}
	if !v.OK() {
		fmt.Fprintf(c.out, "DIVERGENCE cycle=%d %s: %s\n", c.job.Cycle, when, v)
		return 0, errDiverged
	}
	return v.Entries, nil
}

// waitCaughtUp waits until a snapshot covers the bucket. When that takes
// longer than the job allows, the error names the vbuckets the latest
// snapshot does not cover and what the indexer received of them.
func (c *crashChild) waitCaughtUp(ctx context.Context, when string) error {
	p := c.p
	limit := c.job.CatchUp
	if limit <= 0 {
		limit = catchUpTimeout
	}
	err := p.waitCaughtUp(ctx, limit)
	if err == nil || ctx.Err() != nil || p.failure() != nil {
		return err
	}
	kv, snap, hwt := p.kv.CurrentSeqnos(), p.ix.SnapshotTS(), p.ix.HWT()
	var lag []string
	for vb := range kv.Len() {
		if kv.Seqnos[vb] == 0 || snap.Seqnos[vb] >= kv.Seqnos[vb] && (snap.Vbuuids[vb] == 0 || snap.Vbuuids[vb] == kv.Vbuuids[vb]) {
			continue
		}
		if len(lag) < 6 {
			lag = append(lag, fmt.Sprintf("vb %d: bucket %d@%d, snapshot %d@%d, received %d@%d", vb,
				kv.Seqnos[vb], kv.Vbuuids[vb], snap.Seqnos[vb], snap.Vbuuids[vb], hwt.Seqnos[vb], hwt.Vbuuids[vb]))
		} else {
			lag[len(lag)-1] = "…"
		}
	}
	_, scanErr := p.ix.Scan(ctx, indexer.ScanRequest{InstID: p.insts[0].ID, Kind: indexer.ScanCount, Timeout: time.Millisecond})
	return fmt.Errorf("%w: the index did not catch up with the bucket %s within %s (a scan says: %v); not covered (seqno@vbuuid): %s",
		ErrCrashTest, when, limit, scanErr, strings.Join(lag, "; "))
}

// maxCrashLag bounds how far ingest runs ahead of the latest snapshot.
const maxCrashLag = 20_000

// ingest applies operations at the job's rate, injecting a rollback now
// and then, until ctx ends (in practice, until the parent kills the
// process). It calls report once, as soon as ready says so.
func (c *crashChild) ingest(ctx context.Context, ready func() bool, report func()) error {
	p := c.p
	const chunk = 64
	nextRollback := time.Now().Add(c.rollbackGap())
	start, done := time.Now(), 0
	for ctx.Err() == nil {
		if err := p.failure(); err != nil {
			return err
		}
		if report != nil && ready() {
			report()
			report = nil
		}
		if !c.job.NoRollbacks && time.Now().After(nextRollback) {
			if err := c.rollback(ctx); err != nil {
				return err
			}
			nextRollback = time.Now().Add(c.rollbackGap())
			start, done = time.Now(), 0
			continue
		}
		if c.job.Rate > 0 {
			due := start.Add(time.Duration(float64(done) / c.job.Rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				time.Sleep(min(wait, 10*time.Millisecond))
				continue
			}
		}
		if c.applied+chunk > c.progress.Ops {
			c.progress.Ops = c.applied + opsChunk
			if err := c.saveProgress(); err != nil {
				return err
			}
		}
		for kv := p.kv.CurrentSeqnos().Sum(); kv > p.ix.SnapshotTS().Sum()+maxCrashLag; {
			if err := p.failure(); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			time.Sleep(time.Millisecond)
		}
		if err := p.apply(chunk); err != nil {
			return err
		}
		c.applied += chunk
		done += chunk
	}
	return nil
}

// rollbackGap draws the time until the next injected rollback.
func (c *crashChild) rollbackGap() time.Duration {
	return time.Duration(300+c.rng.IntN(1200)) * time.Millisecond
}

// rollback injects a KV rollback: the streams stop; some vbuckets fail over
// (branching at or after the latest persistent snapshot, or anywhere
// before it) or are requested with a vbuuid the bucket does not know; the
// indexer is answered with Rollback, rolls its slices back and catches up;
// then every index is verified.
func (c *crashChild) rollback(ctx context.Context) error {
	p := c.p
	c.status.set(KillRollback)
	defer c.status.set(KillIngest)
	if err := p.ix.Stop(); err != nil {
		return err
	}
	from := p.ix.HWT()
	persisted := p.ix.PersistedTS()
	n := 1 + c.rng.IntN(max(1, p.spec.Vbuckets/4))
	vbs, err := chooseVbuckets(c.rng, p.spec.Vbuckets, n)
	if err != nil {
		return err
	}
	what := "failover"
	if c.rng.IntN(8) == 0 {
		what = "unknown-vbuuid"
		for _, vb := range vbs {
			from.Vbuuids[vb] ^= 0x5bd1e995
		}
	} else {
		for _, vb := range vbs {
			high := p.kv.HighSeqno(vb)
			lo := upr.Seqno(0)
			if persisted != nil && c.rng.IntN(4) != 0 && persisted.Seqnos[vb] <= high {
				lo = persisted.Seqnos[vb]
			}
			fo := crashFailover{AfterOps: c.applied, Vb: vb, Branch: lo + upr.Seqno(c.rng.Uint64N(uint64(high-lo)+1))}
			// Recorded before it happens, so a later cycle replays it.
			c.progress.Failovers = append(c.progress.Failovers, fo)
			c.progress.Ops = max(c.progress.Ops, c.applied)
			if err := c.saveProgress(); err != nil {
				return err
			}
			if err := p.failover(vb, fo.Branch); err != nil {
				return err
			}
		}
	}
	if _, err := p.ix.Resume(ctx, from); err != nil {
		return fmt.Errorf("resume after injected %s of %d vbuckets: %w", what, len(vbs), err)
	}
	when := fmt.Sprintf("after an injected %s of vbuckets %v", what, vbs)
	if err := c.waitCaughtUp(ctx, when); err != nil {
		return err
	}
	_, err = c.verify(ctx, when)
	return err
}

// saveProgress replaces the progress file. No fsync: the file must survive
// the process, not the machine.
func (c *crashChild) saveProgress() error {
	data, err := json.Marshal(c.progress)
	if err != nil {
		return err
	}
	path := filepath.Join(c.job.Dir, crashProgressFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write crash progress: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write crash progress: %w", err)
	}
	return nil
}
