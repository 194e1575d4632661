package workload

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps pins the layering rule: the workload packages import nothing
// of idxbench's outside workload/ (see STYLE.md), so the projector,
// indexer and harness can all depend on them.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	const mod = "github.com/idxbench/idxbench/"
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, mod) && !strings.HasPrefix(p, mod+"workload") {
			t.Errorf("workload depends on %s", p)
		}
	}
}
