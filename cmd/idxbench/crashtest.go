package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/idxbench/idxbench/harness"
)

const crashtestSynopsis = "--engine E --cycles N [--seed S] [--dir D] [--docs N] [--vbuckets N] [--rate 5000] [--rollbacks=false] [--min-run 100ms] [--max-run 2s] [--topology inproc|procs] [--damage truncate]"

// cmdCrashtest runs the kill -9 / restart / verify loop. The children it
// starts are this same executable with harness.CrashChildEnv set; such a
// child arrives here too (main dispatches on the subcommand it was given)
// and runs the child's side instead.
func cmdCrashtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if os.Getenv(harness.CrashChildEnv) != "" {
		return harness.RunCrashChild(ctx, os.Stdin, stdout)
	}
	fs := newFlagSet("crashtest")
	var (
		engine    = fs.String("engine", "", "the engine to crash-test (a disk engine: pebble, badger, bbolt)")
		cycles    = fs.Int("cycles", 0, "kill -9 → restart → verify cycles to run")
		seed      = fs.String("seed", "1", "seed of the workload, the kill moments and each cycle's choices")
		dir       = fs.String("dir", "", "directory to make the data directory in (default: the system's temporary directory)")
		docs      = fs.Int("docs", 2000, "initial document count")
		vbuckets  = fs.Int("vbuckets", 64, "vbucket count 1..1024")
		rate      = fs.Float64("rate", 5000, "each child's ingest rate, operations per second (0: closed loop)")
		rollbacks = fs.Bool("rollbacks", true, "children inject KV rollbacks (failovers, unknown vbuuids) while they ingest")
		minRun    = fs.Duration("min-run", 0, "least time between a child's verification and its kill (default 100ms)")
		maxRun    = fs.Duration("max-run", 0, "most time between a child's verification and its kill (default 2s)")
		damage    = fs.String("damage", "", "truncate: after each kill, cut the largest file of one store (chosen from the seed) to half its size before the restart, which must rebuild that slice or restore past it, and verify")
		verify    = fs.String("verify-on-open", "none", "none|quick|full: the indexer's check of every slice when a child reopens it after a kill (a slice that fails is rebuilt from zero)")
		topology  = fs.String("topology", "inproc", "inproc: each child is the whole pipeline; procs: a KV node process runs throughout and each child, the index node alone, reconnects to it")
	)
	pos, err := parseFlags(fs, crashtestSynopsis, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("crashtest: unexpected argument %q", pos[0])
	}
	if *engine == "" {
		return errors.New("crashtest: --engine is required")
	}
	if *cycles == 0 {
		return errors.New("crashtest: --cycles is required")
	}
	s, err := strconv.ParseUint(*seed, 10, 64)
	if err != nil {
		return fmt.Errorf("crashtest: --seed: %q is not a non-negative integer", *seed)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"min-run", *minRun}, {"max-run", *maxRun}} {
		// 0 is the flag's "default" and would be replaced in silence.
		if d.v < 0 || (set[d.name] && d.v == 0) {
			return fmt.Errorf("crashtest: --%s %s: want a positive duration (leave it out for the default)", d.name, d.v)
		}
	}
	// Zero would silently mean the harness default; the flags already
	// show theirs.
	if *docs < 1 {
		return fmt.Errorf("crashtest: --docs %d: docs must be at least 1", *docs)
	}
	if *vbuckets < 1 || *vbuckets > 1024 {
		return fmt.Errorf("crashtest: --vbuckets %d: vbuckets must be in 1..1024", *vbuckets)
	}
	if *rate < 0 {
		return fmt.Errorf("crashtest: --rate %g is negative", *rate)
	}
	if *rate == 0 {
		*rate = -1 // closed loop
	}
	cfg := harness.CrashConfig{
		Engine: *engine, Cycles: *cycles, Seed: s, Dir: *dir, Docs: *docs, Vbuckets: *vbuckets,
		Rate: *rate, NoRollbacks: !*rollbacks, MinRun: *minRun, MaxRun: *maxRun, Args: []string{"crashtest"},
		Topology: *topology, Damage: *damage, VerifyOnOpen: *verify,
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("crashtest: %w", err)
	}
	_, err = harness.RunCrashTest(ctx, cfg, stdout)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, harness.ErrCrashTest):
		fmt.Fprintf(stdout, "rerun: idxbench crashtest %s\n", rerunArgs(cfg, *dir))
		return failure(err)
	case ctx.Err() != nil:
		return failure(err)
	}
	return fmt.Errorf("crashtest: %w", err)
}

// rerunArgs are the flags that repeat a crash test. The plan (workload,
// kill delays, each cycle's choices) repeats exactly; where a kill lands
// depends on timing.
func rerunArgs(cfg harness.CrashConfig, dir string) string {
	a := []string{
		"--engine", cfg.Engine, "--cycles", strconv.Itoa(cfg.Cycles), "--seed", strconv.FormatUint(cfg.Seed, 10),
		"--docs", strconv.Itoa(cfg.Docs), "--vbuckets", strconv.Itoa(cfg.Vbuckets), "--rate", strconv.FormatFloat(max(cfg.Rate, 0), 'g', -1, 64),
		"--min-run", cfg.MinRun.String(), "--max-run", cfg.MaxRun.String(),
	}
	if cfg.NoRollbacks {
		a = append(a, "--rollbacks=false")
	}
	if cfg.Damage != "" {
		a = append(a, "--damage", cfg.Damage)
	}
	if cfg.VerifyOnOpen != "" && cfg.VerifyOnOpen != "none" {
		a = append(a, "--verify-on-open", cfg.VerifyOnOpen)
	}
	if dir != "" {
		a = append(a, "--dir", dir)
	}
	return strings.Join(a, " ")
}
