package harness

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// A long run (a phase with drift: true, the soak scenario) is judged for
// drift: what a leak or a backlog looks like from outside. Every second the
// ticker samples each process's resident set and goroutines, the mutation
// queue and the index lag p99 of that second; at the end the phase is
// split in quarters, the first is warm-up, and the second ("early") is
// compared with the last ("late"):
//
//   - resident set and goroutines of every process must be flat: the late
//     mean within ±10% of the early mean (goroutines also within ±2, as
//     a few come and go);
//   - index lag p99 must not trend up: the late median may exceed the
//     early median by 10%, or by one snapshot interval, whichever is more.
//
// The queue and the live heap are reported, not judged: a queue that grows
// shows as lag, and a heap that grows shows in the resident set (which is
// what the machine runs out of); a resident set that grows over a flat
// live heap is the collector still approaching its goal, so a soak needs
// a warm-up long enough for that (minutes).

// Drift series: a sample holds some of these (per process where named so).
const (
	seriesRSS        = "rss_bytes"
	seriesHeap       = "heap_live_bytes"
	seriesGoroutines = "goroutines"
	seriesQueue      = "queue"
	seriesLagP99     = "index_lag_p99_ms"
)

// driftLimit is the largest relative change of a flat series.
const driftLimit = 0.10

// maxDriftSamples bounds the samples a phase keeps: beyond it, neighbours
// are merged, so a day-long soak keeps a few thousand.
const maxDriftSamples = 4096

// driftSample is one second (or, merged, a few) of a phase.
type driftSample struct {
	at time.Duration // since the phase began
	v  map[string]float64
}

// driftSampler collects a phase's samples. It is used by the ticker's
// goroutine, then read once the ticker stopped.
type driftSampler struct {
	samples []driftSample
}

func (d *driftSampler) add(at time.Duration, v map[string]float64) {
	d.samples = append(d.samples, driftSample{at, v})
	if len(d.samples) < maxDriftSamples {
		return
	}
	merged := d.samples[:0]
	for i := 0; i+1 < len(d.samples); i += 2 {
		a, b := d.samples[i], d.samples[i+1]
		m := driftSample{at: (a.at + b.at) / 2, v: map[string]float64{}}
		for k, x := range a.v {
			m.v[k] = x
		}
		for k, y := range b.v {
			if x, ok := m.v[k]; ok {
				m.v[k] = (x + y) / 2
			} else {
				m.v[k] = y
			}
		}
		merged = append(merged, m)
	}
	d.samples = merged
}

// driftCheck is one series compared between the early and the late window.
type driftCheck struct {
	Series      string
	Early, Late float64
	// Judged is false for series only reported (the queue).
	Judged, OK bool
}

// Pct is the late value's change from the early one, in percent.
func (c driftCheck) Pct() float64 {
	if c.Early == 0 {
		if c.Late == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return (c.Late - c.Early) / c.Early * 100
}

// driftVerdict is a phase's drift judgement.
type driftVerdict struct {
	Samples int
	// TooShort is set when the phase had too few samples to judge.
	TooShort bool
	Checks   []driftCheck
}

// OK reports whether every judged series held.
func (v driftVerdict) OK() bool {
	for _, c := range v.Checks {
		if c.Judged && !c.OK {
			return false
		}
	}
	return true
}

// Failures counts the judged series that drifted.
func (v driftVerdict) Failures() int {
	n := 0
	for _, c := range v.Checks {
		if c.Judged && !c.OK {
			n++
		}
	}
	return n
}

func (v driftVerdict) String() string {
	if v.TooShort {
		return fmt.Sprintf("drift: not judged, %d samples are too few", v.Samples)
	}
	var bad, good []string
	for _, c := range v.Checks {
		if !c.Judged {
			continue
		}
		s := fmt.Sprintf("%s %+.1f%% (%s → %s)", c.Series, c.Pct(), fmtSeries(c.Series, c.Early), fmtSeries(c.Series, c.Late))
		if c.OK {
			good = append(good, s)
		} else {
			bad = append(bad, s)
		}
	}
	if len(bad) > 0 {
		return "drift: " + strings.Join(bad, ", ") + fmt.Sprintf(" (limit ±%.0f%% after warm-up, %d samples)", driftLimit*100, v.Samples)
	}
	return fmt.Sprintf("drift: ok over %d samples: %s", v.Samples, strings.Join(good, ", "))
}

func fmtSeries(series string, x float64) string {
	switch {
	case strings.HasPrefix(series, seriesRSS), strings.HasPrefix(series, seriesHeap):
		return fmt.Sprintf("%.0f MiB", x/(1<<20))
	case strings.HasPrefix(series, seriesLagP99):
		return fmt.Sprintf("%.0f ms", x)
	}
	return fmt.Sprintf("%.1f", x)
}

// verdict judges the samples; snapshot is the indexer's snapshot interval,
// the least lag increase that counts as a trend.
func (d *driftSampler) verdict(snapshot time.Duration) driftVerdict {
	v := driftVerdict{Samples: len(d.samples)}
	if len(d.samples) < 8 {
		v.TooShort = true
		return v
	}
	total := d.samples[len(d.samples)-1].at
	window := func(from, to time.Duration, series string) []float64 {
		var xs []float64
		for _, s := range d.samples {
			if x, ok := s.v[series]; ok && s.at >= from && s.at < to {
				xs = append(xs, x)
			}
		}
		return xs
	}
	var names []string
	for _, s := range d.samples {
		for k := range s.v {
			if !slices.Contains(names, k) {
				names = append(names, k)
			}
		}
	}
	slices.Sort(names)
	for _, name := range names {
		early, late := window(total/4, total/2, name), window(3*total/4, total+1, name)
		if len(early) < 2 || len(late) < 2 {
			continue
		}
		c := driftCheck{Series: name, Judged: true}
		switch {
		case strings.HasPrefix(name, seriesLagP99):
			c.Early, c.Late = median(early), median(late)
			c.OK = c.Late <= c.Early*(1+driftLimit) || c.Late-c.Early <= ms(snapshot)
		case strings.HasPrefix(name, seriesRSS):
			c.Early, c.Late = mean(early), mean(late)
			c.OK = math.Abs(c.Late-c.Early) <= driftLimit*c.Early
		case strings.HasPrefix(name, seriesGoroutines):
			c.Early, c.Late = mean(early), mean(late)
			c.OK = math.Abs(c.Late-c.Early) <= max(driftLimit*c.Early, 2)
		default:
			c.Early, c.Late, c.Judged, c.OK = mean(early), mean(late), false, true
		}
		v.Checks = append(v.Checks, c)
	}
	return v
}

// addMetrics reports the verdict as metrics: per series drift_<series>_early,
// _late and _pct, then drift_samples and drift_failures.
func (v driftVerdict) addMetrics(m map[string]float64) {
	m["drift_samples"] = float64(v.Samples)
	if v.TooShort {
		return
	}
	for _, c := range v.Checks {
		m["drift_"+c.Series+"_early"] = c.Early
		m["drift_"+c.Series+"_late"] = c.Late
		if p := c.Pct(); !math.IsInf(p, 0) {
			m["drift_"+c.Series+"_pct"] = p
		}
	}
	m["drift_failures"] = float64(v.Failures())
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
