package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/idxbench/idxbench/results"
)

// cmdReport rebuilds report.html of a results directory, optionally with a
// trend over a history of runs.
func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("report")
	history := fset.String("history", "", "a directory of results directories to chart a trend over")
	out := fset.String("out", "", "where to write the report (default DIR/report.html)")
	pos, err := parseFlags(fset, "DIR [--history DIR] [--out FILE]", args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("report: want one results directory (got %d arguments)", len(pos))
	}
	dir := pos[0]
	run, err := results.ReadRun(dir)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	ticks, err := results.ReadTicks(filepath.Join(dir, results.TicksFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("report: %w", err)
	}
	if len(ticks) > 0 {
		run = results.AttachTicks(run, ticks)
	}
	var hist []*results.Run
	if *history != "" {
		if hist, err = results.ReadHistory(*history); err != nil {
			return fmt.Errorf("report: history: %w", err)
		}
	}
	path := *out
	if path == "" {
		path = filepath.Join(dir, results.ReportFile)
	}
	if err := results.WriteReport(path, run, hist); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	fmt.Fprintln(stdout, path)
	return nil
}
