package results

import (
	"fmt"
	"html/template"
	"math"
)

// headlineMetrics are the figures the report's first screen leads with, in
// order of preference; a phase shows the first two it has.
var headlineMetrics = []string{
	"mutations_per_sec", "mutations_per_cpu_sec", "docs_per_sec", "entries_per_sec", "scans_per_sec", "scan_p99_ms",
	"recovery_ms", "engine_rollback_ms", "rollback_ms", "build_ms", "initial_build_ms", "persist_ms",
	"pipeline_to_raw_ratio",
}

// answerRow is one headline metric of one phase: every engine
// configuration's median with its range over the repeats, against the
// best.
type answerRow struct {
	Phase, Metric, Direction string
	Cells                    []answerCell
}

type answerCell struct {
	Label, Color        string
	Median, Range, Vs   string
	Title               string // exact values, for the hover text
	Best                bool
	Bar, ErrLo, ErrSpan template.CSS
}

// answers builds the first screen: per phase, its headline metrics per
// engine (in the order engines ran), each the median over repeats with its
// min–max, the relative difference from the best, and a bar with an error
// bar spanning min–max.
func answers(run *Run, colors map[string]string) []answerRow {
	v := variants(run)
	color := configColors(run, colors)
	var rows []answerRow
	for _, phase := range phaseOrder(run) {
		have := map[string]bool{}
		for _, m := range phaseMetrics(run, phase) {
			have[m] = true
		}
		shown := 0
		for _, m := range headlineMetrics {
			if !have[m] || shown == 2 {
				continue
			}
			shown++
			row := answerRow{Phase: phase, Metric: m, Direction: direction(m)}
			spreads, order := spreadsBy(run, phase, m)
			best, top := math.NaN(), 0.0
			for _, k := range order {
				s := spreads[k]
				top = math.Max(top, s.Max)
				if math.IsNaN(best) || (Better(m) == HigherIsBetter && s.Median > best) || (Better(m) == LowerIsBetter && s.Median < best) {
					best = s.Median
				}
			}
			for _, k := range order {
				s := spreads[k]
				c := answerCell{Label: v.label(k.engine, k.cores, k.dir), Color: color(k.engine, k.cores, k.dir), Median: FormatMetric(m, s.Median)}
				c.Title = fmt.Sprintf("%s %s: median %g over %d repeat(s), min %g, max %g", c.Label, m, s.Median, s.N, s.Min, s.Max)
				if s.N > 1 {
					c.Range = FormatMetric(m, s.Min) + "–" + FormatMetric(m, s.Max)
				}
				switch {
				case len(order) < 2 || Better(m) == Neutral:
				case s.Median == best:
					c.Best, c.Vs = true, "best"
				case best != 0:
					c.Vs = fmt.Sprintf("%+.1f%% vs best", (s.Median/best-1)*100)
				}
				if top > 0 {
					c.Bar = pct(s.Median / top)
					c.ErrLo = pct(s.Min / top)
					c.ErrSpan = pct((s.Max - s.Min) / top)
				}
				row.Cells = append(row.Cells, c)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// pct is a CSS percentage of f in [0,1].
func pct(f float64) template.CSS {
	if math.IsNaN(f) || f < 0 {
		f = 0
	}
	return template.CSS(fmt.Sprintf("%.1f%%", math.Min(f, 1)*100))
}

// spreadsBy is medianBy with the whole spread, configurations in the order
// the run met them (engines in --engine order).
func spreadsBy(run *Run, phase, metric string) (map[coord]Spread, []coord) {
	vals, order := valuesBy(run, phase, metric, true)
	out := make(map[coord]Spread, len(vals))
	for k, vs := range vals {
		out[k] = SpreadOf(vs)
	}
	return out, order
}
