package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/idxbench/idxbench/harness"
	"github.com/idxbench/idxbench/results"
)

const abSynopsis = "--old BIN --new BIN [--threshold 5%] [--alpha 0.05] [--metrics a,b] [--inject-slowdown-new P%] [run flags: --engine, --scenario, --repeat N, …]"

// cmdAB runs one matrix whose cells alternate between two idxbench
// binaries (old, new, old, new, …), so load on a shared machine and drift
// over the run fall on both sides alike, then compares the sides as
// `compare` would: exit 1 on a significant regression or a failed cell, 2
// on bad input.
func cmdAB(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ab")
	oldBin := fs.String("old", "", "the baseline idxbench `binary`")
	newBin := fs.String("new", "", "the idxbench `binary` under test")
	threshold := fs.String("threshold", "5%", "smallest change of a median that counts as a regression (5% or 0.05)")
	alpha := fs.Float64("alpha", 0.05, "significance level of the Mann-Whitney U test")
	metrics := fs.String("metrics", "", "compare only these metrics: comma-separated names or patterns (scan_*_ms)")
	newSlowdown := fs.String("inject-slowdown-new", "", "make the new side's engine batches this much slower, a `percent` like 10%, to measure how often ab catches a regression of that size")
	config := runFlags(fs, "default")
	pos, err := parseFlags(fs, abSynopsis, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("ab: unexpected argument %q", pos[0])
	}
	if *oldBin == "" || *newBin == "" {
		return errors.New("ab: give both --old BIN and --new BIN")
	}
	thr, err := parseThreshold(*threshold)
	if err != nil {
		return fmt.Errorf("ab: %w", err)
	}
	if !(*alpha > 0 && *alpha < 1) {
		return fmt.Errorf("ab: --alpha %v out of range (0,1)", *alpha)
	}
	opts := results.CompareOptions{Threshold: thr, Alpha: *alpha, Metrics: splitList(*metrics)}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("ab: %w", err)
	}
	cfg, err := config()
	if err != nil {
		return fmt.Errorf("ab: %w", err)
	}
	cfg.Sides = []harness.Side{{Label: "old", Executable: abs(*oldBin)}, {Label: "new", Executable: abs(*newBin)}}
	if *newSlowdown != "" {
		if cfg.Sides[1].Slowdown, err = parseFraction("inject-slowdown-new", *newSlowdown); err != nil {
			return fmt.Errorf("ab: %w", err)
		}
	}
	p, err := harness.Prepare(cfg)
	if err != nil {
		return fmt.Errorf("ab: %w", err)
	}
	runs, runErr := p.RunAB(ctx, stdout, stderr)
	if ctx.Err() != nil {
		return failure(runErr)
	}
	if len(runs) != 2 {
		return runErr
	}
	cmp, err := results.Compare(runs[:1], runs[1:], opts)
	if err != nil {
		if runErr != nil {
			return failure(runErr)
		}
		return fmt.Errorf("ab: compare: %w", err)
	}
	fmt.Fprintf(stdout, "\nold: %s\nnew: %s\n\n", *oldBin, *newBin)
	if err := cmp.WriteTable(stdout); err != nil {
		return err
	}
	switch {
	case runErr != nil && errors.Is(runErr, harness.ErrVerification):
		return failure(runErr)
	case runErr != nil:
		return runErr
	case cmp.Regressions > 0:
		return failure(fmt.Errorf("%d significant regression(s) of new against old", cmp.Regressions))
	}
	return nil
}

// abs makes a binary's path absolute, so the cells (which run in other
// working directories) find it, and a bare name is not looked up in PATH.
func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil && !strings.HasPrefix(p, "~") {
		return a
	}
	return p
}
