package harness

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/idxbench/idxbench/results"
)

// phaseKind is everything the harness knows about one phase type. Each
// type registers itself once, beside the code that runs it, so adding a
// phase type is one registration and one run function: validation of
// which settings apply, the default of verify, --duration and the
// reference checks all read the registration.
type phaseKind struct {
	// settings are the YAML names of the Phase fields this type accepts,
	// besides type, name and verify; setting any other is an error.
	settings []string
	// verifies is the default of a phase's verify setting.
	verifies bool
	// timed phases take --duration: their count of mutations, if any, is
	// cleared and their duration set.
	timed bool
	// validate checks the accepted settings' values (optional).
	validate func(p *Phase, at string) error
	// refs follows the phase over the indexes live before it runs,
	// refusing before the run starts a phase that names an index that
	// will not be there, and updating the state for the phases after it
	// (optional).
	refs func(p *Phase, at string, st *indexRefs) error
	// run runs the phase on a cell, filling out.Metrics.
	run func(c *cellRun, ctx context.Context, ph Phase, out *results.Phase) error
}

var phaseKinds = map[string]*phaseKind{}

// registerPhase registers a phase type; a duplicate name or a setting
// that Phase does not have is a programming error.
func registerPhase(name string, k phaseKind) {
	if _, dup := phaseKinds[name]; dup {
		panic("harness: phase type " + name + " registered twice")
	}
	fields := phaseFields()
	for _, s := range k.settings {
		if _, ok := fields[s]; !ok {
			panic("harness: phase type " + name + " accepts unknown setting " + s)
		}
	}
	phaseKinds[name] = &k
}

// PhaseTypes lists the registered phase types, sorted.
func PhaseTypes() []string {
	var names []string
	for name := range phaseKinds {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// phaseFields maps each Phase field's YAML name to its index in the struct.
func phaseFields() map[string]int {
	t := reflect.TypeOf(Phase{})
	m := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}

// checkSettings refuses a setting the phase's type does not accept.
func (p *Phase) checkSettings(at string, k *phaseKind) error {
	v := reflect.ValueOf(*p)
	fields := phaseFields()
	var names []string
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names) // the first bad setting in a stable order
	for _, name := range names {
		switch name {
		case "type", "name", "verify":
			continue
		}
		if v.Field(fields[name]).IsZero() {
			continue
		}
		if !acceptsSetting(k, name) {
			return fmt.Errorf("%s.%s: not a setting of a %s phase", at, name, p.Type)
		}
	}
	return nil
}

// indexRefs is the state checkPhaseRefs carries from phase to phase.
type indexRefs struct {
	live     map[string]bool // built and not dropped
	deferred map[string]bool // created, not yet built
	primary  map[string]bool
	replicas map[string]int
	// indexNodes is the topology's index node count; topology and stMode
	// the run's --topology and the scenario's st_mode.
	indexNodes       int
	topology, stMode string
}

func (st *indexRefs) whyNotLive(name string) string {
	if st.deferred[name] {
		return "is deferred and not built by then"
	}
	return "the workload does not define (or an earlier phase dropped)"
}

// metricsOnly adapts a phase that fills only metrics to phaseKind.run.
func metricsOnly(f func(c *cellRun, ctx context.Context, ph Phase, m map[string]float64) error) func(*cellRun, context.Context, Phase, *results.Phase) error {
	return func(c *cellRun, ctx context.Context, ph Phase, out *results.Phase) error {
		return f(c, ctx, ph, out.Metrics)
	}
}
