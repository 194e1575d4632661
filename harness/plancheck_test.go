package harness

import (
	"strings"
	"testing"
)

func TestCheckPlan(t *testing.T) {
	sc, _, err := LoadScenario("rollback")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := EffectiveWorkload(sc, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPlan(sc, spec, 1<<40); err != nil {
		t.Fatalf("the rollback scenario on 1 TiB: %v", err)
	}
	// Too little memory for the documents: refused, stating the estimate.
	err = checkPlan(sc, spec, spec.MemoryEstimate()-1)
	if err == nil || !strings.Contains(err.Error(), "documents need about") {
		t.Errorf("memory below the estimate: %v", err)
	}
	// A rollback of more vbuckets than the workload has.
	small := spec
	small.Vbuckets = 4
	err = checkPlan(sc, small, 0)
	if err == nil || !strings.Contains(err.Error(), "the workload has 4") {
		t.Errorf("rollback over 4 vbuckets: %v", err)
	}
}
