package dataport

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps pins the layering rule (STYLE.md): the dataport imports only
// the projector's types and the UPR types of the project, so the indexer
// side links no projector internals it does not need and no engine.
func TestDeps(t *testing.T) {
	const mod = "github.com/idxbench/idxbench/"
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, mod) && p != mod+"projector" && p != mod+"workload/upr" {
			t.Errorf("dataport imports %s", p)
		}
	}
	out, err = exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, banned := range []string{"indexer", "engines", "harness", "coordinator", "results", "cmd"} {
			if strings.HasPrefix(p, mod+banned) {
				t.Errorf("dataport depends on %s", p)
			}
		}
	}
}
