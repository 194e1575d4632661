package results

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartW      = 440
	chartH      = 240
	marginLeft  = 58
	marginRight = 12
	marginTop   = 12
	marginBot   = 40
)

// chart is one inline SVG chart, fully laid out in Go so the page needs no
// script. Kind goes into the data-chart attribute the browser test counts.
type chart struct {
	Kind   string
	Title  string
	YLabel string
	XLabel string
	W, H   int
	Lines  []chartLine
	Bars   []chartBar
	XTicks []chartTick
	YTicks []chartTick
	Legend []legendItem
	// Plot area.
	X0, Y0, X1, Y1 float64
}

type chartLine struct {
	Label  string
	Color  string
	Dashed bool
	D      string
	Points []chartPoint
}

type chartPoint struct {
	X, Y  float64
	Title string
}

type chartBar struct {
	X, Y, W, H float64
	Color      string
	Label      string
	Value      string
	Exact      string  // the unrounded value, for the hover text
	TextY      float64 // where the value's label sits
	// Err draws an error bar from ErrLo to ErrHi (y coordinates).
	Err          bool
	ErrLo, ErrHi float64
	CapX0, CapX1 float64 // the error bar's caps
	LabelX       float64
	LabelY       float64
}

type chartTick struct {
	Pos   float64
	Label string
}

type legendItem struct {
	Label  string
	Color  string
	Dashed bool
}

type xySeries struct {
	Label  string
	Color  string
	Dashed bool
	X, Y   []float64
}

var palette = []string{"#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#6b6ecf"}

func newChart(kind, title, xlabel, ylabel string) *chart {
	return &chart{Kind: kind, Title: title, XLabel: xlabel, YLabel: ylabel, W: chartW, H: chartH,
		X0: marginLeft, Y0: marginTop, X1: chartW - marginRight, Y1: chartH - marginBot}
}

// lineChart lays out series as polylines with point markers. xfmt formats
// x tick labels; when xcat is set, x values are category indexes labelled
// by xcat.
func lineChart(kind, title, xlabel, ylabel string, series []xySeries, xcat []string) *chart {
	return lineChartX(kind, title, xlabel, ylabel, series, xcat, nil)
}

// xExtent is the range of x over series, or ±Inf when there is none.
func xExtent(series []xySeries) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, x := range s.X {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
	}
	return lo, hi
}

// lineChartX is lineChart with the x range given (xr non-nil), so charts
// shown side by side share their time axis.
func lineChartX(kind, title, xlabel, ylabel string, series []xySeries, xcat []string, xr *[2]float64) *chart {
	c := newChart(kind, title, xlabel, ylabel)
	xmin, xmax := xExtent(series)
	ymax := 0.0
	for _, s := range series {
		for _, y := range s.Y {
			ymax = math.Max(ymax, y)
		}
	}
	if math.IsInf(xmin, 0) {
		return nil
	}
	if xr != nil {
		xmin, xmax = math.Min(xmin, xr[0]), math.Max(xmax, xr[1])
	}
	if xcat != nil {
		xmin, xmax = -0.5, float64(len(xcat))-0.5
	} else if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	yticks, ytop := niceTicks(ymax)
	sx := func(x float64) float64 { return c.X0 + (x-xmin)/(xmax-xmin)*(c.X1-c.X0) }
	sy := func(y float64) float64 { return c.Y1 - y/ytop*(c.Y1-c.Y0) }
	for _, t := range yticks {
		c.YTicks = append(c.YTicks, chartTick{Pos: sy(t), Label: tickLabel(t)})
	}
	if xcat != nil {
		step := 1
		if len(xcat) > 8 {
			step = (len(xcat) + 7) / 8
		}
		for i := 0; i < len(xcat); i += step {
			c.XTicks = append(c.XTicks, chartTick{Pos: sx(float64(i)), Label: xcat[i]})
		}
	} else if integerX(series) && xmax-xmin <= 16 {
		// Core counts and the like: a tick at each whole number.
		for t := math.Ceil(xmin); t <= xmax; t++ {
			c.XTicks = append(c.XTicks, chartTick{Pos: sx(t), Label: tickLabel(t)})
		}
	} else {
		xt, _ := niceRange(xmin, xmax)
		for _, t := range xt {
			c.XTicks = append(c.XTicks, chartTick{Pos: sx(t), Label: tickLabel(t)})
		}
	}
	for _, s := range series {
		if len(s.X) == 0 {
			continue
		}
		l := chartLine{Label: s.Label, Color: s.Color, Dashed: s.Dashed}
		var d strings.Builder
		idx := make([]int, len(s.X))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return s.X[idx[a]] < s.X[idx[b]] })
		for n, i := range idx {
			px, py := sx(s.X[i]), sy(s.Y[i])
			if n == 0 {
				fmt.Fprintf(&d, "M%.1f,%.1f", px, py)
			} else {
				fmt.Fprintf(&d, " L%.1f,%.1f", px, py)
			}
			if len(s.X) <= 40 {
				xl := FormatValue(s.X[i])
				if xcat != nil {
					xl = xcat[int(s.X[i])]
				}
				// The hover text carries the exact value; the axis rounds.
				l.Points = append(l.Points, chartPoint{X: px, Y: py, Title: fmt.Sprintf("%s: %s (%g) at %s", s.Label, FormatValue(s.Y[i]), s.Y[i], xl)})
			}
		}
		if len(idx) == 1 {
			// A single point still draws a visible mark.
			fmt.Fprintf(&d, " l0.01,0")
		}
		l.D = d.String()
		c.Lines = append(c.Lines, l)
		c.Legend = append(c.Legend, legendItem{Label: s.Label, Color: s.Color, Dashed: s.Dashed})
	}
	return c
}

