package harness

// The crash test: kill -9 → restart → verify, cycle after cycle, against one
// engine.
//
// The parent (RunCrashTest) owns a data directory and starts, for each
// cycle, a child process (the same binary with CrashChildEnv set, the job as
// JSON on stdin). The child (RunCrashChild):
//
//  1. reopens the coordinator's metadata and the indexer's slices in the
//     directory (the first cycle creates the workload's indexes instead) and
//     recovers every slice to its newest persistent snapshot;
//  2. regenerates the KV bucket: the generator is deterministic from the
//     seed, so the load and the first R operations are byte for byte those
//     the earlier cycles applied, and the failovers earlier cycles injected
//     are replayed after the same operation counts. R and the failovers come
//     from the progress file, which a child extends before it applies the
//     operations or failovers it records (the page cache survives kill -9,
//     so nothing needs fsync), so the regenerated bucket always holds at
//     least what any earlier child had: every seqno the indexer persisted;
//  3. resumes the streams from the recovered vector, waits until the index
//     covers the bucket and verifies every index against the oracle,
//     reporting one line on stdout ("verified cycle=3 entries=…" or
//     "DIVERGENCE cycle=3 index …");
//  4. ingests closed loop, with persistent snapshots every 100–300 ms and KV
//     failovers (or requests with an unknown vbuuid) injected now and then
//     (each followed by a rollback, a catch-up and a verification), until
//     the parent kills it with SIGKILL at a moment drawn from the seed.
//
// While it runs, the child keeps its current activity (ingest, persist,
// rollback) in a small status file, which the parent reads after the kill to
// count kills by kind. After the last cycle a final child recovers,
// verifies and exits cleanly.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/idxbench/idxbench/coordinator"
	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/workload"
	"github.com/idxbench/idxbench/workload/upr"
)

// CrashChildEnv is set in a crash-test child's environment; a binary that
// sees it runs RunCrashChild (job on stdin) instead of its usual main.
const CrashChildEnv = "IDXBENCH_CRASH_CHILD"

// ErrCrashTest is wrapped by every error that means the crash test ran and
// found a problem (a divergence, a child that could not recover), as opposed
// to bad input.
var ErrCrashTest = errors.New("crash test failed")

// Kill kinds: what the child was doing when it was killed, as its status
// file said.
const (
	KillIngest   = "ingest"   // applying mutations, flushing, taking in-memory snapshots
	KillPersist  = "persist"  // creating or dropping a recovery point (persistent snapshot)
	KillRollback = "rollback" // a KV rollback: stream stop, engine rollback, catch-up
	KillUnknown  = "unknown"  // the status file could not be read
)

// CrashConfig configures a crash test. The zero value works except for
// Engine and Cycles.
type CrashConfig struct {
	// Engine is the engine under test; it must keep its data on disk.
	Engine string
	// Cycles is how many kill -9 → restart → verify cycles to run.
	Cycles int
	// Seed drives the workload, the kill moments and each cycle's choices.
	Seed uint64
	// Dir is where the crash test's data directory is made (claimed like
	// `idxbench run --dir`). Default: the system's temporary directory. The
	// data directory is removed at the end unless a cycle failed.
	Dir string
	// Docs is the initial document count. Default 2000.
	Docs int
	// Vbuckets is the bucket's vbucket count. Default 64.
	Vbuckets int
	// Rate is the children's ingest rate in operations per second; negative
	// means closed loop (as fast as the index keeps up). Default 5000. Every
	// child regenerates every operation earlier cycles applied, so the rate
	// bounds how each cycle's start-up grows over a long run.
	Rate float64
	// NoRollbacks turns off the KV rollbacks children inject while they
	// ingest: kill -9 and restart only.
	NoRollbacks bool
	// MinRun and MaxRun bound how long after a child reported its
	// verification it is killed. Default 100 ms and 2 s.
	MinRun, MaxRun time.Duration
	// CycleTimeout bounds a child's recovery and verification. Default 10 min.
	CycleTimeout time.Duration
	// Exe and Args are the child's command; the child runs RunCrashChild
	// when it sees CrashChildEnv. Default: this executable, no arguments.
	Exe  string
	Args []string
}

