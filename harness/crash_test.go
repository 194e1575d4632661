package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/projector/kvnode"
	"github.com/idxbench/idxbench/workload"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// The crash tests' children are this test binary: with CrashChildEnv set it
// runs the child before any test. An init function (rather than TestMain,
// which belongs to cell_test.go) does it, after registering the engines the
// children need.
func init() {
	registerCrashLossy()
	if os.Getenv(CrashChildEnv) != "" {
		if err := RunCrashChild(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// registerCrashLossy registers "test-crash-lossy": pebble dropping one
// Main-keyspace write in every 97, a disk engine the crash test must catch.
func registerCrashLossy() {
	pebble, err := engines.Lookup("pebble")
	if err != nil {
		panic(err)
	}
	engines.Register(engines.Engine{
		Name: "test-crash-lossy", Real: true, Doc: "pebble that drops writes (harness tests only)",
		Open: func(dir string, o engines.Options) (engines.Store, error) {
			s, err := pebble.Open(dir, o)
			if err != nil {
				return nil, err
			}
			return &lossyStore{Store: s}, nil
		},
		Describe: pebble.Describe,
	})
}

// crashSeed is the seed of the randomized crash tests: IDXBENCH_CRASH_SEED,
// or 1.
func crashSeed(t *testing.T) uint64 {
	seed := uint64(1)
	if s := os.Getenv("IDXBENCH_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("IDXBENCH_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed: %d (rerun with IDXBENCH_CRASH_SEED=%d go test ./harness -run %s)", seed, seed, t.Name())
	return seed
}

func testCrashConfig(t *testing.T, engine string, cycles int) CrashConfig {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return CrashConfig{
		Engine: engine, Cycles: cycles, Seed: crashSeed(t), Dir: t.TempDir(),
		Docs: 400, Vbuckets: 16, Rate: 3000, MinRun: 50 * time.Millisecond, MaxRun: 600 * time.Millisecond,
		CycleTimeout: 2 * time.Minute, Exe: exe,
	}
}

// TestCrashTestOnEveryDiskEngine runs a few kill -9 → restart → verify
// cycles per disk engine (IDXBENCH_CRASH_CYCLES of them when set, for a
// long run).
func TestCrashTestOnEveryDiskEngine(t *testing.T) {
	cycles := 3
	if s := os.Getenv("IDXBENCH_CRASH_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("IDXBENCH_CRASH_CYCLES=%q is not a positive number", s)
		}
		cycles = n
	}
	for _, tc := range []struct{ engine, topology, verify string }{
		// Every restart verifies every slice, and none may fail: what a
		// kill -9 leaves is a consistent store.
		{"pebble", TopologyInproc, "full"}, {"badger", TopologyInproc, "full"}, {"bbolt", TopologyInproc, "quick"},
		// The index node alone is killed; the KV node process runs on.
		{"pebble", TopologyProcs, ""}, {"bbolt", TopologyProcs, ""},
	} {
		engine := tc.engine
		t.Run(engine+"/"+tc.topology, func(t *testing.T) {
			cfg := testCrashConfig(t, engine, cycles)
			cfg.Topology, cfg.VerifyOnOpen = tc.topology, tc.verify
			var out strings.Builder
			sum, err := RunCrashTest(context.Background(), cfg, &out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			t.Log(out.String())
			if !strings.HasPrefix(out.String(), fmt.Sprintf("seed: %d\n", cfg.Seed)) {
				t.Errorf("output does not start with the seed:\n%s", out.String())
			}
			kills := 0
			for _, n := range sum.Kills {
				kills += n
			}
			if sum.Cycles != cycles || kills != cycles || len(sum.Recoveries) != cycles+1 {
				t.Errorf("summary: %d cycles, %d kills, %d recoveries; want %d, %d, %d", sum.Cycles, kills, len(sum.Recoveries), cycles, cycles, cycles+1)
			}
			for _, r := range sum.Recoveries {
				if r.Entries == 0 || r.Open <= 0 {
					t.Errorf("cycle %d: recovery not reported: %+v", r.Cycle, r)
				}
				if r.Rebuilt != 0 {
					t.Errorf("cycle %d: %d slices rebuilt after a kill (verify_on_open %q)", r.Cycle, r.Rebuilt, tc.verify)
				}
			}
			if last := sum.Recoveries[len(sum.Recoveries)-1]; last.Ops == 0 {
				t.Errorf("the final recovery holds no operation after the load: %+v", last)
			}
			ents, err := os.ReadDir(cfg.Dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if e.Name() != ownerMarker {
					t.Errorf("the crash test left %s behind after passing", e.Name())
				}
			}
		})
	}
}

func TestCrashTestReportsADivergence(t *testing.T) {
	cfg := testCrashConfig(t, "test-crash-lossy", 2)
	var out strings.Builder
	_, err := RunCrashTest(context.Background(), cfg, &out)
	var div *DivergenceError
	if !errors.As(err, &div) || !errors.Is(err, ErrCrashTest) {
		t.Fatalf("a lossy engine passed the crash test (err %v):\n%s", err, out.String())
	}
	if div.Cycle != 1 || div.Seed != cfg.Seed || !strings.Contains(div.Detail, "missing doc-") {
		t.Errorf("divergence: %+v", div)
	}
	if !isOwned(div.Dir) {
		t.Errorf("the failed run's data dir %q was not kept", div.Dir)
	}
	if !strings.Contains(out.String(), "data kept in "+div.Dir) {
		t.Errorf("output does not say where the data is:\n%s", out.String())
	}
}

func TestCrashConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  CrashConfig
		want string
	}{
		{CrashConfig{Engine: "memory", Cycles: 1}, "keeps nothing on disk"},
		{CrashConfig{Engine: "nosuch", Cycles: 1}, "unknown engine"},
		{CrashConfig{Engine: "pebble"}, "cycles must be at least 1"},
		{CrashConfig{Engine: "pebble", Cycles: 1, Vbuckets: 2000}, "vbuckets must be in"},
		{CrashConfig{Engine: "pebble", Cycles: 1, MinRun: time.Second, MaxRun: time.Millisecond}, "below min run"},
		{CrashConfig{Engine: "pebble", Cycles: 1, VerifyOnOpen: "deep"}, "verify on open"},
	} {
		tc.cfg.EnsureDefaults()
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error containing %q", tc.cfg, err, tc.want)
		}
		if _, rerr := RunCrashTest(context.Background(), tc.cfg, new(strings.Builder)); rerr == nil || errors.Is(rerr, ErrCrashTest) {
			t.Errorf("%+v: RunCrashTest: %v, want a bad-input error", tc.cfg, rerr)
		}
	}
}

// TestCrashRegenerateReplaysFailovers checks the invariant the crash test
// stands on: a bucket regenerated from the progress file (operations and
// failovers) is the bucket the earlier process built, seqnos, vbuuids and
// contents.
func TestCrashRegenerateReplaysFailovers(t *testing.T) {
	seed := crashSeed(t)
	job := crashJob{Seed: seed, Docs: 300, Vbuckets: 8}
	build := func() (*crashChild, error) {
		c := &crashChild{job: job}
		kv, err := kvnode.New(c.spec(), kvnode.Options{})
		if err != nil {
			return nil, err
		}
		c.p = &pipeline{kv: kv, oracle: workload.NewOracle(kv.Bucket())}
		return c, nil
	}
	// The first process: a load, operations and failovers, recorded as
	// the child records them (reserving operations in chunks).
	a, err := build()
	if err != nil {
		t.Fatal(err)
	}
	a.p.kv.Load()
	var prog crashProgress
	for round := range 5 {
		prog.Ops = a.applied + opsChunk
		for range 700 + 37*round {
			a.p.kv.Apply(a.p.kv.Next())
			a.applied++
		}
		vb := upr.Vbno(round * 3 % job.Vbuckets)
		fo := crashFailover{AfterOps: a.applied, Vb: vb, Branch: a.p.kv.Bucket().HighSeqno(vb) / 2}
		prog.Failovers = append(prog.Failovers, fo)
		if err := a.p.kv.Bucket().Failover(fo.Vb, fo.Branch); err != nil {
			t.Fatal(err)
		}
	}
	// What the first process reserved but never applied is applied too.
	for a.applied < prog.Ops {
		a.p.kv.Apply(a.p.kv.Next())
		a.applied++
	}

	b, err := build()
	if err != nil {
		t.Fatal(err)
	}
	b.progress = prog
	if err := b.regenerate(); err != nil {
		t.Fatal(err)
	}
	ka, kb := a.p.kv.Bucket().CurrentSeqnos(), b.p.kv.Bucket().CurrentSeqnos()
	if !ka.Equal(kb) {
		t.Fatalf("regenerated bucket differs:\nfirst       %v\nregenerated %v", ka, kb)
	}
	for vb := range job.Vbuckets {
		if la, lb := a.p.kv.Bucket().FailoverLog(upr.Vbno(vb)), b.p.kv.Bucket().FailoverLog(upr.Vbno(vb)); !reflect.DeepEqual(la, lb) {
			t.Errorf("vb %d failover log: %v, regenerated %v", vb, la, lb)
		}
	}
	d := defn.IndexDefn{Name: "by_city", SecExprs: []string{"city"}}
	ea, err := a.p.oracle.Expected(d, ka)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := b.p.oracle.Expected(d, kb)
	if err != nil {
		t.Fatal(err)
	}
	if lines, n := diffEntries(eb, ea, 5); n > 0 {
		t.Errorf("regenerated bucket's index differs in %d entries: %v", n, lines)
	}

	// A progress file whose failover lies beyond its operations is refused.
	c, err := build()
	if err != nil {
		t.Fatal(err)
	}
	c.progress = crashProgress{Ops: 10, Failovers: []crashFailover{{AfterOps: 11}}}
	if err := c.regenerate(); err == nil {
		t.Error("a failover after the recorded operations was accepted")
	}
}

func TestCrashActivityFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), crashStatusFile)
	a, err := openActivity(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	steps := []struct {
		do   func()
		want string
	}{
		{func() { a.set(KillIngest) }, KillIngest},
		{func() { a.persist(1) }, KillPersist},
		{func() { a.persist(1) }, KillPersist},
		{func() { a.persist(-1) }, KillPersist},
		{func() { a.set(KillRollback) }, KillRollback}, // a rollback outranks a persist
		{func() { a.set(KillIngest) }, KillPersist},
		{func() { a.persist(-1) }, KillIngest},
	}
	for i, s := range steps {
		s.do()
		if got := readKillKind(path); got != s.want {
			t.Errorf("step %d: status %q, want %q", i, got, s.want)
		}
	}
	if got := readKillKind(filepath.Join(t.TempDir(), "absent")); got != KillUnknown {
		t.Errorf("missing status file reads as %q", got)
	}
}

