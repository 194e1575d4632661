package results

import (
	"errors"
	"fmt"
	"math"
	"path"
	"sort"
	"strings"

	"golang.org/x/perf/benchmath"
)

// CompareOptions tune Compare. The zero value uses the defaults.
type CompareOptions struct {
	// Threshold is the smallest relative change of a median that counts as
	// a regression or an improvement (default 0.05, that is 5%). A
	// statistically significant change smaller than this is reported but
	// does not fail a nightly job.
	Threshold float64
	// Alpha is the significance level of the Mann-Whitney U test (default
	// 0.05).
	Alpha float64
	// Confidence is the level of the medians' confidence intervals
	// (default 0.95).
	Confidence float64
	// Metrics, when set, limits the comparison to metrics whose name
	// matches one of these path.Match patterns ("mutations_per_sec",
	// "scan_*_ms"), so a nightly job can gate on the figures it trusts.
	Metrics []string
}

func (o CompareOptions) withDefaults() CompareOptions {
	if o.Threshold == 0 {
		o.Threshold = 0.05
	}
	if o.Alpha == 0 {
		o.Alpha = 0.05
	}
	if o.Confidence == 0 {
		o.Confidence = 0.95
	}
	return o
}

// Validate reports options out of range.
func (o CompareOptions) Validate() error {
	switch {
	case o.Threshold < 0 || math.IsNaN(o.Threshold) || math.IsInf(o.Threshold, 0):
		return fmt.Errorf("threshold %v out of range: want a fraction ≥ 0 (0.05 is 5%%)", o.Threshold)
	case o.Alpha < 0 || o.Alpha >= 1 || math.IsNaN(o.Alpha):
		return fmt.Errorf("alpha %v out of range (0,1)", o.Alpha)
	case o.Confidence < 0 || o.Confidence >= 1 || math.IsNaN(o.Confidence):
		return fmt.Errorf("confidence %v out of range (0,1)", o.Confidence)
	}
	for _, p := range o.Metrics {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("metric pattern %q: %w", p, err)
		}
	}
	return nil
}

// Verdict classifies one compared metric.
type Verdict string

const (
	// Same: no significant change, or a significant one within the
	// threshold, or a metric without a good direction.
	Same Verdict = "~"
	// Improved: significant and beyond the threshold in the good direction.
	Improved Verdict = "improved"
	// Regressed: significant and beyond the threshold in the bad direction.
	// This is the only verdict that fails a comparison.
	Regressed Verdict = "REGRESSION"
	// Warning: beyond the threshold in the bad direction, but there are too
	// few samples for the test to ever be significant. Informational.
	Warning Verdict = "warning"
	// OnlyOld and OnlyNew: the metric exists on one side only.
	OnlyOld Verdict = "only-old"
	OnlyNew Verdict = "only-new"
)

// GroupKey is what samples are pooled by: every repeat of every run with
// the same engine, cores, data dir label, phase and metric is one sample.
type GroupKey struct {
	Engine string
	Cores  int
	Dir    string
	Phase  string
	Metric string
}

// Summary is one side of a compared metric: the median of its samples and
// the median's confidence interval (±Inf when there are too few samples).
type Summary struct {
	Median, Lo, Hi float64
	N              int
}

// Row is one compared metric.
type Row struct {
	GroupKey
	Better   int // as Better(Metric)
	Old, New Summary
	// Change is the relative change of the median, new/old − 1 (NaN when
	// the old median is 0 or one side is missing).
	Change float64
	// P is the Mann-Whitney U test's p-value (1 when it could not run).
	P       float64
	Verdict Verdict
	// Notes are benchmath's warnings for this row ("need >= 4 samples to
	// detect a difference at alpha level 0.05").
	Notes []string
}

// Comparison is the outcome of Compare.
type Comparison struct {
	Options CompareOptions
	Rows    []Row
	// Regressions counts rows with the Regressed verdict.
	Regressions int
	// Warnings are comparison-wide notes (too few samples for any
	// significance, cells skipped for errors), deduplicated.
	Warnings []string
}