// EnsureDefaults fills zero fields with their defaults and returns c.
func (c *CrashConfig) EnsureDefaults() *CrashConfig {
	if c.Docs == 0 {
		c.Docs = 2000
	}
	if c.Vbuckets == 0 {
		c.Vbuckets = 64
	}
	if c.Rate == 0 {
		c.Rate = 5000
	}
	if c.MinRun == 0 {
		c.MinRun = 100 * time.Millisecond
	}
	if c.MaxRun == 0 {
		c.MaxRun = 2 * time.Second
	}
	if c.CycleTimeout == 0 {
		c.CycleTimeout = 10 * time.Minute
	}
	return c
}

// Validate reports the first bad field.
func (c *CrashConfig) Validate() error {
	e, err := engines.Lookup(c.Engine)
	if err != nil {
		return err
	}
	switch {
	case !e.Real:
		return fmt.Errorf("engine %q keeps nothing on disk, so nothing survives a kill -9: crash-test a disk engine", c.Engine)
	case c.Cycles < 1:
		return fmt.Errorf("cycles must be at least 1, got %d", c.Cycles)
	case c.Docs < 1:
		return fmt.Errorf("docs must be at least 1, got %d", c.Docs)
	case c.Vbuckets < 1 || c.Vbuckets > workload.MaxVbuckets:
		return fmt.Errorf("vbuckets must be in 1..%d, got %d", workload.MaxVbuckets, c.Vbuckets)
	case c.MinRun <= 0:
		return fmt.Errorf("min run %v must be positive", c.MinRun)
	case c.MaxRun < c.MinRun:
		return fmt.Errorf("max run %v is below min run %v", c.MaxRun, c.MinRun)
	case c.CycleTimeout <= 0:
		return fmt.Errorf("cycle timeout %v must be positive", c.CycleTimeout)
	}
	return nil
}

// CrashSummary is what a crash test did.
type CrashSummary struct {
	Seed   uint64
	Cycles int // cycles killed and then recovered and verified
	// Kills counts the kills by the kind of moment they landed in.
	Kills map[string]int
	// Recoveries lists each verified recovery, the final one included.
	Recoveries []CrashRecovery
	Total      time.Duration
	// Dir is the data directory, kept when the test failed.
	Dir string
}

// CrashRecovery is one child's recovery, as it reported it.
type CrashRecovery struct {
	Cycle int
	// Open is reopening the metadata and slices and restoring each slice
	// to its newest recovery point; CatchUp from resuming the streams to a
	// snapshot covering the bucket.
	Open, CatchUp time.Duration
	// Regen is the harness rebuilding the bucket (not the indexer's cost).
	Regen time.Duration
	// PersistWait is how long after the verification the child waited for
	// its first round of persistent snapshots before reporting (0 when the
	// cycle chose not to wait).
	PersistWait time.Duration
	Entries     int    // index entries verified
	Ops         uint64 // operations the bucket holds after the load
	Replayed    uint64 // mutations between the recovered vector and the bucket
	// Rollbacks is how many times resuming was answered with Rollback.
	Rollbacks int
	// Killed is how long after the verification the kill came, and Kind
	// what the child was doing then (empty for the final recovery).
	Killed time.Duration
	Kind   string
}

// MeanRecover is the mean of Open+CatchUp over the recoveries.
func (s CrashSummary) MeanRecover() time.Duration {
	if len(s.Recoveries) == 0 {
		return 0
	}
	var t time.Duration
	for _, r := range s.Recoveries {
		t += r.Open + r.CatchUp
	}
	return t / time.Duration(len(s.Recoveries))
}

