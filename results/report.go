package results

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"sort"
	"strings"
	"time"
)

// WriteReport writes a self-contained HTML report of run to path: every
// chart is inline SVG laid out here, there is no script and nothing is
// fetched, so the file reads the same from a mail attachment as from a web
// server. history (which may include run) adds a trend over runs; nil or a
// single run leaves that section out. The report shows, in order: the
// verification status; per phase its headline metrics per engine — the
// median over repeats, its range, how far from the best, as bars with
// min–max error bars — throughput and latency over time per engine, engines
// side by side per metric, scaling over cores, the trend, then every
// metric's table per phase and the machine facts.
func WriteReport(path string, run *Run, history []*Run) error {
	var buf bytes.Buffer
	if err := renderReport(&buf, run, history); err != nil {
		return fmt.Errorf("render %s: %w", path, err)
	}
	return writeFileAtomic(path, buf.Bytes())
}

type reportPage struct {
	Run       *Run
	Title     string
	Generated string
	Status    statusBanner
	Facts     [][2]string
	Dirs      []DirInfo
	Summaries []phaseSummary
	Answers   []answerRow
	Failures  []string
	Sections  []chartSection
}

type statusBanner struct {
	Class string // ok, bad, warn
	Text  string
}

type phaseSummary struct {
	Name    string
	Metrics []string
	Rows    []summaryRow
}

type summaryRow struct {
	Engine, Dir, Cores, Repeat string
	Verify, Detail             string
	Values                     []string
}

type chartSection struct {
	ID, Title, Note string
	Charts          []*chart
}

func renderReport(buf *bytes.Buffer, run *Run, history []*Run) error {
	p := &reportPage{
		Run:       run,
		Title:     fmt.Sprintf("idxbench %s — %s", run.Scenario, run.Started.UTC().Format("2006-01-02 15:04 MST")),
		Generated: time.Now().UTC().Format(time.RFC3339),
	}
	p.Status = status(run)
	p.Facts = machineFacts(run)
	p.Dirs = run.Machine.DataDirs
	p.Summaries = summaries(run)
	for _, c := range run.Cells {
		if c.Error != "" {
			p.Failures = append(p.Failures, fmt.Sprintf("cell %s: %s", c.Key(), c.Error))
		}
		for _, ph := range c.Phases {
			if ph.Verify == VerifyFail {
				p.Failures = append(p.Failures, fmt.Sprintf("cell %s phase %s: verification failed: %s", c.Key(), ph.Name, ph.VerifyDetail))
			}
		}
	}
	colors := engineColors(run, history)
	p.Answers = answers(run, colors)
	p.Sections = append(p.Sections,
		overTime(run, colors),
		sideBySide(run, colors),
		scaling(run, colors),
		capacitySection(run, colors),
		trend(history, colors),
	)
	return reportTmpl.Execute(buf, p)
}

func status(run *Run) statusBanner {
	pass, fail, skipped, cellErr := run.VerifyCounts()
	var parts []string
	if run.Partial {
		parts = append(parts, "PARTIAL RUN (interrupted or still running)")
	}
	switch {
	case fail > 0 || cellErr > 0:
		parts = append(parts, fmt.Sprintf("%d phase(s) failed verification, %d cell(s) failed; %d passed, %d skipped", fail, cellErr, pass, skipped))
		return statusBanner{"bad", strings.Join(parts, " — ")}
	case pass == 0:
		parts = append(parts, fmt.Sprintf("verification skipped (%d phases)", skipped))
		return statusBanner{"warn", strings.Join(parts, " — ")}
	}
	parts = append(parts, fmt.Sprintf("all %d verified phase(s) passed (%d skipped)", pass, skipped))
	if run.Partial {
		return statusBanner{"warn", strings.Join(parts, " — ")}
	}
	return statusBanner{"ok", strings.Join(parts, " — ")}
}

