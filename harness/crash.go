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

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/workload"
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
	// VerifyOnOpen is the indexer's check of every slice when a child
	// reopens it after the kill: indexer.VerifyNone (default),
	// VerifyQuick or VerifyFull. A slice that fails is rebuilt from zero
	// (the child logs it naming the slice) and the cycle's verification
	// then checks the rebuilt index against the oracle.
	VerifyOnOpen string
	// Topology is TopologyInproc (default: each child is the whole
	// pipeline, and regenerates the bucket) or TopologyProcs: a KV node
	// process runs for the whole test, each child is the index node alone
	// (pinned apart from it), and a kill takes down the index node only,
	// which restarts and reconnects its streams to the running KV node.
	Topology string
	// Damage, when DamageTruncate, cuts the largest file of one store
	// (chosen from the seed) to half its size after each kill, before the
	// next child restarts: the restart must rebuild that slice from zero
	// (reported as slices rebuilt) or restore past the damage, and verify
	// like any other. Default "": no damage.
	Damage string
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
	if c.VerifyOnOpen == "" {
		c.VerifyOnOpen = indexer.VerifyNone
	}
	return c
}

// Validate reports the first bad field.
func (c *CrashConfig) Validate() error {
	switch c.Topology {
	case "", TopologyInproc, TopologyProcs:
	default:
		return fmt.Errorf("topology %q: want inproc or procs", c.Topology)
	}
	switch c.VerifyOnOpen {
	case "", indexer.VerifyNone, indexer.VerifyQuick, indexer.VerifyFull:
	default:
		return fmt.Errorf("verify on open %q: want none, quick or full", c.VerifyOnOpen)
	}
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
	case c.Damage != "" && c.Damage != DamageTruncate:
		return fmt.Errorf("damage %q: want %s or none", c.Damage, DamageTruncate)
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
	// Rebuilt is how many slices the recovery found damaged and rebuilt
	// from zero.
	Rebuilt int64
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
	// KV, when set, is the admin address of the KV node process the
	// parent runs for the whole test (procs topology): the child is the
	// index node alone, and what a kill takes down.
	KV string `json:"kv,omitempty"`
	// VerifyOnOpen is CrashConfig.VerifyOnOpen.
	VerifyOnOpen string `json:"verify_on_open,omitempty"`
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
		NoRollbacks: cfg.NoRollbacks, CatchUp: cfg.CycleTimeout / 2, VerifyOnOpen: cfg.VerifyOnOpen}
	var childCPUs []int
	if cfg.Topology == TopologyProcs {
		kvp, cpus, stop, err := startCrashKV(ctx, cfg, dir)
		if err != nil {
			removeOwnedDir(dir)
			return sum, err
		}
		defer stop()
		job.KV, childCPUs = kvp.addrs["admin"], cpus
		fmt.Fprintf(out, "crashtest: KV node pid %d on CPUs %v at %s; index node children on CPUs %v\n",
			kvp.pid, kvp.cpus, job.KV, childCPUs)
	}
	// The damage has a stream of its own too.
	drng := rand.New(rand.NewPCG(cfg.Seed, 0x64616d67)) // "damg"
	for cycle := 1; cycle <= cfg.Cycles+1; cycle++ {
		job.Cycle, job.Final = cycle, cycle > cfg.Cycles
		delay := cfg.MinRun + time.Duration(rng.Int64N(int64(cfg.MaxRun-cfg.MinRun)+1))
		if job.Final {
			delay = 0
		}
		if cycle > 1 && cfg.Damage == DamageTruncate {
			what, err := truncateStoreFile(dir, drng)
			if err != nil {
				fmt.Fprintf(out, "cycle %d: FAILED: %v\n", cycle, err)
				return sum, fmt.Errorf("%w: %v", ErrCrashTest, err)
			}
			fmt.Fprintf(out, "cycle %d: before the restart, %s\n", cycle, what)
		}
		rec, err := runCrashCycle(ctx, cfg, job, delay, childCPUs)
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
			rebuilt := ""
			if rec.Rebuilt > 0 {
				rebuilt = fmt.Sprintf(", %d damaged slices rebuilt", rec.Rebuilt)
			}
			fmt.Fprintf(out, "final: verified %d entries after recovery (open %s, catch-up %s, %d replayed, %d ops%s); clean exit\n",
				rec.Entries, round(rec.Open), round(rec.CatchUp), rec.Replayed, rec.Ops, rebuilt)
			break
		}
		sum.Cycles++
		sum.Kills[rec.Kind]++
		rebuilt := ""
		if rec.Rebuilt > 0 {
			rebuilt = fmt.Sprintf(", %d damaged slices rebuilt", rec.Rebuilt)
		}
		fmt.Fprintf(out, "cycle %d/%d: verified %d entries (open %s, catch-up %s, %d replayed, %d resume rollbacks, %d ops, regen %s, persist wait %s%s); killed %s later during %s\n",
			cycle, cfg.Cycles, rec.Entries, round(rec.Open), round(rec.CatchUp), rec.Replayed, rec.Rollbacks, rec.Ops,
			round(rec.Regen), round(rec.PersistWait), rebuilt, round(rec.Killed), rec.Kind)
	}
	sum.Total = time.Since(start)
	sum.Print(out)
	if err := removeOwnedDir(dir); err != nil {
		return sum, fmt.Errorf("remove crash test data dir: %w", err)
	}
	sum.Dir = ""
	return sum, nil
}

// startCrashKV starts the procs-topology crash test's KV node process, for
// the whole test, on the CPUs the children do not get; its bucket is the
// crash test's workload. It returns the process, the children's CPUs and
// a function that stops the process.
func startCrashKV(ctx context.Context, cfg CrashConfig, dir string) (*nodeProc, []int, func(), error) {
	indexCPUs, kvCPUs, err := NodeCPUs(1)
	if err != nil {
		return nil, nil, nil, err
	}
	seed, docs, vbuckets := cfg.Seed, cfg.Docs, cfg.Vbuckets
	job := NodeJob{Role: RoleKV, Scenario: []byte("name: crashtest\nphases:\n  - type: load\n"),
		Overrides: Overrides{Seed: &seed, Docs: &docs, Vbuckets: &vbuckets}}
	// The KV node's stderr goes to the children's log.
	logf, err := os.OpenFile(filepath.Join(dir, crashLogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("children's log: %w", err)
	}
	kvp, err := startNode(ctx, cfg.Exe, job, kvCPUs, logf)
	if err != nil {
		logf.Close()
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrCrashTest, err)
	}
	return kvp, indexCPUs, func() {
		kvp.stop(time.Minute)
		logf.Close()
	}, nil
}

// runCrashCycle runs one child: waits for its verification, then kills it
// delay later (or, for the final cycle, waits for its clean exit).
func runCrashCycle(ctx context.Context, cfg CrashConfig, job crashJob, delay time.Duration, cpus []int) (CrashRecovery, error) {
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
	start := cmd.Start
	if len(cpus) > 0 {
		start = func() error { return startPinnedTo(cmd, cpus) }
	}
	if err := start(); err != nil {
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
		case "rebuilt":
			rec.Rebuilt, err = strconv.ParseInt(v, 10, 64)
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