// Print writes the summary's closing lines.
func (s CrashSummary) Print(w io.Writer) {
	kinds := make([]string, 0, len(s.Kills))
	for k := range s.Kills {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var kb strings.Builder
	for i, k := range kinds {
		if i > 0 {
			kb.WriteString(", ")
		}
		fmt.Fprintf(&kb, "%d during %s", s.Kills[k], k)
	}
	var open, catch time.Duration
	for _, r := range s.Recoveries {
		open += r.Open
		catch += r.CatchUp
	}
	n := max(len(s.Recoveries), 1)
	fmt.Fprintf(w, "summary: seed %d, %d cycles, kills: %s\n", s.Seed, s.Cycles, kb.String())
	fmt.Fprintf(w, "summary: mean recover %s (open %s + catch-up %s) over %d recoveries; total time %s\n",
		round(s.MeanRecover()), round(open/time.Duration(n)), round(catch/time.Duration(n)), len(s.Recoveries), round(s.Total))
}

func round(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}

// DivergenceError is an index that differed from the oracle after a
// recovery or a rollback.
type DivergenceError struct {
	Seed   uint64
	Cycle  int
	Detail string // which index, which entries
	Dir    string // the kept data directory
}

func (e *DivergenceError) Error() string {
	return fmt.Sprintf("divergence at cycle %d (seed %d): %s", e.Cycle, e.Seed, e.Detail)
}

func (e *DivergenceError) Unwrap() error { return ErrCrashTest }

// crashJob is what the parent sends a child.
type crashJob struct {
	Engine   string  `json:"engine"`
	Dir      string  `json:"dir"`
	Seed     uint64  `json:"seed"`
	Docs     int     `json:"docs"`
	Vbuckets int     `json:"vbuckets"`
	Rate     float64 `json:"rate"`
	Cycle    int     `json:"cycle"`
	// NoRollbacks: inject no KV rollback.
	NoRollbacks bool `json:"no_rollbacks,omitempty"`
	// CatchUp bounds each wait for the index to cover the bucket.
	CatchUp time.Duration `json:"catch_up"`
	// Final: recover, verify and exit cleanly instead of ingesting.
	Final bool `json:"final,omitempty"`
}

// Files in the crash test's data directory, beside the pipeline's.
const (
	crashProgressFile = "crash-progress.json"
	crashStatusFile   = "crash-status"
	crashLogFile      = "children.log" // every child's stderr, appended
	crashPipelineDir  = "pipeline"
)

// RunCrashTest runs cfg's cycles, printing the seed first, then a line per
// cycle and the summary to out. It stops at the first divergence (a
// *DivergenceError) or child failure (wrapping ErrCrashTest), keeping the
// data directory; bad configuration returns an error wrapping neither.
func RunCrashTest(ctx context.Context, cfg CrashConfig, out io.Writer) (CrashSummary, error) {
	start := time.Now()
	cfg.EnsureDefaults()
	sum := CrashSummary{Seed: cfg.Seed, Kills: map[string]int{}}
	if err := cfg.Validate(); err != nil {
		return sum, err
	}
	if cfg.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return sum, fmt.Errorf("find this executable to run children: %w", err)
		}
		cfg.Exe = exe
	}
	parent := cfg.Dir
	if parent == "" {
		parent = os.TempDir()
	} else if _, err := claimDataDir(parent); err != nil {
		return sum, err
	}
	dir, err := makeOwnedDir(parent, "idxbench-crash-"+cfg.Engine+"-")
	if err != nil {
		return sum, fmt.Errorf("crash test data dir under %s: %w", parent, err)
	}
	sum.Dir = dir
	fmt.Fprintf(out, "seed: %d\n", cfg.Seed)
	rate := "closed loop"
	if cfg.Rate > 0 {
		rate = fmt.Sprintf("%g ops/s", cfg.Rate)
	}
	if cfg.NoRollbacks {
		rate += ", no injected rollbacks"
	}
	fmt.Fprintf(out, "crashtest: engine %s, %d cycles, %d docs, %d vbuckets, ingest %s, kill %s–%s after each verification, data in %s\n",
		cfg.Engine, cfg.Cycles, cfg.Docs, cfg.Vbuckets, rate, cfg.MinRun, cfg.MaxRun, dir)

	// The kill moments come from their own stream, so they do not depend
	// on anything a child does.
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6b696c6c)) // "kill"
	job := crashJob{Engine: cfg.Engine, Dir: dir, Seed: cfg.Seed, Docs: cfg.Docs, Vbuckets: cfg.Vbuckets, Rate: cfg.Rate,
		NoRollbacks: cfg.NoRollbacks, CatchUp: cfg.CycleTimeout / 2}
	for cycle := 1; cycle <= cfg.Cycles+1; cycle++ {
		job.Cycle, job.Final = cycle, cycle > cfg.Cycles
		delay := cfg.MinRun + time.Duration(rng.Int64N(int64(cfg.MaxRun-cfg.MinRun)+1))
		if job.Final {
			delay = 0
		}
		rec, err := runCrashCycle(ctx, cfg, job, delay)
		if err != nil {
			sum.Total = time.Since(start)
			var div *DivergenceError
			if errors.As(err, &div) {
				div.Seed, div.Dir = cfg.Seed, dir
			}
			if ctx.Err() != nil {
				// Interrupted: nothing was found, so nothing is kept.
				removeOwnedDir(dir)
				return sum, ctx.Err()
			}
			fmt.Fprintf(out, "cycle %d: FAILED: %v\n", cycle, err)
			fmt.Fprintf(out, "seed: %d; data kept in %s\n", cfg.Seed, dir)
			return sum, err
		}
		sum.Recoveries = append(sum.Recoveries, rec)
		if job.Final {
			fmt.Fprintf(out, "final: verified %d entries after recovery (open %s, catch-up %s, %d replayed, %d ops); clean exit\n",
				rec.Entries, round(rec.Open), round(rec.CatchUp), rec.Replayed, rec.Ops)
			break
		}
		sum.Cycles++
		sum.Kills[rec.Kind]++
		fmt.Fprintf(out, "cycle %d/%d: verified %d entries (open %s, catch-up %s, %d replayed, %d resume rollbacks, %d ops, regen %s, persist wait %s); killed %s later during %s\n",
			cycle, cfg.Cycles, rec.Entries, round(rec.Open), round(rec.CatchUp), rec.Replayed, rec.Rollbacks, rec.Ops,
			round(rec.Regen), round(rec.PersistWait), round(rec.Killed), rec.Kind)
	}
	sum.Total = time.Since(start)
	sum.Print(out)
	if err := removeOwnedDir(dir); err != nil {
		return sum, fmt.Errorf("remove crash test data dir: %w", err)
	}
	sum.Dir = ""
	return sum, nil
}

