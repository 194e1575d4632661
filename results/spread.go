package results

import (
	"math"
	"slices"
	"sort"
)

// MinRepeatsForCV is the fewest repeats a coefficient of variation is
// given for: with two, the sample standard deviation is half the range and
// says little about the spread a gate will meet.
const MinRepeatsForCV = 3

// Group is one phase of one engine on one data dir and core count, over
// the repeats that ran it.
type Group struct {
	Engine  string `json:"engine"`
	Dir     string `json:"dir"`
	Cores   int    `json:"cores"`
	Phase   string `json:"phase"`
	Repeats int    `json:"repeats"`
	// Metrics summarizes each metric over the repeats that reported it.
	Metrics map[string]Spread `json:"metrics"`
}

// Spread is one metric over repeats.
type Spread struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// CV is the coefficient of variation, the sample standard deviation
	// over the absolute mean; nil with fewer than MinRepeatsForCV values or
	// a mean of zero.
	CV *float64 `json:"cv,omitempty"`
}

// SpreadOf summarizes values (not modified).
func SpreadOf(values []float64) Spread {
	if len(values) == 0 {
		return Spread{}
	}
	v := slices.Clone(values)
	sort.Float64s(v)
	s := Spread{N: len(v), Min: v[0], Max: v[len(v)-1]}
	if n := len(v); n%2 == 1 {
		s.Median = v[n/2]
	} else {
		s.Median = (v[n/2-1] + v[n/2]) / 2
	}
	if len(v) >= MinRepeatsForCV {
		var sum float64
		for _, x := range v {
			sum += x
		}
		mean := sum / float64(len(v))
		if mean != 0 {
			var ss float64
			for _, x := range v {
				ss += (x - mean) * (x - mean)
			}
			cv := math.Sqrt(ss/float64(len(v)-1)) / math.Abs(mean)
			s.CV = &cv
		}
	}
	return s
}

// Summarize groups run's cells by engine, data dir, core count and phase,
// and summarizes every metric over the repeats. Cells that ended in an
// error are left out, as Compare leaves them out. Groups come in the order
// the run met them (engines in --engine order, phases in scenario order).
func Summarize(run *Run) []Group {
	type key struct {
		engine, dir string
		cores       int
		phase       string
	}
	var order []key
	values := map[key]map[string][]float64{}
	repeats := map[key]int{}
	for _, c := range run.Cells {
		if c.Error != "" {
			continue
		}
		for _, p := range c.Phases {
			k := key{c.Engine, c.Dir, c.Cores, p.Name}
			if _, ok := values[k]; !ok {
				order = append(order, k)
				values[k] = map[string][]float64{}
			}
			repeats[k]++
			for name, v := range p.Metrics {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					continue
				}
				values[k][name] = append(values[k][name], v)
			}
		}
	}
	groups := make([]Group, 0, len(order))
	for _, k := range order {
		g := Group{Engine: k.engine, Dir: k.dir, Cores: k.cores, Phase: k.phase, Repeats: repeats[k], Metrics: map[string]Spread{}}
		for name, vs := range values[k] {
			g.Metrics[name] = SpreadOf(vs)
		}
		groups = append(groups, g)
	}
	return groups
}