func machineFacts(run *Run) [][2]string {
	m := run.Machine
	fin := "—"
	if !run.Finished.IsZero() {
		fin = run.Finished.UTC().Format(time.RFC3339) + fmt.Sprintf(" (%s)", run.Finished.Sub(run.Started).Round(time.Second))
	}
	return [][2]string{
		{"scenario", run.Scenario},
		{"seed", fmt.Sprint(run.Seed)},
		{"started", run.Started.UTC().Format(time.RFC3339)},
		{"finished", fin},
		{"CPU", m.CPUModel},
		{"cores", fmt.Sprint(m.Cores)},
		{"memory", fmt.Sprintf("%.1f GiB", float64(m.MemoryBytes)/(1<<30))},
		{"kernel", m.Kernel},
		{"Go", m.GoVersion},
		{"git revision", m.GitRevision},
		{"host", m.Hostname},
	}
}

// phaseOrder lists phase names in the order cells ran them.
func phaseOrder(run *Run) []string {
	var names []string
	seen := map[string]bool{}
	for _, c := range run.Cells {
		for _, p := range c.Phases {
			if !seen[p.Name] {
				seen[p.Name] = true
				names = append(names, p.Name)
			}
		}
	}
	return names
}

func phaseMetrics(run *Run, phase string) []string {
	set := map[string]bool{}
	for _, c := range run.Cells {
		if p := c.Phase(phase); p != nil {
			for m := range p.Metrics {
				set[m] = true
			}
		}
	}
	ms := make([]string, 0, len(set))
	for m := range set {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	return ms
}

func summaries(run *Run) []phaseSummary {
	var out []phaseSummary
	for _, name := range phaseOrder(run) {
		s := phaseSummary{Name: name, Metrics: phaseMetrics(run, name)}
		for _, c := range run.Cells {
			p := c.Phase(name)
			if p == nil {
				continue
			}
			row := summaryRow{Engine: c.Engine, Dir: c.Dir, Cores: fmt.Sprint(c.Cores), Repeat: fmt.Sprint(c.Repeat),
				Verify: p.Verify, Detail: p.VerifyDetail}
			for _, m := range s.Metrics {
				if v, ok := p.Metrics[m]; ok {
					row.Values = append(row.Values, FormatMetric(m, v))
				} else {
					row.Values = append(row.Values, "—")
				}
			}
			s.Rows = append(s.Rows, row)
		}
		out = append(out, s)
	}
	return out
}

func engineColors(run *Run, history []*Run) map[string]string {
	set := map[string]bool{}
	for _, r := range append([]*Run{run}, history...) {
		if r == nil {
			continue
		}
		for _, c := range r.Cells {
			set[c.Engine] = true
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	m := map[string]string{}
	for i, n := range names {
		m[n] = palette[i%len(palette)]
	}
	return m
}

// configColors gives every engine configuration (engine, cores, data
// dir) its own colour when the run has several core counts or data dirs,
// so "pebble c1" and "pebble c2" do not share one; otherwise each engine
// keeps its colour from colors.
func configColors(run *Run, colors map[string]string) func(engine string, cores int, dir string) string {
	v := variants(run)
	if !v.cores && !v.dirs {
		return func(engine string, _ int, _ string) string { return colors[engine] }
	}
	var keys []coord
	seen := map[coord]bool{}
	for _, c := range run.Cells {
		k := coord{c.Engine, c.Cores, c.Dir}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.engine != b.engine {
			return a.engine < b.engine
		}
		if a.cores != b.cores {
			return a.cores < b.cores
		}
		return a.dir < b.dir
	})
	m := map[coord]string{}
	for i, k := range keys {
		m[k] = palette[i%len(palette)]
	}
	return func(engine string, cores int, dir string) string { return m[coord{engine, cores, dir}] }
}

// variant says which of a cell's coordinates vary in the run, so labels
// carry only those ("pebble", or "pebble c2 d1").
type variant struct{ cores, dirs, repeats bool }

func variants(run *Run) variant {
	cores, dirs, reps := map[int]bool{}, map[string]bool{}, map[int]bool{}
	for _, c := range run.Cells {
		cores[c.Cores], dirs[c.Dir], reps[c.Repeat] = true, true, true
	}
	return variant{len(cores) > 1, len(dirs) > 1, len(reps) > 1}
}

func (v variant) label(engine string, cores int, dir string) string {
	s := engine
	if v.cores {
		s += fmt.Sprintf(" c%d", cores)
	}
	if v.dirs {
		s += " " + dir
	}
	return s
}

// overTime charts, per phase and operation, throughput and latency
// percentiles over elapsed time, one line per engine (first repeat).
func overTime(run *Run, colors map[string]string) chartSection {
	sec := chartSection{ID: "over-time", Title: "Over time", Note: "Per-second ticks of the first repeat of each cell; latency: solid p99, dashed p50."}
	v := variants(run)
	for _, phase := range phaseOrder(run) {
		var ops []string
		thr := map[string][]xySeries{}
		lat := map[string][]xySeries{}
		for _, c := range run.Cells {
			p := c.Phase(phase)
			if p == nil || c.Repeat != minRepeat(run, c) || len(p.Series) == 0 {
				continue
			}
			type opSeries struct{ x, ops, lx, p50, p99 []float64 }
			by := map[string]*opSeries{}
			var order []string
			for _, t := range p.Series {
				s := by[t.Op]
				if s == nil {
					s = &opSeries{}
					by[t.Op] = s
					order = append(order, t.Op)
				}
				s.x = append(s.x, t.Elapsed)
				s.ops = append(s.ops, t.OpsPerSec)
				// A second without operations has no latency, not a
				// latency of zero: leave it out of the latency lines.
				if t.OpsPerSec > 0 || t.MaxMs > 0 {
					s.lx = append(s.lx, t.Elapsed)
					s.p50 = append(s.p50, t.P50Ms)
					s.p99 = append(s.p99, t.P99Ms)
				}
			}
			label := v.label(c.Engine, c.Cores, c.Dir)
			color := configColors(run, colors)(c.Engine, c.Cores, c.Dir)
			for _, op := range order {
				if _, ok := thr[op]; !ok {
					ops = append(ops, op)
				}
				s := by[op]
				thr[op] = append(thr[op], xySeries{Label: label, Color: color, X: s.x, Y: s.ops})
				lat[op] = append(lat[op],
					xySeries{Label: label + " p99", Color: color, X: s.lx, Y: s.p99},
					xySeries{Label: label + " p50", Color: color, Dashed: true, X: s.lx, Y: s.p50})
			}
		}
		for _, op := range ops {
			if c := lineChart("throughput", fmt.Sprintf("%s · %s throughput", phase, op), "elapsed (s)", "ops/s", thr[op], nil); c != nil {
				sec.Charts = append(sec.Charts, c)
			}
			lo, hi := xExtent(thr[op])
			if c := lineChartX("latency", fmt.Sprintf("%s · %s latency", phase, op), "elapsed (s)", "ms", lat[op], nil, &[2]float64{lo, hi}); c != nil {
				sec.Charts = append(sec.Charts, c)
			}
		}
	}
	if len(sec.Charts) == 0 {
		sec.Note = "No per-second ticks were recorded for this run."
	}
	return sec
}

func minRepeat(run *Run, c Cell) int {
	m := c.Repeat
	for _, o := range run.Cells {
		if o.Engine == c.Engine && o.Cores == c.Cores && o.Dir == c.Dir && o.Repeat < m {
			m = o.Repeat
		}
	}
	return m
}

// medians returns, per phase/metric/cell coordinates, the median over
// repeats.
type coord struct {
	engine string
	cores  int
	dir    string
}

// valuesBy gathers a phase's metric per configuration (engine, cores,
// dir), the configurations in the order the run met them, leaving out
// values that are not finite and, with skipFailed, the cells that failed.
func valuesBy(run *Run, phase, metric string, skipFailed bool) (map[coord][]float64, []coord) {
	vals := map[coord][]float64{}
	var order []coord
	for _, c := range run.Cells {
		p := c.Phase(phase)
		if p == nil || (skipFailed && c.Error != "") {
			continue
		}
		v, ok := p.Metrics[metric]
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		k := coord{c.Engine, c.Cores, c.Dir}
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = append(vals[k], v)
	}
	return vals, order
}

func medianBy(run *Run, phase, metric string) (map[coord]float64, []coord) {
	vals, order := valuesBy(run, phase, metric, false)
	out := make(map[coord]float64, len(vals))
	for k, vs := range vals {
		out[k] = median(vs)
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if a.engine != b.engine {
			return a.engine < b.engine
		}
		if a.cores != b.cores {
			return a.cores < b.cores
		}
		return a.dir < b.dir
	})
	return out, order
}

// median is for display only; compare's statistics come from benchmath.
func median(vs []float64) float64 {
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// iecScale picks, for a metric in bytes whose largest value is max, the
// binary unit its chart's axis counts in, so axes and values share one
// unit system (IEC); other metrics get 1 and no unit.
func iecScale(metric string, max float64) (float64, string) {
	if !strings.HasSuffix(metric, "_bytes") {
		return 1, ""
	}
	for _, u := range []struct {
		scale float64
		name  string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if max >= u.scale {
			return u.scale, u.name
		}
	}
	return 1, "B"
}

// axisLabel is the y-axis label of metric's chart counted in unit.
func axisLabel(metric, unit string) string {
	if unit == "" {
		return direction(metric)
	}
	return unit + ", " + direction(metric)
}

// scaleSeries divides every y value of ss by div.
func scaleSeries(ss []xySeries, div float64) []xySeries {
	if div == 1 {
		return ss
	}
	out := make([]xySeries, len(ss))
	for i, s := range ss {
		s.Y = append([]float64(nil), s.Y...)
		for j := range s.Y {
			s.Y[j] /= div
		}
		out[i] = s
	}
	return out
}

// seriesMax is the largest y value of ss.
func seriesMax(ss []xySeries) float64 {
	m := 0.0
	for _, s := range ss {
		for _, y := range s.Y {
			m = math.Max(m, y)
		}
	}
	return m
}

// direction is the y-axis label: the chart's title names the metric, so
// the axis says which way is good.
func direction(metric string) string {
	switch Better(metric) {
	case HigherIsBetter:
		return "higher is better ↑"
	case LowerIsBetter:
		return "lower is better ↓"
	}
	return metric
}

func sideBySide(run *Run, colors map[string]string) chartSection {
	sec := chartSection{ID: "engines", Title: "Engines side by side", Note: "Median over repeats, per phase and metric; the error bar spans min–max over the repeats."}
	v := variants(run)
	color := configColors(run, colors)
	configs := map[coord]bool{}
	for _, c := range run.Cells {
		configs[coord{c.Engine, c.Cores, c.Dir}] = true
	}
	if len(configs) < 2 {
		sec.Note = "This run has one engine configuration; the summary above holds its figures."
		return sec
	}
	for _, phase := range phaseOrder(run) {
		for _, m := range phaseMetrics(run, phase) {
			// Counters and settings (mutations, entries, driver rates) are
			// not figures to rank engines by; the summary tables hold them.
			if Better(m) == Neutral {
				continue
			}
			spreads, order := spreadsBy(run, phase, m)
			top := 0.0
			for _, k := range order {
				top = math.Max(top, spreads[k].Max)
			}
			div, unit := iecScale(m, top)
			var items []barItem
			for _, k := range order {
				s := spreads[k]
				items = append(items, barItem{Label: v.label(k.engine, k.cores, k.dir), Value: s.Median / div, Text: FormatMetric(m, s.Median),
					Color: color(k.engine, k.cores, k.dir), Lo: s.Min / div, Hi: s.Max / div})
			}
			if c := barChart("bars", fmt.Sprintf("%s · %s", phase, m), axisLabel(m, unit), items); c != nil {
				sec.Charts = append(sec.Charts, c)
			}
		}
	}
	return sec
}

func scaling(run *Run, colors map[string]string) chartSection {
	sec := chartSection{ID: "scaling", Title: "Scaling over cores", Note: "Median over repeats against the core count; one line per engine."}
	if !variants(run).cores {
		sec.Note = "This run used one core count; run with --cores 1,2 to see scaling."
		return sec
	}
	dirs := variants(run).dirs
	for _, phase := range phaseOrder(run) {
		for _, m := range phaseMetrics(run, phase) {
			if Better(m) == Neutral {
				continue
			}
			med, order := medianBy(run, phase, m)
			type line struct{ engine, dir string }
			series := map[line]*xySeries{}
			var lines []line
			for _, k := range order {
				l := line{k.engine, k.dir}
				s := series[l]
				if s == nil {
					label := k.engine
					if dirs {
						label += " " + k.dir
					}
					s = &xySeries{Label: label, Color: colors[k.engine]}
					series[l] = s
					lines = append(lines, l)
				}
				s.X = append(s.X, float64(k.cores))
				s.Y = append(s.Y, med[k])
			}
			var ss []xySeries
			for _, l := range lines {
				ss = append(ss, *series[l])
			}
			div, unit := iecScale(m, seriesMax(ss))
			if c := lineChart("scaling", fmt.Sprintf("%s · %s", phase, m), "cores", axisLabel(m, unit), scaleSeries(ss, div), nil); c != nil {
				sec.Charts = append(sec.Charts, c)
			}
		}
	}
	return sec
}

func trend(history []*Run, colors map[string]string) chartSection {
	sec := chartSection{ID: "trend", Title: "Trend over runs", Note: "Median over repeats of each run, oldest first."}
	if len(history) < 2 {
		sec.Note = "No history given; `idxbench report DIR --history DIR` adds a trend over earlier runs."
		return sec
	}
	var cats []string
	for _, r := range history {
		cats = append(cats, r.Started.UTC().Format("01-02 15:04"))
	}
	type key struct {
		phase, metric string
	}
	var keys []key
	seen := map[key]bool{}
	for _, r := range history {
		for _, ph := range phaseOrder(r) {
			for _, m := range phaseMetrics(r, ph) {
				k := key{ph, m}
				if Better(m) != Neutral && !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
	}
	// Label by what varies anywhere in the history, so one configuration
	// keeps one label (and one line) across runs.
	var all variant
	maxCores := 0
	for _, r := range history {
		v := variants(r)
		all.cores, all.dirs = all.cores || v.cores, all.dirs || v.dirs
		for _, c := range r.Cells {
			maxCores = max(maxCores, c.Cores)
		}
	}
	for _, k := range keys {
		series := map[coord]*xySeries{}
		var order []coord
		for i, r := range history {
			v := all
			med, cs := medianBy(r, k.phase, k.metric)
			for _, c := range cs {
				s := series[c]
				if s == nil {
					// One colour per engine; fewer cores draw dashed.
					s = &xySeries{Label: v.label(c.engine, c.cores, c.dir), Color: colors[c.engine], Dashed: c.cores < maxCores}
					series[c] = s
					order = append(order, c)
				}
				s.X = append(s.X, float64(i))
				s.Y = append(s.Y, med[c])
			}
		}
		var ss []xySeries
		for _, c := range order {
			ss = append(ss, *series[c])
		}
		div, unit := iecScale(k.metric, seriesMax(ss))
		if c := lineChart("trend", fmt.Sprintf("%s · %s", k.phase, k.metric), "run", axisLabel(k.metric, unit), scaleSeries(ss, div), cats); c != nil {
			sec.Charts = append(sec.Charts, c)
		}
	}
	return sec
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"f1": func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"bytes": func(v uint64) string {
		return fmt.Sprintf("%.1f GiB", float64(v)/(1<<30))
	},
}).Parse(reportHTML))
