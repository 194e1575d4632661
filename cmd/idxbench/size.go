package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/idxbench/idxbench/results"
)

const sizeSynopsis = "--target-rate R --docs N --slo-lag L [--engine a,b] RESULTS…"

// cmdSize answers a planner's question from capacity results: per engine,
// the cores (from a scaling model fitted to the core counts measured), the
// disk, the write bandwidth and the memory for a target rate and data size.
func cmdSize(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("size")
	var (
		rate       = fs.Float64("target-rate", 0, "mutations/s the index must sustain")
		docs       = fs.Int("docs", 0, "documents the bucket will hold")
		lag        = fs.Duration("slo-lag", 0, "index lag p99 the rate must keep (searches with a looser SLO are left out)")
		engineList = fs.String("engine", "", "comma-separated `engines` to answer for (default: every engine measured)")
	)
	dirs, err := parseFlags(fs, sizeSynopsis, args, stdout)
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		return errors.New("size: give one or more results directories of idxbench capacity runs")
	}
	req := results.SizingRequest{TargetRate: *rate, Docs: *docs, LagP99: *lag, Engines: splitList(*engineList)}
	if err := req.Validate(); err != nil {
		return fmt.Errorf("size: %w", err)
	}
	var runs []*results.Run
	for _, d := range dirs {
		r, err := results.ReadRun(d)
		if err != nil {
			return fmt.Errorf("size: %w", err)
		}
		runs = append(runs, r)
	}
	answers, err := results.Size(runs, dirs, req)
	if err != nil {
		return fmt.Errorf("size: %w", err)
	}
	results.WriteSizing(stdout, req, answers)
	return nil
}
