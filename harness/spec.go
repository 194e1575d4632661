package harness

import (
	"fmt"
	"io"

	"github.com/goccy/go-yaml"

	"github.com/idxbench/idxbench/workload"
)

// EffectiveWorkload is the scenario's workload spec with the command line's
// overrides applied, validated.
func EffectiveWorkload(sc *Scenario, o Overrides) (workload.Spec, error) {
	spec := workload.DefaultSpec()
	if len(sc.Workload) > 0 {
		var err error
		if spec, err = workload.ParseSpec(sc.Workload); err != nil {
			return spec, fmt.Errorf("scenario %s: %w", sc.Name, err)
		}
	}
	if o.Seed != nil {
		spec.Seed = *o.Seed
	}
	if o.Docs != nil {
		spec.Docs = *o.Docs
	}
	if o.Vbuckets != nil {
		spec.Vbuckets = *o.Vbuckets
	}
	if err := spec.Validate(); err != nil {
		return spec, fmt.Errorf("with flags applied: %w", err)
	}
	return spec, nil
}

// PrintSpec writes the effective scenario (flags applied) as YAML.
func (p *plan) PrintSpec(w io.Writer) error {
	wl, err := EffectiveWorkload(p.scenario, p.cfg.Overrides)
	if err != nil {
		return err
	}
	sc := *p.scenario
	sc.Phases = p.effectivePhases()
	wy, err := wl.YAML()
	if err != nil {
		return err
	}
	sc.Workload = wy
	out, err := yaml.Marshal(&sc)
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// effectivePhases applies --duration to every timed phase.
func (p *plan) effectivePhases() []Phase {
	return applyDuration(p.scenario.Phases, p.cfg.Overrides)
}

func applyDuration(phases []Phase, o Overrides) []Phase {
	out := append([]Phase(nil), phases...)
	if o.Duration == 0 {
		return out
	}
	for i := range out {
		switch out[i].Type {
		case PhaseIngest:
			out[i].Mutations = 0
			out[i].Duration = Duration(o.Duration)
		case PhaseScan:
			out[i].Duration = Duration(o.Duration)
		}
	}
	return out
}