// Compare compares the runs old and new (each one run, its repeats, or a
// history of runs). It pools samples per GroupKey, summarizes each side by
// its median with a confidence interval, and tests the difference with a
// Mann-Whitney U test (benchmath.AssumeNothing, which makes no assumption
// about the distribution). A metric regresses when the test is significant
// (p < Alpha) and the median moved more than Threshold in the bad
// direction of Better. Cells that ended in an error are left out, with a
// warning. Compare fails only when the sides share no metric at all.
func Compare(old, new []*Run, opts CompareOptions) (*Comparison, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cmp := &Comparison{Options: opts}
	warned := map[string]bool{}
	warn := func(s string) {
		if !warned[s] {
			warned[s] = true
			cmp.Warnings = append(cmp.Warnings, s)
		}
	}
	oldS := filterMetrics(pool(old, "old", warn), opts.Metrics)
	newS := filterMetrics(pool(new, "new", warn), opts.Metrics)
	if len(oldS) == 0 {
		return nil, fmt.Errorf("old side has no metrics to compare%s", why(old, opts))
	}
	if len(newS) == 0 {
		return nil, fmt.Errorf("new side has no metrics to compare%s", why(new, opts))
	}

	keys := make([]GroupKey, 0, len(oldS)+len(newS))
	for k := range oldS {
		keys = append(keys, k)
	}
	for k := range newS {
		if _, ok := oldS[k]; !ok {
			keys = append(keys, k)
		}
	}
	sortKeys(keys, phaseRanks(append(append([]*Run(nil), old...), new...)))

	thr := &benchmath.Thresholds{CompareAlpha: opts.Alpha}
	common := 0
	for _, k := range keys {
		row := Row{GroupKey: k, Better: Better(k.Metric), Change: math.NaN(), P: 1}
		ov, hasOld := oldS[k]
		nv, hasNew := newS[k]
		var oldSample, newSample *benchmath.Sample
		if hasOld {
			oldSample = benchmath.NewSample(append([]float64(nil), ov...), thr)
			row.Old = summarize(oldSample, opts.Confidence)
		}
		if hasNew {
			newSample = benchmath.NewSample(append([]float64(nil), nv...), thr)
			row.New = summarize(newSample, opts.Confidence)
		}
		switch {
		case !hasNew:
			row.Verdict = OnlyOld
		case !hasOld:
			row.Verdict = OnlyNew
		default:
			common++
			c := benchmath.AssumeNothing.Compare(oldSample, newSample)
			row.P = c.P
			for _, w := range c.Warnings {
				row.Notes = append(row.Notes, w.Error())
				if row.Better != Neutral {
					warn(w.Error())
				}
			}
			if row.Old.Median != 0 {
				row.Change = row.New.Median/row.Old.Median - 1
			} else if row.New.Median == 0 {
				row.Change = 0
			}
			row.Verdict = verdict(row, opts)
			if row.Verdict == Regressed {
				cmp.Regressions++
			}
		}
		cmp.Rows = append(cmp.Rows, row)
	}
	if common == 0 {
		return nil, errors.New("old and new share no engine/cores/dir/phase/metric to compare (different scenarios or engines?)")
	}
	return cmp, nil
}

func verdict(r Row, o CompareOptions) Verdict {
	if r.Better == Neutral || math.IsNaN(r.Change) {
		return Same
	}
	bad := float64(-r.Better) * r.Change // > 0 when moving the bad way
	significant := r.P < o.Alpha
	switch {
	case significant && bad > o.Threshold:
		return Regressed
	case significant && -bad > o.Threshold:
		return Improved
	case !significant && bad > o.Threshold && len(r.Notes) > 0:
		// Too few samples for the test ever to reject; say so without
		// failing.
		return Warning
	}
	return Same
}

func summarize(s *benchmath.Sample, confidence float64) Summary {
	sum := benchmath.AssumeNothing.Summary(s, confidence)
	return Summary{Median: sum.Center, Lo: sum.Lo, Hi: sum.Hi, N: len(s.Values)}
}

// pool gathers every finite metric value of runs by GroupKey.
func pool(runs []*Run, side string, warn func(string)) map[GroupKey][]float64 {
	m := map[GroupKey][]float64{}
	for _, r := range runs {
		if r == nil {
			continue
		}
		for _, c := range r.Cells {
			if c.Error != "" {
				warn(fmt.Sprintf("%s: cell %s left out: %s", side, c.Key(), c.Error))
				continue
			}
			for _, p := range c.Phases {
				for name, v := range p.Metrics {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						continue
					}
					k := GroupKey{Engine: c.Engine, Cores: c.Cores, Dir: c.Dir, Phase: p.Name, Metric: name}
					m[k] = append(m[k], v)
				}
			}
		}
	}
	return m
}

// phaseRanks numbers phases in the order the runs ran them, so the table
// follows the scenario rather than the alphabet.
func phaseRanks(runs []*Run) map[string]int {
	rank := map[string]int{}
	for _, r := range runs {
		if r == nil {
			continue
		}
		for _, c := range r.Cells {
			for _, p := range c.Phases {
				if _, ok := rank[p.Name]; !ok {
					rank[p.Name] = len(rank)
				}
			}
		}
	}
	return rank
}

func sortKeys(keys []GroupKey, phaseRank map[string]int) {
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Engine != b.Engine {
			return a.Engine < b.Engine
		}
		if a.Cores != b.Cores {
			return a.Cores < b.Cores
		}
		if a.Dir != b.Dir {
			return a.Dir < b.Dir
		}
		if a.Phase != b.Phase {
			if ra, rb := phaseRank[a.Phase], phaseRank[b.Phase]; ra != rb {
				return ra < rb
			}
			return a.Phase < b.Phase
		}
		return a.Metric < b.Metric
	})
}

func filterMetrics(m map[GroupKey][]float64, patterns []string) map[GroupKey][]float64 {
	if len(patterns) == 0 {
		return m
	}
	for k := range m {
		keep := false
		for _, p := range patterns {
			if ok, _ := path.Match(p, k.Metric); ok {
				keep = true
				break
			}
		}
		if !keep {
			delete(m, k)
		}
	}
	return m
}

// why explains an empty side: no cells, every cell failed, or the metric
// patterns matched nothing.
func why(runs []*Run, o CompareOptions) string {
	cells, failed := 0, 0
	for _, r := range runs {
		if r == nil {
			continue
		}
		for _, c := range r.Cells {
			cells++
			if c.Error != "" {
				failed++
			}
		}
	}
	switch {
	case cells == 0:
		return " (no cells)"
	case failed == cells:
		return fmt.Sprintf(" (all %d cell(s) ended in an error)", cells)
	case len(o.Metrics) > 0:
		return fmt.Sprintf(" (no metric matches %s)", strings.Join(o.Metrics, ","))
	}
	return ""
}
