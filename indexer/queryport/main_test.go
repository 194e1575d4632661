package queryport

import (
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestImports pins what the package may import of the project: the
// indexer's scan types and the value and vector types they use, so the
// query port never grows into the indexer's internals or the harness.
func TestImports(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/idxbench/idxbench/"
	allowed := map[string]bool{mod + "indexer": true, mod + "projector/collate": true, mod + "workload/defn": true, mod + "workload/upr": true}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, mod) && !allowed[p] {
			t.Errorf("queryport imports %s", p)
		}
	}
}
