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

// checkPhaseRefs follows the scenario's phases over the workload's indexes
// and refuses, before anything runs, a phase naming an index that will not
// be there when it runs: a scan of an unknown or not yet built index (or of
// no secondary index at all), a drop of an unknown or dropped index, a
// build of an index that is not deferred or already built, and a rollback
// with no index to check.
func checkPhaseRefs(sc *Scenario, spec workload.Spec) error {
	live := map[string]bool{}     // built and not dropped
	deferred := map[string]bool{} // created, not yet built
	primary := map[string]bool{}
	for _, d := range spec.Indexes {
		if d.Deferred {
			deferred[d.Name] = true
		} else {
			live[d.Name] = true
		}
		primary[d.Name] = d.IsPrimary
	}
	for i, p := range sc.Phases {
		at := fmt.Sprintf("phases[%d] (%s)", i, p.Label())
		switch p.Type {
		case PhaseScan:
			if p.Index != "" {
				if !live[p.Index] {
					return fmt.Errorf("%s: scans index %q, which %s", at, p.Index, whyNotLive(p.Index, deferred))
				}
				continue
			}
			found := false
			for name := range live {
				found = found || !primary[name]
			}
			if !found {
				return fmt.Errorf("%s: no secondary index is built when it runs; name one with index", at)
			}
		case PhaseDropIndex:
			if !live[p.Index] {
				return fmt.Errorf("%s: drops index %q, which %s", at, p.Index, whyNotLive(p.Index, deferred))
			}
			delete(live, p.Index)
		case PhaseBuild:
			names := p.Indexes
			if len(names) == 0 {
				for name := range deferred {
					names = append(names, name)
				}
				if len(names) == 0 {
					return fmt.Errorf("%s: no deferred index is left to build", at)
				}
			}
			for _, name := range names {
				if !deferred[name] {
					return fmt.Errorf("%s: builds index %q, which is not a deferred index waiting to be built", at, name)
				}
				delete(deferred, name)
				live[name] = true
			}
		case PhaseRollback:
			if len(live) == 0 {
				return fmt.Errorf("%s: a rollback needs an index to check; the workload has none built by then", at)
			}
		}
	}
	return nil
}

func whyNotLive(name string, deferred map[string]bool) string {
	if deferred[name] {
		return "is deferred and not built by then"
	}
	return "the workload does not define (or an earlier phase dropped)"
}
