package harness

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/results"
)

// clusterScenario runs every flow a cluster of index nodes supports on
// two nodes: by_city has a replica on each, the other indexes one copy
// placed by the partition map.
const clusterScenario = `
name: cluster
workload:
  docs: 2000
  vbuckets: 16
  seed: 11
  indexes:
    - {name: by_city, keys: [city], replicas: 1}
    - {name: by_zip, keys: [address.zip]}
    - {name: by_age, keys: [age], deferred: true, replicas: 1}
    - {name: primary, primary: true}
indexer: {snapshot_interval: 20ms, persist_interval: 200ms}
phases:
  - type: load
  - {type: ingest, mutations: 3000}
  - {type: scan, name: request-plus, kind: range, consistency: request_plus, under_ingest: true, rate: 2000, duration: 400ms}
  - type: persist
  - {type: build-index, name: build, rate: 2000}
  - {type: restart, mutations: 1000}
  - {type: drop-index, index: by_zip, rate: 2000}
  - {type: ingest, name: after, duration: 300ms, rate: 3000}
`

// TestClusterOfIndexNodes runs clusterScenario in process and as
// processes: every phase verifies every replica against the oracle.
func TestClusterOfIndexNodes(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, topo := range []string{TopologyInproc, TopologyProcs} {
		t.Run(topo, func(t *testing.T) {
			job := CellJob{Engine: "memory", DataDir: t.TempDir(), DirLabel: "d0", Cores: 1, Scenario: []byte(clusterScenario),
				Verify: true, Quiet: true, Topology: topo, Executable: exe}
			var stderr strings.Builder
			cell, err := RunCell(context.Background(), job, &stderr)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			for _, ph := range cell.Phases {
				if ph.Verify == results.VerifyFail {
					t.Errorf("phase %s: %s", ph.Name, ph.VerifyDetail)
				}
			}
			checkVerified(t, cell, "load", "ingest", "build", "restart", "drop-index", "after")
			// by_city's two replicas, by_zip and primary: four copies
			// checked; after the build, by_age's two more.
			for phase, want := range map[string]string{"load": "ok: 4 indexes", "build": "ok: 6 indexes", "after": "ok: 5 indexes"} {
				if got := cell.Phase(phase).VerifyDetail; !strings.HasPrefix(got, want) {
					t.Errorf("phase %s verified %q, want %q…", phase, got, want)
				}
			}
			if topo == TopologyProcs {
				index := 0
				for _, n := range cell.Nodes {
					if n.Role == RoleIndex {
						index++
					}
				}
				if index != 2 {
					t.Errorf("%d index node processes, want 2: %+v", index, cell.Nodes)
				}
			}
		})
	}
}
