package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/idxbench/idxbench/harness"
)

const runSynopsis = "[--engine a,b] [--scenario NAME|FILE] [--dir D1,D2] [--cores 1,2] [--repeat N] [--seed N] [--docs N] [--vbuckets N] [--duration T] [--out DIR] [--metrics-addr ADDR] [--verify] [--print-spec] [--inject-slowdown P%] [--cpuprofile] [--topology inproc|procs] [--etcd ENDPOINTS] [--attach PREFIX] [--no-space-check]"

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runScenario(ctx, newFlagSet("run"), runSynopsis, "default", nil, args, stdout, stderr)
}

// runScenario is run and the commands that are run with a scenario of
// their own (capacity): fs may hold the command's own flags already, and
// extra, when set, applies them to the configuration after run's flags.
func runScenario(ctx context.Context, fs *flag.FlagSet, synopsis, defaultScenario string, extra func(*harness.RunConfig) error,
	args []string, stdout, stderr io.Writer) error {
	name := fs.Name()
	config := runFlags(fs, defaultScenario)
	printSpec := fs.Bool("print-spec", false, "print the effective scenario and workload spec and exit")
	pos, err := parseFlags(fs, synopsis, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%s: unexpected argument %q", name, pos[0])
	}
	cfg, err := config()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if extra != nil {
		if err := extra(&cfg); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	p, err := harness.Prepare(cfg)
	if err != nil {
		return err
	}
	if *printSpec {
		return p.PrintSpec(stdout)
	}
	_, err = p.Run(ctx, stdout, stderr)
	if errors.Is(err, harness.ErrVerification) || ctx.Err() != nil {
		return failure(err)
	}
	return err
}

// runFlags defines on fs the flags that shape a run (run, capacity and ab
// share them) and returns the function that reads them into a RunConfig
// after parsing.
func runFlags(fs *flag.FlagSet, defaultScenario string) func() (harness.RunConfig, error) {
	var (
		engineList  = fs.String("engine", "", "comma-separated `engines` (default: every real engine)")
		scenario    = fs.String("scenario", defaultScenario, "built-in scenario `name` or a scenario YAML file")
		dirList     = fs.String("dir", "", "comma-separated data `dirs`, one per disk (default: a temporary directory)")
		coreList    = fs.String("cores", "", "comma-separated core `counts` (default: all available cores)")
		repeat      = fs.Int("repeat", 1, "run each cell this many times")
		seed        = fs.String("seed", "", "workload seed, an integer `N` ≥ 0 (default: the scenario's)")
		docs        = fs.String("docs", "", "initial document count `N` (default: the scenario's)")
		vbuckets    = fs.String("vbuckets", "", "vbucket count `N` in 1..1024 (default: the scenario's)")
		duration    = fs.Duration("duration", 0, "length of each timed ingest and scan phase (default: the scenario's)")
		out         = fs.String("out", "", "results `dir` (default: results-<timestamp>)")
		metricsAddr = fs.String("metrics-addr", "", "serve Prometheus metrics at this `addr` (loopback unless a host is named)")
		verify      = fs.Bool("verify", true, "verify every index against the oracle; exit 1 if any differs")
		quiet       = fs.Bool("quiet", false, "no per-second tick lines")
		slowdown    = fs.String("inject-slowdown", "", "make every engine batch this much slower, a `percent` like 10%, to check that compare catches a regression")
		cpuProfile  = fs.Bool("cpuprofile", false, "write a CPU profile of every phase of every cell to OUT/profiles (go tool pprof)")
		etcdList    = fs.String("etcd", "", "procs topology: comma-separated `endpoints` of an existing etcd cluster for the metadata and node registry (default: an embedded etcd member per cell, in a process of its own)")
		attach      = fs.String("attach", "", "procs topology with --etcd: drive the cluster of nodes started by hand (idxbench node on each host) registered under this etcd `prefix`, instead of starting nodes")
		noSpace     = fs.Bool("no-space-check", false, "run even when a data dir's free space is below the scenario's estimated footprint (a rough estimate)")
		topology    = fs.String("topology", "inproc", "`inproc|procs`: inproc, a cell's nodes in one process; procs: a KV node and an index node process each, on loopback, pinned to their own CPUs")
	)
	return func() (harness.RunConfig, error) {
		cfg := harness.RunConfig{
			Scenario: *scenario, Repeat: *repeat, Out: *out, Verify: *verify,
			MetricsAddr: *metricsAddr, Quiet: *quiet, CPUProfile: *cpuProfile, Topology: *topology,
			NoSpaceCheck: *noSpace, Attach: *attach,
		}
		cfg.Engines = splitList(*engineList)
		cfg.Etcd = splitList(*etcdList)
		cfg.Dirs = splitList(*dirList)
		for _, c := range splitList(*coreList) {
			n, err := strconv.Atoi(c)
			if err != nil {
				return cfg, fmt.Errorf("--cores: %q is not a number", c)
			}
			cfg.Cores = append(cfg.Cores, n)
		}
		var err error
		if cfg.Overrides, err = parseOverrides(*seed, *docs, *vbuckets); err != nil {
			return cfg, err
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if *duration < 0 || (set["duration"] && *duration == 0) {
			return cfg, fmt.Errorf("--duration %s: want a positive duration (leave it out for the scenario's)", *duration)
		}
		if *repeat < 1 {
			return cfg, fmt.Errorf("--repeat %d: want at least 1", *repeat)
		}
		cfg.Overrides.Duration = *duration
		if *slowdown != "" {
			v, err := parseFraction("inject-slowdown", *slowdown)
			if err != nil {
				return cfg, err
			}
			cfg.Slowdown = v
		}
		return cfg, nil
	}
}

func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(p))
	}
	return out
}

func optionalInt(name, s string) (*int, error) {
	if s == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return nil, fmt.Errorf("--%s: %q is not an integer", name, s)
	}
	return &n, nil
}

// parseOverrides parses the workload flags run and node share.
func parseOverrides(seed, docs, vbuckets string) (harness.Overrides, error) {
	var o harness.Overrides
	if seed != "" {
		v, err := strconv.ParseUint(seed, 10, 64)
		if err != nil {
			return o, fmt.Errorf("--seed: %q is not a non-negative integer", seed)
		}
		o.Seed = &v
	}
	var err error
	if o.Docs, err = optionalInt("docs", docs); err != nil {
		return o, err
	}
	o.Vbuckets, err = optionalInt("vbuckets", vbuckets)
	return o, err
}
