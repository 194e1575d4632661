package results

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"
)

// Sizing turns capacity searches into a hardware answer: for a target
// rate, a document count and an index lag SLO, per engine, how many cores
// (from a scaling model fitted to the core counts measured), how much disk
// and write bandwidth, and how much memory. It reads results only; every
// figure it uses is one a run measured, and it says so plainly where the
// answer goes beyond what was measured.

// USL is the Universal Scalability Law, X(N) = λN / (1 + σ(N−1) + κN(N−1)):
// λ the rate of one core, σ the share serialized (contention), κ the cost
// of keeping cores coherent (crosstalk), which makes throughput fall past
// a peak.
type USL struct {
	Lambda, Sigma, Kappa float64
	// Fit says which parameters the measurements could determine:
	// "usl" (three or more core counts: λ, σ, κ), "amdahl" (two: λ and σ,
	// κ held at 0) or "linear" (one: λ only, σ = κ = 0, which assumes
	// perfect scaling).
	Fit string
}

// Rate is the model's throughput on n cores.
func (u USL) Rate(n float64) float64 {
	return u.Lambda * n / (1 + u.Sigma*(n-1) + u.Kappa*n*(n-1))
}

// Peak is the core count where the model's throughput is highest
// (+Inf when it never falls) and that throughput.
func (u USL) Peak() (n, x float64) {
	if u.Kappa <= 0 {
		if u.Sigma <= 0 {
			return math.Inf(1), math.Inf(1)
		}
		return math.Inf(1), u.Lambda / u.Sigma
	}
	n = math.Sqrt((1 - u.Sigma) / u.Kappa)
	return n, u.Rate(n)
}

func (u USL) String() string {
	s := fmt.Sprintf("λ = %.0f mutations/s per core, σ = %.3f, κ = %.4f", u.Lambda, u.Sigma, u.Kappa)
	switch u.Fit {
	case "amdahl":
		s += " (two core counts measured: κ held at 0, Amdahl's law)"
	case "linear":
		s += " (one core count measured: σ = κ = 0 assumed, perfect scaling — optimistic)"
	}
	return s
}

// FitUSL fits the law to measured (cores, rate) points by least squares
// on the rates. For a given λ the law is linear in σ and κ
// (λN/X − 1 = σ(N−1) + κN(N−1)), solved with both held ≥ 0; λ itself is
// found by a search over a log-spaced grid, refined around the best.
func FitUSL(cores, rates []float64) (USL, error) {
	if len(cores) == 0 || len(cores) != len(rates) {
		return USL{}, errors.New("fit: no measured points")
	}
	distinct := map[float64]bool{}
	maxPer := 0.0
	for i := range cores {
		if cores[i] < 1 || rates[i] <= 0 {
			return USL{}, fmt.Errorf("fit: point (%g cores, %g/s) is not positive", cores[i], rates[i])
		}
		distinct[cores[i]] = true
		maxPer = max(maxPer, rates[i]/cores[i])
	}
	if len(distinct) == 1 {
		sum := 0.0
		for i := range cores {
			sum += rates[i] / cores[i]
		}
		return USL{Lambda: sum / float64(len(cores)), Fit: "linear"}, nil
	}
	withKappa := len(distinct) >= 3
	best := USL{Lambda: math.NaN()}
	bestSSE := math.Inf(1)
	try := func(lambda float64) {
		sigma, kappa := fitContention(cores, rates, lambda, withKappa)
		u := USL{Lambda: lambda, Sigma: sigma, Kappa: kappa}
		sse := 0.0
		for i := range cores {
			d := rates[i] - u.Rate(cores[i])
			sse += d * d
		}
		if sse < bestSSE {
			best, bestSSE = u, sse
		}
	}
	lo, hi := 0.5*maxPer, 50*maxPer
	const steps = 2000
	for i := 0; i <= steps; i++ {
		try(lo * math.Pow(hi/lo, float64(i)/steps))
	}
	step := math.Pow(hi/lo, 1.0/steps)
	center := best.Lambda
	for i := -steps; i <= steps; i++ {
		try(center * math.Pow(step, float64(i)/steps))
	}
	best.Fit = "amdahl"
	if withKappa {
		best.Fit = "usl"
	}
	return best, nil
}