type barItem struct {
	Label string
	Value float64
	Text  string // the value as shown; FormatValue when empty
	Color string
	// Lo and Hi, when Hi > Lo, draw an error bar (the range over repeats).
	Lo, Hi float64
}

// barChart lays out one bar per item, from zero.
func barChart(kind, title, ylabel string, items []barItem) *chart {
	if len(items) == 0 {
		return nil
	}
	c := newChart(kind, title, "", ylabel)
	ymax := 0.0
	for _, it := range items {
		ymax = math.Max(ymax, math.Max(it.Value, it.Hi))
	}
	yticks, ytop := niceTicks(ymax)
	sy := func(y float64) float64 { return c.Y1 - y/ytop*(c.Y1-c.Y0) }
	for _, t := range yticks {
		c.YTicks = append(c.YTicks, chartTick{Pos: sy(t), Label: tickLabel(t)})
	}
	slot := (c.X1 - c.X0) / float64(len(items))
	bw := math.Min(slot*0.7, 60)
	for i, it := range items {
		if it.Text == "" {
			it.Text = FormatValue(it.Value)
		}
		x := c.X0 + slot*float64(i) + (slot-bw)/2
		y := sy(math.Max(it.Value, 0))
		h := c.Y1 - y
		if h < 1 && it.Value > 0 {
			h, y = 1, c.Y1-1
		}
		b := chartBar{X: x, Y: y, TextY: y, W: bw, H: h, Color: it.Color, Label: it.Label,
			Value: it.Text, Exact: fmt.Sprintf("%g", it.Value), LabelX: x + bw/2, LabelY: c.Y1 + 14}
		if it.Hi > it.Lo {
			b.Err = true
			b.ErrLo, b.ErrHi = sy(math.Max(it.Lo, 0)), sy(it.Hi)
			b.CapX0, b.CapX1 = x+bw/2-4, x+bw/2+4
			b.Exact += fmt.Sprintf(", range %g–%g", it.Lo, it.Hi)
			// The value sits above the error bar, not on it.
			b.TextY = math.Min(b.Y, b.ErrHi)
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}

// niceTicks returns tick values from 0 to a round top ≥ max.
func niceTicks(max float64) ([]float64, float64) {
	if max <= 0 || math.IsNaN(max) || math.IsInf(max, 0) {
		return []float64{0, 1}, 1
	}
	step := niceStep(max / 4)
	top := math.Ceil(max/step) * step
	var ts []float64
	for v := 0.0; v <= top+step/2; v += step {
		ts = append(ts, v)
	}
	return ts, top
}

// niceRange returns round ticks within [lo, hi].
func niceRange(lo, hi float64) ([]float64, float64) {
	step := niceStep((hi - lo) / 5)
	var ts []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step/1e6; v += step {
		ts = append(ts, v)
	}
	return ts, step
}

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

func integerX(series []xySeries) bool {
	for _, s := range series {
		for _, x := range s.X {
			if x != math.Trunc(x) {
				return false
			}
		}
	}
	return true
}

// tickLabel is FormatValue without trailing zeros ("2" not "2.000",
// "2.5k" not "2.500k"): axis ticks are round numbers.
func tickLabel(v float64) string {
	s := FormatValue(v)
	num := strings.TrimRight(s, "kMGT")
	sfx := s[len(num):]
	if strings.Contains(num, ".") && !strings.ContainsAny(num, "eE") {
		num = strings.TrimRight(strings.TrimRight(num, "0"), ".")
	}
	return num + sfx
}