// runCrashCycle runs one child: waits for its verification, then kills it
// delay later (or, for the final cycle, waits for its clean exit).
func runCrashCycle(ctx context.Context, cfg CrashConfig, job crashJob, delay time.Duration) (CrashRecovery, error) {
	rec := CrashRecovery{Cycle: job.Cycle}
	in, err := json.Marshal(job)
	if err != nil {
		return rec, err
	}
	cmd := exec.Command(cfg.Exe, cfg.Args...)
	cmd.Env = append(os.Environ(), CrashChildEnv+"=1")
	cmd.Stdin = bytes.NewReader(in)
	stderr := &tailBuffer{max: 16 << 10}
	logf, err := os.OpenFile(filepath.Join(job.Dir, crashLogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return rec, fmt.Errorf("children's log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- cycle %d ---\n", job.Cycle)
	cmd.Stderr = io.MultiWriter(logf, stderr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return rec, err
	}
	if err := cmd.Start(); err != nil {
		return rec, fmt.Errorf("start child: %w", err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// finish kills the child (if it still runs), drains its output and
	// reaps it.
	var rest []string
	finish := func(kill bool) error {
		if kill {
			cmd.Process.Signal(syscall.SIGKILL)
		}
		for l := range lines {
			rest = append(rest, l)
		}
		return cmd.Wait()
	}
	// hung asks a stuck child for its goroutines (a Go program dumps them
	// on SIGQUIT, into the children's log) before killing it.
	hung := func() error {
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case l, ok := <-lines:
			if ok {
				rest = append(rest, l)
			}
		case <-time.After(5 * time.Second):
		}
		return finish(true)
	}
	// died describes a child that ended on its own: a divergence it
	// reported, or its error.
	died := func(what string, werr error) error {
		for _, l := range rest {
			if detail, ok := strings.CutPrefix(l, "DIVERGENCE "); ok {
				detail = strings.TrimPrefix(detail, fmt.Sprintf("cycle=%d ", job.Cycle))
				return &DivergenceError{Cycle: job.Cycle, Detail: detail}
			}
		}
		return fmt.Errorf("%w: cycle %d: the child %s (%v): %s", ErrCrashTest, job.Cycle, what, werr, stderr.tail(4<<10))
	}

	timeout := time.NewTimer(cfg.CycleTimeout)
	defer timeout.Stop()
	var verified string
	for verified == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				return rec, died("exited before reporting a verification", finish(false))
			}
			if strings.HasPrefix(l, "verified ") {
				verified = l
			} else {
				rest = append(rest, l)
			}
		case <-timeout.C:
			return rec, died(fmt.Sprintf("did not verify within %s; its goroutines are in %s", cfg.CycleTimeout,
				filepath.Join(job.Dir, crashLogFile)), hung())
		case <-ctx.Done():
			finish(true)
			return rec, ctx.Err()
		}
	}
	if err := parseVerified(verified, &rec); err != nil {
		finish(true)
		return rec, fmt.Errorf("%w: cycle %d: %v", ErrCrashTest, job.Cycle, err)
	}
	verifiedAt := time.Now()

	if job.Final {
		select {
		case <-timeout.C:
			return rec, died("did not exit after its final verification", hung())
		case <-ctx.Done():
			finish(true)
			return rec, ctx.Err()
		case err := <-waitAsync(finish):
			if err != nil {
				return rec, died("failed after its final verification", err)
			}
			return rec, nil
		}
	}

	kill := time.NewTimer(delay)
	defer kill.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return rec, died("exited by itself before the kill", finish(false))
			}
			rest = append(rest, l)
			if strings.HasPrefix(l, "DIVERGENCE ") {
				return rec, died("reported a divergence", finish(false))
			}
		case <-kill.C:
			rec.Killed = time.Since(verifiedAt)
			finish(true)
			rec.Kind = readKillKind(filepath.Join(job.Dir, crashStatusFile))
			if slices.ContainsFunc(rest, func(l string) bool { return strings.HasPrefix(l, "DIVERGENCE ") }) {
				return rec, died("reported a divergence", errors.New("killed"))
			}
			return rec, nil
		case <-ctx.Done():
			finish(true)
			return rec, ctx.Err()
		}
	}
}