// fitContention solves λN/X − 1 = σ(N−1) + κN(N−1) for σ, κ ≥ 0 by least
// squares (κ = 0 unless withKappa): the unconstrained solution when it is
// non-negative, else the better of the one-parameter fits.
func fitContention(cores, rates []float64, lambda float64, withKappa bool) (sigma, kappa float64) {
	var saa, sab, sbb, say, sby float64
	for i := range cores {
		n := cores[i]
		y := lambda*n/rates[i] - 1
		a, b := n-1, n*(n-1)
		saa += a * a
		sab += a * b
		sbb += b * b
		say += a * y
		sby += b * y
	}
	resid := func(s, k float64) float64 {
		r := 0.0
		for i := range cores {
			n := cores[i]
			d := lambda*n/rates[i] - 1 - s*(n-1) - k*n*(n-1)
			r += d * d
		}
		return r
	}
	one := func(sxx, sxy float64) float64 {
		if sxx <= 0 {
			return 0
		}
		return max(sxy/sxx, 0)
	}
	sOnly := one(saa, say)
	if !withKappa {
		return sOnly, 0
	}
	if det := saa*sbb - sab*sab; det > 0 {
		s := (say*sbb - sby*sab) / det
		k := (sby*saa - say*sab) / det
		if s >= 0 && k >= 0 {
			return s, k
		}
	}
	kOnly := one(sbb, sby)
	if resid(sOnly, 0) <= resid(0, kOnly) {
		return sOnly, 0
	}
	return 0, kOnly
}

// poorFit is the relative rms error above which a sizing answer warns that
// its model does not describe the measurements.
const poorFit = 0.2

// relativeError is the rms of the model's relative misses of the points.
func (u USL) relativeError(cores, rates []float64) float64 {
	sum := 0.0
	for i := range cores {
		d := (u.Rate(cores[i]) - rates[i]) / rates[i]
		sum += d * d
	}
	return math.Sqrt(sum / float64(len(cores)))
}

// CoresFor is the fewest whole cores on which the model reaches rate, up
// to limit; ok is false when it does not within limit (or ever: the peak
// is below the rate).
func (u USL) CoresFor(rate float64, limit int) (int, bool) {
	for n := 1; n <= limit; n++ {
		if u.Rate(float64(n)) >= rate {
			return n, true
		}
	}
	return 0, false
}

// SizingRequest is what a planner asks.
type SizingRequest struct {
	TargetRate float64 // mutations/s
	Docs       int
	LagP99     time.Duration
	// Engines limits the answer to these engines (empty: every engine
	// measured).
	Engines []string
}

// Validate names the first missing or bad value, by its flag.
func (r SizingRequest) Validate() error {
	switch {
	case r.TargetRate <= 0 || math.IsNaN(r.TargetRate) || math.IsInf(r.TargetRate, 0):
		return fmt.Errorf("--target-rate %g: want a positive rate", r.TargetRate)
	case r.Docs <= 0:
		return fmt.Errorf("--docs %d: want a positive count", r.Docs)
	case r.LagP99 <= 0:
		return fmt.Errorf("--slo-lag %s: want a positive duration", r.LagP99)
	}
	return nil
}

// SizingPoint is one capacity search a sizing answer rests on.
type SizingPoint struct {
	Source   string // the results directory
	Engine   string
	Dir      string
	Cores    int
	Repeat   int
	Rate     float64 // sustainable mutations/s
	LagP99Ms float64 // the lag p99 measured at that rate
	SLOMs    float64 // the lag SLO the search used
	Stop     string
}

// SizingAnswer is the answer for one engine.
type SizingAnswer struct {
	Engine string
	Points []SizingPoint
	Model  USL
	// Cores is the answer (0 with Reachable false: the measured setup
	// does not reach the rate on any core count up to the limit).
	Cores     int
	Reachable bool
	// Disk and memory, from the load phases' fits, for the requested
	// documents (0 when no measurement gave them).
	Stores            float64
	EntriesPerDoc     float64
	DiskFixedPerStore float64
	DiskPerEntry      float64
	DiskBytes         float64
	MemFixedPerStore  float64
	MemPerEntry       float64
	MemoryBytes       float64
	PeakRSSBytes      float64 // the highest resident set measured in a capacity phase
	MeasuredDocs      float64
	// WriteBytesPerSec is the storage write bandwidth at the target rate.
	BytesPerMutation float64
	WriteBytesPerSec float64
	CPUUsPerMutation float64
	// Warnings say plainly where the answer goes beyond what was measured.
	Warnings []string
}

// maxSizingCores bounds the cores a sizing answer considers.
const maxSizingCores = 1024

