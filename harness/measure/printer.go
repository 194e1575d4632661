package measure

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Gauge is a level sampled at a tick (mutation queue length, docs pending,
// age of the last stability timestamp).
type Gauge struct {
	Name  string
	Value float64
}

// TickPrinter prints ticks in the shape cockroach's workload tool made
// familiar, one line per operation type:
//
//	_elapsed___errors__ops/sec(inst)___ops/sec(cum)__p50(ms)__p95(ms)__p99(ms)_pMax(ms)__queue__pending op
//	    1.0s        0         5230.0         5230.0     0.52     1.84     3.41    12.58      12      340 batch
//
// with a column per gauge, named at construction, before the operation
// name. The header repeats every 20 lines.
type TickPrinter struct {
	w      io.Writer
	gauges []string
	widths []int
	lines  int
}

const tickHeader = "_elapsed___errors__ops/sec(inst)___ops/sec(cum)__p50(ms)__p95(ms)__p99(ms)_pMax(ms)"

// NewTickPrinter prints to w with a column for each named gauge.
func NewTickPrinter(w io.Writer, gauges ...string) *TickPrinter {
	p := &TickPrinter{w: w, gauges: gauges}
	for _, g := range gauges {
		p.widths = append(p.widths, max(len(g)+1, 8))
	}
	return p
}

// Header returns the header line (without a newline).
func (p *TickPrinter) Header() string {
	var b strings.Builder
	b.WriteString(tickHeader)
	for i, g := range p.gauges {
		b.WriteString(strings.Repeat("_", p.widths[i]-len(g)+1))
		b.WriteString(g)
	}
	b.WriteString(" op")
	return b.String()
}

// Print writes t's lines with no phase named (see PrintPhase).
func (p *TickPrinter) Print(t Tick, gauges []Gauge) error {
	return p.PrintPhase("", "", t, gauges)
}

// PrintPhase writes one line per operation of t, each ending with the
// operation's name and the phase's ("kv_mutation  [ingest]"). Gauges are
// matched to the printer's columns by name; a missing one prints as "-". A
// tick with no operation yet prints one line with the gauges, so a phase
// that is only waiting (loading) still shows its progress. During a
// period of the phase (period non-empty: "catch-up", "raw replay"), the
// operations idle in this tick are left out and, if all are, one line
// names the period instead of rows of zeros.
func (p *TickPrinter) PrintPhase(phase, period string, t Tick, gauges []Gauge) error {
	gv := make([]string, len(p.gauges))
	for i := range p.gauges {
		gv[i] = "-"
		for _, g := range gauges {
			if g.Name == p.gauges[i] {
				gv[i] = formatGauge(g.Value)
			}
		}
	}
	tag := ""
	switch {
	case phase != "" && period != "":
		tag = "  [" + phase + ": " + period + "]"
	case phase != "":
		tag = "  [" + phase + "]"
	case period != "":
		tag = "  [" + period + "]"
	}
	var b strings.Builder
	idle := func(o OpStat) bool { return period != "" && o.Count == 0 && o.Errors == 0 }
	var active []OpStat
	for _, o := range t.Ops {
		if !idle(o) {
			active = append(active, o)
		}
	}
	if len(active) == 0 {
		p.line(&b)
		fmt.Fprintf(&b, "%7.1fs %8s %14s %14s %8s %8s %8s %8s", t.Elapsed.Seconds(), "-", "-", "-", "-", "-", "-", "-")
		p.gaugesAndOp(&b, gv, "-"+tag)
	}
	for _, o := range active {
		p.line(&b)
		fmt.Fprintf(&b, "%7.1fs %8d %14.1f %14.1f %8.2f %8.2f %8.2f %8.2f",
			t.Elapsed.Seconds(), o.CumErrs, o.OpsPerSecInst, o.OpsPerSecCum, ms(o.P50), ms(o.P95), ms(o.P99), ms(o.Max))
		p.gaugesAndOp(&b, gv, o.Op+tag)
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}

// Total writes the phase's closing lines: per operation, the whole
// phase's count rate and cumulative percentiles, marked "total".
func (p *TickPrinter) Total(phase string, t Tick) error {
	var b strings.Builder
	b.WriteString(totalHeader)
	b.WriteByte('\n')
	for _, o := range t.Ops {
		if o.CumCount == 0 && o.CumErrs == 0 {
			continue
		}
		fmt.Fprintf(&b, "%7.1fs %8d %14d %14.1f %8.2f %8.2f %8.2f %8.2f  %s  [%s total]\n",
			t.Elapsed.Seconds(), o.CumErrs, o.CumCount, o.OpsPerSecCum, ms(o.CumP50), ms(o.CumP95), ms(o.CumP99), ms(o.CumMax), o.Op, phase)
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}

const totalHeader = "_elapsed___errors_________ops(total)___ops/sec(cum)__p50(ms)__p95(ms)__p99(ms)_pMax(ms)"

// line counts a line and writes the header before every 20th.
func (p *TickPrinter) line(b *strings.Builder) {
	if p.lines%20 == 0 {
		b.WriteString(p.Header())
		b.WriteByte('\n')
	}
	p.lines++
}

func (p *TickPrinter) gaugesAndOp(b *strings.Builder, gv []string, op string) {
	for i, v := range gv {
		fmt.Fprintf(b, " %*s", p.widths[i], v)
	}
	fmt.Fprintf(b, " %s\n", op)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func formatGauge(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.2f", v)
}