func waitAsync(finish func(bool) error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- finish(false) }()
	return ch
}

// parseVerified reads a child's "verified k=v …" line.
func parseVerified(line string, rec *CrashRecovery) error {
	for _, f := range strings.Fields(strings.TrimPrefix(line, "verified ")) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "entries":
			rec.Entries, err = strconv.Atoi(v)
		case "ops":
			rec.Ops, err = strconv.ParseUint(v, 10, 64)
		case "replayed":
			rec.Replayed, err = strconv.ParseUint(v, 10, 64)
		case "rollbacks":
			rec.Rollbacks, err = strconv.Atoi(v)
		case "open", "catchup", "regen", "persist_wait":
			var d time.Duration
			d, err = time.ParseDuration(v)
			switch k {
			case "open":
				rec.Open = d
			case "catchup":
				rec.CatchUp = d
			case "regen":
				rec.Regen = d
			default:
				rec.PersistWait = d
			}
		}
		if err != nil {
			return fmt.Errorf("child's report %q: %s: %w", line, k, err)
		}
	}
	return nil
}

func readKillKind(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return KillUnknown
	}
	if s := strings.TrimSpace(string(data)); s != "" {
		return s
	}
	return KillUnknown
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) tail(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b
	if len(b) > n {
		b = b[len(b)-n:]
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(no output on stderr)"
	}
	return s
}