// Size answers req from the capacity searches in runs (sources names each
// run's directory, for the table). Cells whose SLO was looser than asked
// are left out, with a warning.
func Size(runs []*Run, sources []string, req SizingRequest) ([]SizingAnswer, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, e := range req.Engines {
		want[e] = true
	}
	byEngine := map[string]*SizingAnswer{}
	var order []string
	type costs struct{ rows []map[string]float64 }
	loads, caps := map[string]*costs{}, map[string]*costs{}
	found := false
	for ri, run := range runs {
		for _, c := range run.Cells {
			if len(want) > 0 && !want[c.Engine] {
				continue
			}
			for pi := range c.Phases {
				ph := &c.Phases[pi]
				if ph.Metrics["docs"] > 0 && ph.Metrics["index_entries"] > 0 { // a load phase
					if loads[c.Engine] == nil {
						loads[c.Engine] = &costs{}
					}
					loads[c.Engine].rows = append(loads[c.Engine].rows, ph.Metrics)
				}
				if ph.Capacity == nil {
					continue
				}
				found = true
				a := byEngine[c.Engine]
				if a == nil {
					a = &SizingAnswer{Engine: c.Engine}
					byEngine[c.Engine] = a
					order = append(order, c.Engine)
				}
				src := sources[ri]
				slo := ph.Capacity.LagP99Ms
				if slo > ms(req.LagP99)*1.0001 {
					a.Warnings = append(a.Warnings, fmt.Sprintf("left out %s cores=%d repeat=%d: searched with lag p99 ≤ %.0fms, looser than the %s asked",
						src, c.Cores, c.Repeat, slo, req.LagP99))
					continue
				}
				p := SizingPoint{Source: src, Engine: c.Engine, Dir: c.Dir, Cores: c.Cores, Repeat: c.Repeat,
					Rate: ph.Capacity.SustainablePerSec, LagP99Ms: ph.Metrics["sustainable_index_lag_p99_ms"], SLOMs: slo, Stop: ph.Capacity.Stop}
				a.Points = append(a.Points, p)
				if caps[c.Engine] == nil {
					caps[c.Engine] = &costs{}
				}
				caps[c.Engine].rows = append(caps[c.Engine].rows, ph.Metrics)
			}
		}
	}
	if !found {
		return nil, errors.New("no capacity results in the given directories (run idxbench capacity first)")
	}
	usable := false
	for _, a := range byEngine {
		usable = usable || len(a.Points) > 0
	}
	if !usable {
		return nil, fmt.Errorf("no capacity search used an index lag SLO as strict as %s: rerun idxbench capacity with --slo-lag %s", req.LagP99, req.LagP99)
	}
	sort.Strings(order)
	var out []SizingAnswer
	for _, eng := range order {
		a := byEngine[eng]
		a.size(req)
		if l := loads[eng]; l != nil {
			a.diskAndMemory(req, l.rows)
		} else {
			a.Warnings = append(a.Warnings, "no load phase measured: disk and memory unknown")
		}
		if cp := caps[eng]; cp != nil {
			a.BytesPerMutation = medianOf(cp.rows, "bytes_written_per_mutation")
			a.CPUUsPerMutation = medianOf(cp.rows, "cpu_us_per_mutation")
			a.WriteBytesPerSec = a.BytesPerMutation * req.TargetRate
			a.PeakRSSBytes = maxOf(cp.rows, "peak_rss_bytes")
		}
		out = append(out, *a)
	}
	return out, nil
}

