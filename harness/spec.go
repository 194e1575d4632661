package harness

import (
	"fmt"
	"io"

	"github.com/goccy/go-yaml"

	"github.com/idxbench/idxbench/engines"
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
	// The indexer section shows what the cells will run with, defaults
	// filled in, as results.json records it.
	ic := indexerConfig(sc.Indexer, engines.Engine{}, engines.Options{}, "", wl.Vbuckets)
	ic.EnsureDefaults()
	sc.Indexer = IndexerSettings{
		SnapshotInterval: Duration(ic.SnapshotInterval), PersistInterval: Duration(ic.PersistInterval),
		MaxRollbacks: ic.MaxRollbacks, STMode: ic.STMode, Durability: ic.Durability.String(),
		QueueSize: ic.QueueSize, FlushBatchSize: ic.FlushBatchSize, BackIndexCacheBytes: ic.BackIndexCacheBytes,
	}
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
		if k := phaseKinds[out[i].Type]; k != nil && k.timed {
			out[i].Mutations = 0
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
func checkPhaseRefs(sc *Scenario, spec workload.Spec, topology string) error {
	st := &indexRefs{live: map[string]bool{}, deferred: map[string]bool{}, primary: map[string]bool{},
		indexNodes: sc.indexNodes(spec), topology: topology, stMode: sc.Indexer.STMode, replicas: map[string]int{}}
	for _, d := range spec.Indexes {
		if d.Replicas+1 > st.indexNodes {
			return fmt.Errorf("index_nodes: %d index nodes cannot hold index %q's %d replicas apart (it needs %d)",
				st.indexNodes, d.Name, d.Replicas, d.Replicas+1)
		}
		if d.Deferred {
			st.deferred[d.Name] = true
		} else {
			st.live[d.Name] = true
		}
		st.primary[d.Name] = d.IsPrimary
		st.replicas[d.Name] = d.Replicas
	}
	for i := range sc.Phases {
		p := &sc.Phases[i]
		if k := phaseKinds[p.Type]; k != nil && k.refs != nil {
			if err := k.refs(p, fmt.Sprintf("phases[%d] (%s)", i, p.Label()), st); err != nil {
				return err
			}
		}
	}
	return nil
}