// ---- the child ----

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
	}
	pcfg.opts.EnsureDefaults()
	coord, err := coordinator.Open(pcfg.dir)
	if err != nil {
		return err
	}
	fresh := len(coord.Instances()) == 0
	var open time.Duration
	var from *upr.TsVbuuid
	start := time.Now()
	if fresh {
		if c.p, err = newPipeline(pcfg); err != nil {
			return err
		}
		from = upr.NewTsVbuuid(c.p.spec.Vbuckets)
	} else {
		if c.p, from, err = reopenPipeline(pcfg); err != nil {
			return err
		}
	}
	open = time.Since(start)

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
		fmt.Fprintf(c.out, "verified cycle=%d entries=%d open=%s catchup=%s regen=%s ops=%d replayed=%d rollbacks=%d persist_wait=%s\n",
			c.job.Cycle, entries, open, catchUp, regen, c.applied, replayed, rollbacks, time.Since(verified))
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
	p, err := openNodes(cfg)
	if err != nil {
		return nil, nil, err
	}
	insts, defns := activeDefns(p.coord)
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
// the progress file's operations with its failovers at their places.
func (c *crashChild) regenerate() error {
	kv := c.p.kv
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
		for range chunk {
			p.kv.Apply(p.kv.Next())
			c.applied++
		}
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
			if err := p.kv.Failover(vb, fo.Branch); err != nil {
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

// activity is the child's status file: what it is doing now, one word,
// rewritten in place with a single write so a kill never tears it.
type activity struct {
	mu       sync.Mutex
	f        *os.File
	base     string
	persists int // recovery points being created or dropped
	last     string
}

func openActivity(path string) (*activity, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("crash status file: %w", err)
	}
	return &activity{f: f}, nil
}

func (a *activity) set(base string) {
	a.mu.Lock()
	a.base = base
	a.writeLocked()
	a.mu.Unlock()
}

func (a *activity) persist(delta int) {
	a.mu.Lock()
	a.persists += delta
	a.writeLocked()
	a.mu.Unlock()
}

func (a *activity) writeLocked() {
	s := a.base
	if s == KillIngest && a.persists > 0 {
		s = KillPersist
	}
	if s == a.last {
		return
	}
	a.last = s
	var buf [16]byte
	copy(buf[:], s)
	for i := len(s); i < len(buf)-1; i++ {
		buf[i] = ' '
	}
	buf[len(buf)-1] = '\n'
	a.f.WriteAt(buf[:], 0)
}

func (a *activity) close() error { return a.f.Close() }

// trackedEngine wraps e so the status file says "persist" while a recovery
// point is being created or dropped.
func trackedEngine(e engines.Engine, a *activity) engines.Engine {
	return engines.WrapStores(e, func(_ string, s engines.Store) engines.Store {
		return &trackedStore{Store: s, a: a}
	})
}

type trackedStore struct {
	engines.Store
	a *activity
}

func (s *trackedStore) CreateRecoveryPoint(id uint64, meta []byte) error {
	s.a.persist(1)
	defer s.a.persist(-1)
	return s.Store.CreateRecoveryPoint(id, meta)
}

func (s *trackedStore) DropRecoveryPoint(id uint64) error {
	s.a.persist(1)
	defer s.a.persist(-1)
	return s.Store.DropRecoveryPoint(id)
}