func (a *SizingAnswer) size(req SizingRequest) {
	var cores, rates []float64
	maxCores := 0
	for _, p := range a.Points {
		switch p.Stop {
		case "bound":
			a.Warnings = append(a.Warnings, fmt.Sprintf("%s cores=%d: the search stopped at its time bound, so its rate is less precise", p.Source, p.Cores))
		case "max_rate":
			a.Warnings = append(a.Warnings, fmt.Sprintf("%s cores=%d: the search stopped at its max_rate, so %.0f/s is a lower bound of what it sustains", p.Source, p.Cores, p.Rate))
		}
		if p.Rate <= 0 {
			a.Warnings = append(a.Warnings, fmt.Sprintf("%s cores=%d: no rate tried met the SLO; left out of the fit", p.Source, p.Cores))
			continue
		}
		cores = append(cores, float64(p.Cores))
		rates = append(rates, p.Rate)
		maxCores = max(maxCores, p.Cores)
	}
	if len(cores) == 0 {
		a.Warnings = append(a.Warnings, "no search met the SLO at any rate: no answer")
		return
	}
	u, err := FitUSL(cores, rates)
	if err != nil {
		a.Warnings = append(a.Warnings, err.Error())
		return
	}
	a.Model = u
	if rms := u.relativeError(cores, rates); rms > poorFit {
		a.Warnings = append(a.Warnings, fmt.Sprintf("the model misses the measured rates by %.0f%% (rms): the points disagree with any scaling law "+
			"(a noisy machine, or too few repeats), so the cores answer is unreliable — repeat the searches (--repeat 3) on a quiet machine", rms*100))
	}
	n, ok := u.CoresFor(req.TargetRate, maxSizingCores)
	a.Cores, a.Reachable = n, ok
	if !ok {
		pn, px := u.Peak()
		msg := fmt.Sprintf("the model never reaches %.0f mutations/s", req.TargetRate)
		if !math.IsInf(px, 1) {
			msg += fmt.Sprintf(" (it peaks at %.0f/s", px)
			if !math.IsInf(pn, 1) {
				msg += fmt.Sprintf(" on %.0f cores", pn)
			}
			msg += "): split the index over more nodes, or measure another engine or disk"
		}
		a.Warnings = append(a.Warnings, msg)
		return
	}
	if n > maxCores {
		a.Warnings = append(a.Warnings, fmt.Sprintf("EXTRAPOLATED: %d cores is %.1f× the most measured (%d); the answer rests on the fitted model, not a measurement — measure at %d cores before buying",
			n, float64(n)/float64(maxCores), maxCores, n))
	}
}

func (a *SizingAnswer) diskAndMemory(req SizingRequest, rows []map[string]float64) {
	a.Stores = medianOf(rows, "index_stores")
	a.MeasuredDocs = maxOf(rows, "docs")
	if docs := medianOf(rows, "docs"); docs > 0 {
		a.EntriesPerDoc = medianOf(rows, "index_entries") / docs
	}
	entries := a.EntriesPerDoc * float64(req.Docs)
	if _, ok := rows[0]["disk_bytes_fixed_per_store"]; !ok {
		a.Warnings = append(a.Warnings, "the load phases fitted no disk figures (the engine reports none, or the results predate the fit): disk and memory unknown")
		a.Stores = 0
		return
	}
	a.DiskFixedPerStore = medianOf(rows, "disk_bytes_fixed_per_store")
	a.DiskPerEntry = medianOf(rows, "disk_bytes_per_entry")
	a.DiskBytes = a.Stores*a.DiskFixedPerStore + entries*max(a.DiskPerEntry, 0)
	if logical := medianOf(rows, "engine_batch_bytes") / max(medianOf(rows, "index_entries"), 1); logical > 0 && a.DiskPerEntry > 4*logical {
		a.Warnings = append(a.Warnings, fmt.Sprintf("disk: %.0f B per entry on disk is %.0f× the %.0f B per entry the indexer wrote; the fit likely absorbed "+
			"fixed costs that grow in steps during the load (preallocated or recycled logs), so the disk answer is pessimistic — measure a larger load",
			a.DiskPerEntry, a.DiskPerEntry/logical, logical))
	}
	if measured := medianOf(rows, "index_entries"); a.Stores*a.DiskFixedPerStore > measured*a.DiskPerEntry {
		a.Warnings = append(a.Warnings, fmt.Sprintf("disk: the fixed part (%s over %.0f stores) outweighed the entries' (%.0f entries) where it was measured, "+
			"so the per-entry figure is uncertain (it absorbs fixed costs that grow in steps, such as preallocated logs); measure a larger load",
			fmtBytes(a.Stores*a.DiskFixedPerStore), a.Stores, measured))
	}
	a.MemFixedPerStore = medianOf(rows, "engine_memory_bytes_fixed_per_store")
	a.MemPerEntry = medianOf(rows, "engine_memory_bytes_per_entry")
	a.MemoryBytes = a.Stores*a.MemFixedPerStore + entries*max(a.MemPerEntry, 0)
	if a.MeasuredDocs > 0 && float64(req.Docs) > a.MeasuredDocs {
		a.Warnings = append(a.Warnings, fmt.Sprintf("EXTRAPOLATED: %d documents is %.1f× the most measured (%.0f); rates, disk and memory per entry were measured on a smaller index",
			req.Docs, float64(req.Docs)/a.MeasuredDocs, a.MeasuredDocs))
	}
}

