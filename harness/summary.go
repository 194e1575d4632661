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
// first of its metrics that a phase has; legend, when set, explains a
// derived column under the table.
var summaryColumns = []struct {
	metrics []string
	title   string
	legend  string
}{
	{[]string{"index_entries"}, "entries", ""},
	{[]string{"docs_per_sec"}, "docs/s", ""},
	{[]string{"mutations_per_sec"}, "mut/s", ""},
	{[]string{"mutations_per_cpu_sec"}, "mut/CPU-s", "mut/CPU-s = mutations per CPU-second of the cell's processes (steadier than mut/s on a shared machine)"},
	// A capacity search: the rate it found, the lag and cores busy there,
	// and how many steps it took.
	{[]string{"sustainable_mutations_per_sec"}, "sustained/s", "sustained/s = the highest ingest rate the capacity search found within the SLO"},
	{[]string{"sustainable_index_lag_p99_ms"}, "lag p99 there ms", ""},
	{[]string{"sustainable_cpu_cores"}, "cores busy", ""},
	{[]string{"capacity_steps"}, "steps", ""},
	{[]string{"pipeline_to_raw_ratio"}, "pipe/raw", "pipe/raw = raw replay time ÷ pipeline time for the same engine calls: the share of the engine's own speed the pipeline keeps (1 = none lost)"},
	{[]string{"pipeline_to_raw_cpu_ratio"}, "pipe/raw CPU", "pipe/raw CPU = the same ratio in CPU time over the same window on both sides"},
	{[]string{"initial_build_ms"}, "build ms", ""},
	{[]string{"entries_per_sec"}, "entries/s", ""},
	{[]string{"index_lag_p50_ms"}, "lag p50 ms", ""},
	{[]string{"index_lag_p99_ms"}, "lag p99 ms", ""},
	{[]string{"scans_per_sec"}, "scans/s", ""},
	{[]string{"scan_p50_ms"}, "scan p50 ms", ""},
	{[]string{"scan_p99_ms"}, "scan p99 ms", ""},
	{[]string{"persist_ms"}, "persist ms", ""},
	// A fault phase on a cluster: how long without a master, until a
	// killed index node served again, and how often scans failed over.
	{[]string{"no_master_ms"}, "no master ms", ""},
	{[]string{"rejoin_ms"}, "rejoin ms", "rejoin ms = a killed index node's restart until it had caught up and served again"},
	{[]string{"scan_failovers"}, "failovers", "failovers = scans that moved to another replica"},
	// The indexer's own restore of its slices in a rollback or restart
	// phase; the raw engine's rollback in a raw-ingest phase.
	{[]string{"engine_rollback_ms", "rollback_ms"}, "rollback ms", ""},
	{[]string{"open_ms"}, "open ms", ""},
	{[]string{"scans_resume_ms", "first_scan_ms"}, "scans back ms", ""},
	{[]string{"catch_up_ms"}, "catch-up ms", ""},
	{[]string{"recovery_ms"}, "recovery ms", ""},
	{[]string{"mutations_replayed"}, "replayed", ""},
	{[]string{"recovery_to_rebuild_ratio"}, "rec/rebuild", "rec/rebuild = recovery time ÷ the time to rebuild the indexes from scratch"},
	{[]string{"rollback_to_rebuild_ratio"}, "rb/rebuild", "rb/rebuild = the engine's rollback time ÷ the time to rebuild from scratch"},
	{[]string{"write_amp"}, "write amp", ""},
	{[]string{"disk_bytes"}, "disk MiB", ""},
	{[]string{"peak_rss_bytes"}, "RSS MiB", ""},
}

