package harness

import (
	"fmt"

	"github.com/idxbench/idxbench/results"
	"github.com/idxbench/idxbench/workload"
)

// checkPlan refuses, in the planning step and before anything is created,
// a scenario that validates but cannot run on this machine with this
// workload: a document count whose bucket and oracle alone would not fit
// in memory, and a rollback of more vbuckets than the bucket has (which
// flags such as --vbuckets can bring about).
func checkPlan(sc *Scenario, spec workload.Spec, memTotal uint64) error {
	if err := spec.CheckMemory(memTotal); err != nil {
		return err
	}
	for i, p := range sc.Phases {
		if p.Type == PhaseRollback && p.Vbuckets > spec.Vbuckets {
			return fmt.Errorf("phases[%d] (%s).vbuckets: fails over %d vbuckets, the workload has %d", i, p.Label(), p.Vbuckets, spec.Vbuckets)
		}
	}
	return nil
}

// machineMemory is the machine's memory in bytes, 0 if unknown.
func machineMemory() uint64 { return results.MemTotal() }
