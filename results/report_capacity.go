package results

import (
	"fmt"
	"math"
	"sort"
)

// capacitySection charts capacity searches: per cell, the index lag p99
// of each step against its target rate (the knee where the pipeline stops
// keeping up), and per engine the sustainable rate against cores, with
// the Universal Scalability Law fitted to it drawn dashed beside the
// measured points.
func capacitySection(run *Run, colors map[string]string) chartSection {
	sec := chartSection{ID: "capacity", Title: "Capacity",
		Note: "Each capacity step's index lag p99 against its target rate (the knee is where the pipeline stops keeping up); " +
			"the sustainable rate against cores, measured (solid) and the scaling model fitted to it (dashed)."}
	v := variants(run)
	var knees []xySeries
	type pts struct{ cores, rates []float64 }
	byEngine := map[string]*pts{}
	var engines []string
	for _, c := range run.Cells {
		for _, ph := range c.Phases {
			if ph.Capacity == nil {
				continue
			}
			steps := append([]Step(nil), ph.Steps...)
			sort.SliceStable(steps, func(i, j int) bool { return steps[i].TargetPerSec < steps[j].TargetPerSec })
			s := xySeries{Label: v.label(c.Engine, c.Cores, c.Dir), Color: colors[c.Engine]}
			if v.repeats {
				s.Label += fmt.Sprintf(" r%d", c.Repeat)
			}
			for _, st := range steps {
				s.X = append(s.X, st.TargetPerSec)
				s.Y = append(s.Y, st.LagP99Ms)
			}
			if len(s.X) > 0 {
				knees = append(knees, s)
			}
			if ph.Capacity.SustainablePerSec > 0 {
				p := byEngine[c.Engine]
				if p == nil {
					p = &pts{}
					byEngine[c.Engine] = p
					engines = append(engines, c.Engine)
				}
				p.cores = append(p.cores, float64(c.Cores))
				p.rates = append(p.rates, ph.Capacity.SustainablePerSec)
			}
		}
	}
	if len(knees) == 0 {
		sec.Note = "This run has no capacity phase (idxbench capacity runs one)."
		return sec
	}
	if c := lineChart("knee", "capacity steps · index lag p99 against target rate", "target mutations/s", "lag p99 ms, lower is better ↓", knees, nil); c != nil {
		sec.Charts = append(sec.Charts, c)
	}
	var scal []xySeries
	for _, e := range engines {
		p := byEngine[e]
		meas := xySeries{Label: e + " measured", Color: colors[e]}
		idx := make([]int, len(p.cores))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return p.cores[idx[a]] < p.cores[idx[b]] })
		top := 0.0
		for _, i := range idx {
			meas.X = append(meas.X, p.cores[i])
			meas.Y = append(meas.Y, p.rates[i])
			top = math.Max(top, p.cores[i])
		}
		scal = append(scal, meas)
		if u, err := FitUSL(p.cores, p.rates); err == nil && u.Fit != "linear" {
			model := xySeries{Label: e + " model", Color: colors[e], Dashed: true}
			for n := 1.0; n <= 2*top; n++ {
				model.X = append(model.X, n)
				model.Y = append(model.Y, u.Rate(n))
			}
			scal = append(scal, model)
		}
	}
	if c := lineChart("scaling", "capacity · sustainable rate against cores", "cores", "mutations/s, higher is better ↑", scal, nil); c != nil {
		sec.Charts = append(sec.Charts, c)
	}
	return sec
}
