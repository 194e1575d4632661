package results

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoProjectImports keeps results free of engines and the pipeline, so a
// tool that only compares result files links no storage engine (STYLE.md:
// imports point down the package table).
func TestNoProjectImports(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	forbidden := []string{"/engines", "/indexer", "/projector", "/workload", "/harness", "/coordinator", "/cmd"}
	for _, pkg := range []string{".", "./metricsexport"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			rest, ok := strings.CutPrefix(dep, "github.com/idxbench/idxbench")
			if !ok || strings.HasPrefix(rest, "/results") {
				continue
			}
			for _, f := range forbidden {
				if rest == f || strings.HasPrefix(rest, f+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
