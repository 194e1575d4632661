package harness

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/idxbench/idxbench/results"
)

// summaryColumns are the figures the end-of-run table shows per phase, in
// order; a column appears only when some cell has it. A column shows the
// first of its metrics that a phase has.
var summaryColumns = []struct {
	metrics []string
	title   string
}{
	{[]string{"index_entries"}, "entries"},
	{[]string{"docs_per_sec"}, "docs/s"},
	{[]string{"mutations_per_sec"}, "mut/s"},
	// A capacity search: the rate it found, the lag and cores busy there,
	// and how many steps it took.
	{[]string{"sustainable_mutations_per_sec"}, "sustained/s"},
	{[]string{"sustainable_index_lag_p99_ms"}, "lag p99 there ms"},
	{[]string{"sustainable_cpu_cores"}, "cores busy"},
	{[]string{"capacity_steps"}, "steps"},
	{[]string{"pipeline_to_raw_ratio"}, "pipe/raw"},
	{[]string{"initial_build_ms"}, "build ms"},
	{[]string{"entries_per_sec"}, "entries/s"},
	{[]string{"index_lag_p50_ms"}, "lag p50 ms"},
	{[]string{"index_lag_p99_ms"}, "lag p99 ms"},
	{[]string{"scans_per_sec"}, "scans/s"},
	{[]string{"scan_p50_ms"}, "scan p50 ms"},
	{[]string{"scan_p99_ms"}, "scan p99 ms"},
	{[]string{"persist_ms"}, "persist ms"},
	// The indexer's own restore of its slices in a rollback or restart
	// phase; the raw engine's rollback in a raw-ingest phase.
	{[]string{"engine_rollback_ms", "rollback_ms"}, "rollback ms"},
	{[]string{"open_ms"}, "open ms"},
	{[]string{"scans_resume_ms", "first_scan_ms"}, "scans back ms"},
	{[]string{"catch_up_ms"}, "catch-up ms"},
	{[]string{"recovery_ms"}, "recovery ms"},
	{[]string{"mutations_replayed"}, "replayed"},
	{[]string{"recovery_to_rebuild_ratio"}, "rec/rebuild"},
	{[]string{"rollback_to_rebuild_ratio"}, "rb/rebuild"},
	{[]string{"write_amp"}, "write amp"},
	{[]string{"disk_bytes"}, "disk MiB"},
	{[]string{"peak_rss_bytes"}, "RSS MiB"},
}

// PrintSummary writes one table per phase with a row per cell, so engines
// read side by side.
func PrintSummary(w io.Writer, run *results.Run) {
	var phases []string
	seen := map[string]bool{}
	for _, c := range run.Cells {
		for _, ph := range c.Phases {
			if !seen[ph.Name] {
				seen[ph.Name] = true
				phases = append(phases, ph.Name)
			}
		}
	}
	for _, name := range phases {
		var cols []int
		for i, col := range summaryColumns {
			for _, c := range run.Cells {
				if ph := findPhase(c, name); ph != nil && columnMetric(col.metrics, ph.Metrics) != "" {
					cols = append(cols, i)
					break
				}
			}
		}
		fmt.Fprintf(w, "\nphase %s\n", name)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		hdr := []string{"engine", "dir", "cores", "rep", "verify"}
		for _, i := range cols {
			hdr = append(hdr, summaryColumns[i].title)
		}
		fmt.Fprintln(tw, strings.Join(hdr, "\t")+"\t")
		cells := append([]results.Cell(nil), run.Cells...)
		sort.SliceStable(cells, func(i, j int) bool { return cells[i].Engine < cells[j].Engine })
		for _, c := range cells {
			ph := findPhase(c, name)
			row := []string{c.Engine, c.Dir, fmt.Sprint(c.Cores), fmt.Sprint(c.Repeat)}
			if ph == nil {
				row = append(row, "error")
				for range cols {
					row = append(row, "-")
				}
			} else {
				row = append(row, ph.Verify)
				for _, i := range cols {
					row = append(row, formatMetric(columnMetric(summaryColumns[i].metrics, ph.Metrics), ph.Metrics))
				}
			}
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
		}
		tw.Flush()
	}
	for _, c := range run.Cells {
		if c.Error != "" {
			fmt.Fprintf(w, "\ncell %s/%s/c%d/r%d failed: %s\n", c.Engine, c.Dir, c.Cores, c.Repeat, c.Error)
		}
	}
}

func findPhase(c results.Cell, name string) *results.Phase {
	for i := range c.Phases {
		if c.Phases[i].Name == name {
			return &c.Phases[i]
		}
	}
	return nil
}

// columnMetric is the first of names that m has, or "".
func columnMetric(names []string, m map[string]float64) string {
	for _, n := range names {
		if _, ok := m[n]; ok {
			return n
		}
	}
	return ""
}

func formatMetric(name string, m map[string]float64) string {
	v, ok := m[name]
	if !ok || math.IsNaN(v) {
		return "-"
	}
	switch {
	case strings.HasSuffix(name, "_bytes"):
		return fmt.Sprintf("%.1f", v/(1<<20))
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
