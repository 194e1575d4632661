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

// Print writes one line per operation of t. Gauges are matched to the
// printer's columns by name; a missing one prints as "-". A tick with no
// operation yet prints one line with the gauges, so a phase that is only
// waiting (loading, catching up) still shows its progress.
func (p *TickPrinter) Print(t Tick, gauges []Gauge) error {
	gv := make([]string, len(p.gauges))
	for i := range p.gauges {
		gv[i] = "-"
		for _, g := range gauges {
			if g.Name == p.gauges[i] {
				gv[i] = formatGauge(g.Value)
			}
		}
	}
	var b strings.Builder
	line := func(elapsed time.Duration, errs int64, inst, cum float64, p50, p95, p99, pmax time.Duration, op string) {
		if p.lines%20 == 0 {
			b.WriteString(p.Header())
			b.WriteByte('\n')
		}
		p.lines++
		fmt.Fprintf(&b, "%7.1fs %8d %14.1f %14.1f %8.2f %8.2f %8.2f %8.2f",
			elapsed.Seconds(), errs, inst, cum, ms(p50), ms(p95), ms(p99), ms(pmax))
		for i, v := range gv {
			fmt.Fprintf(&b, " %*s", p.widths[i], v)
		}
		fmt.Fprintf(&b, " %s\n", op)
	}
	if len(t.Ops) == 0 {
		line(t.Elapsed, 0, 0, 0, 0, 0, 0, 0, "-")
	}
	for _, o := range t.Ops {
		line(t.Elapsed, o.CumErrs, o.OpsPerSecInst, o.OpsPerSecCum, o.P50, o.P95, o.P99, o.Max, o.Op)
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func formatGauge(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.2f", v)
}
