package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/idxbench/idxbench/results"
)

// cmdCompare compares two results directories (or directories of them) and
// fails with exit status 1 on a significant regression; bad input exits 2.
func cmdCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compare")
	threshold := fs.String("threshold", "5%", "smallest change of a median that counts as a regression (5% or 0.05)")
	alpha := fs.Float64("alpha", 0.05, "significance level of the Mann-Whitney U test")
	metrics := fs.String("metrics", "", "compare only these metrics: comma-separated names or patterns (scan_*_ms)")
	pos, err := parseFlags(fs, "OLD NEW [--threshold 5%] [--alpha 0.05] [--metrics a,b]", args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return fmt.Errorf("compare: want two results directories, OLD and NEW (got %d arguments)", len(pos))
	}
	thr, err := parseThreshold(*threshold)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	if !(*alpha > 0 && *alpha < 1) {
		return fmt.Errorf("compare: --alpha %v out of range (0,1)", *alpha)
	}
	old, err := results.ReadHistory(pos[0])
	if err != nil {
		return fmt.Errorf("compare: old: %w", err)
	}
	new, err := results.ReadHistory(pos[1])
	if err != nil {
		return fmt.Errorf("compare: new: %w", err)
	}
	opts := results.CompareOptions{Threshold: thr, Alpha: *alpha}
	for _, m := range strings.Split(*metrics, ",") {
		if m = strings.TrimSpace(m); m != "" {
			opts.Metrics = append(opts.Metrics, m)
		}
	}
	cmp, err := results.Compare(old, new, opts)
	if err != nil {
		return fmt.Errorf("compare %s %s: %w", pos[0], pos[1], err)
	}
	fmt.Fprintf(stdout, "old: %s (%d run(s))\nnew: %s (%d run(s))\n\n", pos[0], len(old), pos[1], len(new))
	if err := cmp.WriteTable(stdout); err != nil {
		return err
	}
	if cmp.Regressions > 0 {
		return failure(fmt.Errorf("%d significant regression(s)", cmp.Regressions))
	}
	return nil
}

// parseThreshold reads "5%" as 0.05 and a bare number as a fraction, which
// must then be at most 1 so that "5" (meant as 5%) is not taken as 500%.
func parseThreshold(s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(t, "%"), 64)
	if err != nil {
		return 0, fmt.Errorf("--threshold %q: want a percentage like 5%% or a fraction like 0.05", s)
	}
	if pct {
		v /= 100
	} else if v > 1 {
		return 0, fmt.Errorf("--threshold %q: a bare number is a fraction; write %s%% for a percentage", s, t)
	}
	if v < 0 || v != v || v > 10 {
		return 0, fmt.Errorf("--threshold %q out of range [0%%, 1000%%]", s)
	}
	if v == 0 {
		// CompareOptions reads 0 as "default"; a tiny positive threshold
		// flags every significant change.
		v = 1e-12
	}
	return v, nil
}