func TestParseVerified(t *testing.T) {
	var r CrashRecovery
	err := parseVerified("verified cycle=3 entries=12 open=1.5ms catchup=2s regen=3µs ops=99 replayed=7 rollbacks=1 rebuilt=2 persist_wait=0s", &r)
	if err != nil {
		t.Fatal(err)
	}
	want := CrashRecovery{Entries: 12, Open: 1500 * time.Microsecond, CatchUp: 2 * time.Second, Regen: 3 * time.Microsecond, Ops: 99, Replayed: 7, Rollbacks: 1, Rebuilt: 2}
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
	if err := parseVerified("verified entries=many", &r); err == nil {
		t.Error("a malformed report was accepted")
	}
}

// TestRestartAfterAFailoverPastARestoredSlice is, without a kill, the
// state a crash test found after a kill during an injected rollback: KV
// failed over vb 0 below every recovery point, the rollback emptied one
// slice and the process died before it rolled back the other, which still
// holds a recovery point past the branch point on the old branch. The
// restart must not serve that slice's lost mutations, and must catch up.
//
// Recover restarts the streams from the oldest slice's vector, which is on
// the surviving history, so the bucket asks for no rollback there; the
// other slice's vector is the hold vector, which no snapshot on the new
// branch could cover. checkHold asks the bucket about the hold vector and
// rolls that slice back too.
func TestRestartAfterAFailoverPastARestoredSlice(t *testing.T) {
	ctx := context.Background()
	eng, err := engines.Lookup("bbolt")
	if err != nil {
		t.Fatal(err)
	}
	spec := workload.DefaultSpec()
	spec.Seed, spec.Docs, spec.Vbuckets = 3, 300, 4
	spec.Indexes = []defn.IndexDefn{{Name: "by_city", SecExprs: []string{"city"}}, {Name: "primary", IsPrimary: true}}
	cfg := pipelineConfig{spec: spec, engine: eng, dir: t.TempDir(),
		settings: IndexerSettings{SnapshotInterval: Duration(10 * time.Millisecond), PersistInterval: Duration(20 * time.Millisecond)}}
	cfg.opts.EnsureDefaults()
	p, err := newPipeline(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.kv.Load()
	if err := p.ix.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range 500 {
		p.kv.Apply(p.kv.Next())
	}
	c := &cellRun{p: p}
	persisted, err := c.waitPersisted(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	// KV fails over vb 0 at half the persisted seqno; the "crashed"
	// rollback had emptied by_city and not yet touched primary.
	branch := persisted.Seqnos[0] / 2
	if err := p.kv.Failover(0, branch); err != nil {
		t.Fatal(err)
	}
	s, err := eng.Open(filepath.Join(cfg.dir, "slices", "by_city", "p0"), cfg.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Destroy(); err != nil {
		t.Fatal(err)
	}

	// The new process: reopen, recover, rebuild the same KV (the
	// generator is deterministic), resume and catch up.
	q, from, err := reopenPipeline(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	q.kv.Load()
	for range 500 {
		q.kv.Apply(q.kv.Next())
	}
	if err := q.kv.Failover(0, branch); err != nil {
		t.Fatal(err)
	}
	if from, err = q.ix.CheckHold(ctx, from); err != nil {
		t.Fatal(err)
	}
	if _, err := q.ix.Resume(ctx, from); err != nil {
		t.Fatal(err)
	}
	if err := q.waitCaughtUp(ctx, 10*time.Second); err != nil {
		t.Fatalf("restart after a failover at vb 0 seqno %d, below primary's recovery point %v: %v", branch, persisted, err)
	}
	v, err := (&cellRun{p: q}).verify(ctx)
	if err != nil || !v.OK() {
		t.Fatalf("verify: %v %s", err, v)
	}
}
