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
// order; a column appears only when some cell has it.
var summaryColumns = []struct{ metric, title string }{
	{"docs_per_sec", "docs/s"},
	{"mutations_per_sec", "mut/s"},
	{"pipeline_to_raw_ratio", "pipe/raw"},
	{"initial_build_ms", "build ms"},
	{"entries_per_sec", "entries/s"},
	{"index_lag_p50_ms", "lag p50 ms"},
	{"index_lag_p99_ms", "lag p99 ms"},
	{"scans_per_sec", "scans/s"},
	{"scan_p50_ms", "scan p50 ms"},
	{"scan_p99_ms", "scan p99 ms"},
	{"persist_ms", "persist ms"},
	{"rollback_ms", "rollback ms"},
	{"recovery_ms", "recovery ms"},
	{"write_amp", "write amp"},
	{"disk_bytes", "disk MiB"},
	{"peak_rss_bytes", "RSS MiB"},
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
				if ph := findPhase(c, name); ph != nil {
					if _, ok := ph.Metrics[col.metric]; ok {
						cols = append(cols, i)
						break
					}
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
					row = append(row, formatMetric(summaryColumns[i].metric, ph.Metrics))
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