// medianOf is the median of a metric over the rows that have it.
func medianOf(rows []map[string]float64, name string) float64 {
	var vs []float64
	for _, r := range rows {
		if v, ok := r[name]; ok && !math.IsNaN(v) {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0
	}
	return median(vs)
}

func maxOf(rows []map[string]float64, name string) float64 {
	m := 0.0
	for _, r := range rows {
		m = max(m, r[name])
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// WriteSizing writes the answers as text: per engine the measured points
// beside the projection, the fitted model, then disk, bandwidth and
// memory, and every warning.
func WriteSizing(w io.Writer, req SizingRequest, answers []SizingAnswer) {
	fmt.Fprintf(w, "sizing for %.0f mutations/s on %d documents, index lag p99 ≤ %s\n", req.TargetRate, req.Docs, req.LagP99)
	for _, a := range answers {
		fmt.Fprintf(w, "\nengine %s\n", a.Engine)
		fmt.Fprintf(w, "  %-8s %-6s %14s %14s %10s  %s\n", "cores", "kind", "mutations/s", "lag p99 ms", "slo ms", "source")
		pts := append([]SizingPoint(nil), a.Points...)
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].Cores < pts[j].Cores })
		for _, p := range pts {
			fmt.Fprintf(w, "  %-8d %-6s %14.0f %14.1f %10.0f  %s (dir %s, repeat %d, %s)\n", p.Cores, "meas", p.Rate, p.LagP99Ms, p.SLOMs, p.Source, p.Dir, p.Repeat, p.Stop)
		}
		if a.Model.Lambda > 0 {
			shown := map[int]bool{}
			for _, p := range pts {
				shown[p.Cores] = true
			}
			for _, n := range projectionCores(pts, a.Cores) {
				kind := "model"
				if shown[n] {
					kind = "fit"
				}
				fmt.Fprintf(w, "  %-8d %-6s %14.0f\n", n, kind, a.Model.Rate(float64(n)))
			}
			fmt.Fprintf(w, "  model: X(N) = λN / (1 + σ(N−1) + κN(N−1)), %s\n", a.Model)
		}
		switch {
		case a.Reachable:
			fmt.Fprintf(w, "  cores: %d (the model gives %.0f mutations/s there)\n", a.Cores, a.Model.Rate(float64(a.Cores)))
		default:
			fmt.Fprintf(w, "  cores: no answer\n")
		}
		if a.CPUUsPerMutation > 0 {
			fmt.Fprintf(w, "  cpu: %.1f µs per mutation measured → %.2f cores busy at the target rate\n",
				a.CPUUsPerMutation, a.CPUUsPerMutation*req.TargetRate/1e6)
		}
		if a.Stores > 0 {
			entries := a.EntriesPerDoc * float64(req.Docs)
			fmt.Fprintf(w, "  disk: %.0f stores × %s fixed + %.0f entries × %.1f B = %s\n",
				a.Stores, fmtBytes(a.DiskFixedPerStore), entries, a.DiskPerEntry, fmtBytes(a.DiskBytes))
			if a.MemFixedPerStore > 0 || a.MemPerEntry > 0 {
				fmt.Fprintf(w, "  engine memory: %.0f stores × %s fixed + %.0f entries × %.1f B = %s\n",
					a.Stores, fmtBytes(a.MemFixedPerStore), entries, a.MemPerEntry, fmtBytes(a.MemoryBytes))
			}
		}
		if a.PeakRSSBytes > 0 {
			fmt.Fprintf(w, "  peak resident set measured: %s (with %.0f documents)\n", fmtBytes(a.PeakRSSBytes), a.MeasuredDocs)
		}
		if a.BytesPerMutation > 0 {
			fmt.Fprintf(w, "  write bandwidth: %.0f B per mutation × %.0f/s = %s/s\n", a.BytesPerMutation, req.TargetRate, fmtBytes(a.WriteBytesPerSec))
		}
		for _, warn := range a.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", warn)
		}
	}
}

// projectionCores are the core counts the table projects: 1, the ones
// measured, and up to the answer (at most a dozen rows).
func projectionCores(pts []SizingPoint, answer int) []int {
	top := max(answer, 1)
	for _, p := range pts {
		top = max(top, p.Cores)
	}
	var out []int
	stride := max(1, (top+11)/12)
	for n := 1; n <= top; n += stride {
		out = append(out, n)
	}
	if out[len(out)-1] != top {
		out = append(out, top)
	}
	return out
}

func fmtBytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}
