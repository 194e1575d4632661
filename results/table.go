package results

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"golang.org/x/perf/benchmath"
)

// WriteTable prints the comparison the way benchstat does: one block per
// engine/cores/dir, one aligned row per phase and metric with both medians
// and their confidence intervals, the change, the U test's p-value and
// sample sizes, and the verdict; then the warnings and a one-line
// conclusion.
func (c *Comparison) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	var tw *tabwriter.Writer
	var cur string
	flush := func() {
		if tw != nil {
			tw.Flush()
		}
	}
	for _, r := range c.Rows {
		block := fmt.Sprintf("engine=%s cores=%d dir=%s", r.Engine, r.Cores, r.Dir)
		if block != cur {
			flush()
			if cur != "" {
				fmt.Fprintln(bw)
			}
			cur = block
			fmt.Fprintln(bw, block)
			tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "phase\tmetric\told\t±\tnew\t±\tchange\tp\tn\tverdict")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Phase, r.Metric,
			side(r.Old, r.Verdict != OnlyNew), ci(r.Old, r.Verdict != OnlyNew),
			side(r.New, r.Verdict != OnlyOld), ci(r.New, r.Verdict != OnlyOld),
			change(r), pvalue(r), samples(r), verdictText(r))
	}
	flush()
	if len(c.Warnings) > 0 {
		fmt.Fprintln(bw)
		for _, s := range c.Warnings {
			fmt.Fprintf(bw, "note: %s\n", s)
		}
	}
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, c.Conclusion())
	return bw.Flush()
}

// Conclusion is the comparison's verdict in one line.
func (c *Comparison) Conclusion() string {
	warnings := 0
	var regs []string
	for _, r := range c.Rows {
		switch r.Verdict {
		case Warning:
			warnings++
		case Regressed:
			regs = append(regs, fmt.Sprintf("%s/c%d/%s %s %s %+.1f%%", r.Engine, r.Cores, r.Dir, r.Phase, r.Metric, 100*r.Change))
		}
	}
	thr := fmt.Sprintf("%g%%", 100*c.Options.Threshold)
	if len(regs) > 0 {
		return fmt.Sprintf("%d significant regression(s) beyond %s (alpha %g): %s", len(regs), thr, c.Options.Alpha, strings.Join(regs, "; "))
	}
	if warnings > 0 {
		return fmt.Sprintf("no significant regression beyond %s (alpha %g); %d change(s) beyond the threshold could not be tested for lack of repeats", thr, c.Options.Alpha, warnings)
	}
	return fmt.Sprintf("no significant regression beyond %s (alpha %g)", thr, c.Options.Alpha)
}

func side(s Summary, ok bool) string {
	if !ok {
		return "-"
	}
	return FormatValue(s.Median)
}

func ci(s Summary, ok bool) string {
	if !ok {
		return ""
	}
	return benchmath.Summary{Center: s.Median, Lo: s.Lo, Hi: s.Hi}.PctRangeString()
}

func change(r Row) string {
	if r.Verdict == OnlyOld || r.Verdict == OnlyNew || math.IsNaN(r.Change) {
		return "?"
	}
	return fmt.Sprintf("%+.2f%%", 100*r.Change)
}

func pvalue(r Row) string {
	if r.Verdict == OnlyOld || r.Verdict == OnlyNew {
		return ""
	}
	return fmt.Sprintf("%.3f", r.P)
}

func samples(r Row) string {
	switch {
	case r.Verdict == OnlyOld:
		return fmt.Sprint(r.Old.N)
	case r.Verdict == OnlyNew:
		return fmt.Sprint(r.New.N)
	case r.Old.N == r.New.N:
		return fmt.Sprint(r.Old.N)
	}
	return fmt.Sprintf("%d+%d", r.Old.N, r.New.N)
}

func verdictText(r Row) string {
	if r.Verdict == Same && r.Better == Neutral {
		return "~ (informational)"
	}
	return string(r.Verdict)
}

// FormatValue formats v with about four significant digits and an SI
// suffix (12.35k, 3.100M), the way benchstat shows values.
func FormatValue(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	a := math.Abs(v)
	for _, u := range []struct {
		scale float64
		sfx   string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if a >= u.scale {
			return sig4(v/u.scale) + u.sfx
		}
	}
	return sig4(v)
}

func sig4(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	case a >= 1:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// FormatMetric formats a metric's value for people: sizes (names ending in
// _bytes) in binary units, everything else as FormatValue.
func FormatMetric(name string, v float64) string {
	if strings.HasSuffix(name, "_bytes") && !math.IsNaN(v) && !math.IsInf(v, 0) {
		a := math.Abs(v)
		for _, u := range []struct {
			scale float64
			sfx   string
		}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
			if a >= u.scale {
				return sig4(v/u.scale) + " " + u.sfx
			}
		}
		return sig4(v) + " B"
	}
	return FormatValue(v)
}
