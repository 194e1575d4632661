package main

import (
	"context"
	"io"

	"github.com/idxbench/idxbench/harness"
)

const capacitySynopsis = "[--slo-lag D] [--slo-scan D] [--step D] [--bound D] [--start-rate R] [--max-rate R] " +
	"[run's flags: --engine a,b --dir D1,D2 --cores 1,2 --repeat N --docs N --out DIR --scenario NAME|FILE …]"

// cmdCapacity is `idxbench run --scenario capacity` with the SLO and the
// search's bounds as flags: a search, on every cell, for the highest
// ingest rate that meets the SLO (see the capacity phase).
func cmdCapacity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("capacity")
	var (
		lag       = fs.Duration("slo-lag", 0, "index lag p99 each step must stay within (default: the scenario's, 1s in the built-in one)")
		scan      = fs.Duration("slo-scan", 0, "request_plus scan p99 each step must stay within; scans run only when set (default: none)")
		step      = fs.Duration("step", 0, "length of one step at one rate (default: the scenario's, 10s in the built-in one)")
		bound     = fs.Duration("bound", 0, "longest a search may take in one cell (default: the scenario's, 10m in the built-in one)")
		startRate = fs.Float64("start-rate", 0, "first rate tried, mutations/s (default: the scenario's)")
		maxRate   = fs.Float64("max-rate", 0, "highest rate tried, mutations/s (default: no limit)")
	)
	return runScenario(ctx, fs, capacitySynopsis, "capacity", func(cfg *harness.RunConfig) error {
		o := &harness.CapacityOverrides{LagP99: *lag, ScanP99: *scan, Step: *step, Bound: *bound, StartRate: *startRate, MaxRate: *maxRate}
		if err := o.Validate(); err != nil {
			return err
		}
		if err := harness.CheckCapacityScenario(cfg.Scenario, o); err != nil {
			return err
		}
		cfg.Overrides.Capacity = o
		return nil
	}, args, stdout, stderr)
}