// PrintSummary writes one table per phase with a row per engine, data dir
// and core count — engines in the order they ran (--engine order), so they
// read side by side — each figure the median over the repeats, with the
// range (min–max) when there are several and the coefficient of variation
// from results.MinRepeatsForCV repeats. A legend under each table explains
// its derived columns.
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
	rows := summaryRows(run)
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
		hdr := []string{"engine", "dir", "cores", "reps", "verify"}
		for _, i := range cols {
			hdr = append(hdr, summaryColumns[i].title)
		}
		fmt.Fprintln(tw, strings.Join(hdr, "\t")+"\t")
		maxReps := 0
		for _, r := range rows {
			var phs []*results.Phase
			for _, c := range r.cells {
				if ph := findPhase(c, name); ph != nil && c.Error == "" {
					phs = append(phs, ph)
				}
			}
			maxReps = max(maxReps, len(phs))
			row := []string{r.engine, r.dir, fmt.Sprint(r.cores), fmt.Sprint(len(phs)), verifyText(phs, len(r.cells))}
			for _, i := range cols {
				var vals []float64
				metric := ""
				for _, ph := range phs {
					if m := columnMetric(summaryColumns[i].metrics, ph.Metrics); m != "" {
						metric = m
						vals = append(vals, ph.Metrics[m])
					}
				}
				row = append(row, formatSpread(metric, vals))
			}
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
		}
		tw.Flush()
		var legend []string
		if maxReps > 1 {
			legend = append(legend, fmt.Sprintf("median (min–max%s) over the repeats", cvNote(maxReps)))
		}
		for _, i := range cols {
			if l := summaryColumns[i].legend; l != "" {
				legend = append(legend, l)
			}
			if summaryColumns[i].metrics[0] == "index_lag_p50_ms" && closedLoop(run, name) {
				legend = append(legend, fmt.Sprintf("lag = index lag; this phase's driver ran closed loop (at most %dk mutations outstanding), so its lag is mostly queueing behind that cap, not the index's latency: compare engines on it only at a set rate", maxOutstanding/1000))
			}
		}
		for _, l := range legend {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	for _, c := range run.Cells {
		if c.Error != "" {
			fmt.Fprintf(w, "\ncell %s/%s/c%d/r%d failed: %s\n", c.Engine, c.Dir, c.Cores, c.Repeat, c.Error)
		}
	}
}

func cvNote(reps int) string {
	if reps >= results.MinRepeatsForCV {
		return ", cv = standard deviation ÷ mean"
	}
	return ""
}

// summaryRow is one engine on one data dir with one core count: its cells
// over the repeats.
type summaryRow struct {
	engine, dir string
	cores       int
	cells       []results.Cell
}

// summaryRows groups run's cells into rows, engines in the order they
// first ran, then data dirs and core counts in the order they ran.
func summaryRows(run *results.Run) []*summaryRow {
	type key struct {
		engine, dir string
		cores       int
	}
	var rows []*summaryRow
	byKey := map[key]*summaryRow{}
	engineRank := map[string]int{}
	for _, c := range run.Cells {
		if _, ok := engineRank[c.Engine]; !ok {
			engineRank[c.Engine] = len(engineRank)
		}
		k := key{c.Engine, c.Dir, c.Cores}
		r := byKey[k]
		if r == nil {
			r = &summaryRow{engine: c.Engine, dir: c.Dir, cores: c.Cores}
			byKey[k] = r
			rows = append(rows, r)
		}
		r.cells = append(r.cells, c)
	}
	sort.SliceStable(rows, func(i, j int) bool { return engineRank[rows[i].engine] < engineRank[rows[j].engine] })
	return rows
}

// verifyText is "pass" when every repeat's phase passed, otherwise the
// counts of what did not ("fail 1/3", "error 1/3", "skipped").
func verifyText(phs []*results.Phase, cells int) string {
	pass, fail, skipped := 0, 0, 0
	for _, ph := range phs {
		switch ph.Verify {
		case results.VerifyPass:
			pass++
		case results.VerifyFail:
			fail++
		default:
			skipped++
		}
	}
	switch {
	case len(phs) == 0:
		return "error"
	case fail > 0:
		return fmt.Sprintf("fail %d/%d", fail, cells)
	case len(phs) < cells:
		return fmt.Sprintf("error %d/%d", cells-len(phs), cells)
	case pass == 0:
		return "skipped"
	case skipped > 0:
		return fmt.Sprintf("pass %d/%d", pass, cells)
	}
	return "pass"
}

// formatSpread shows values of metric as the median, with the range when
// there are several and the coefficient of variation when there are
// enough: "12345 (12001–12800, 2.1%)"; values all equal show once.
func formatSpread(metric string, vals []float64) string {
	if len(vals) == 0 {
		return "-"
	}
	sp := results.SpreadOf(vals)
	med := formatValue(metric, sp.Median)
	if sp.N == 1 || sp.Min == sp.Max {
		return med
	}
	out := fmt.Sprintf("%s (%s–%s", med, formatValue(metric, sp.Min), formatValue(metric, sp.Max))
	if sp.CV != nil {
		out += fmt.Sprintf(", %.1f%%", *sp.CV*100)
	}
	return out + ")"
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

func formatValue(name string, v float64) string {
	if math.IsNaN(v) {
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

// closedLoop reports whether some cell ran phase with a closed-loop driver.
func closedLoop(run *results.Run, phase string) bool {
	for _, c := range run.Cells {
		if ph := findPhase(c, phase); ph != nil {
			if r, ok := ph.Metrics["driver_target_mutations_per_sec"]; ok && r == 0 {
				return true
			}
		}
	}
	return false
}
