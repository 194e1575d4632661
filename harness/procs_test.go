package harness

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/results"
)

// procsScenario runs every kind of phase across process boundaries: the
// dataport carries MAINT and INIT, the query port the scans, the control
// endpoints the rollback, restart, build and drop flows.
const procsScenario = `
name: procs
workload:
  docs: 2000
  vbuckets: 16
  seed: 9
  indexes:
    - {name: by_city, keys: [city]}
    - {name: by_zip, keys: [address.zip]}
    - {name: by_age, keys: [age], deferred: true}
    - {name: primary, primary: true}
indexer: {snapshot_interval: 20ms, persist_interval: 200ms}
phases:
  - type: load
  - {type: ingest, mutations: 3000, raw_ratio: true}
  - {type: scan, name: range, kind: range, duration: 300ms}
  - {type: scan, name: request-plus, kind: range, consistency: request_plus, under_ingest: true, rate: 2000, duration: 400ms}
  - type: persist
  - {type: rollback, name: rollback-recent, vbuckets: 3, mutations: 1000}
  - {type: build-index, name: build, rate: 2000}
  - {type: restart, mutations: 1000}
  - {type: drop-index, index: by_zip, rate: 2000}
  - {type: ingest, name: after, duration: 300ms, rate: 3000}
`

func TestProcsTopologyVerifies(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"memory", "bbolt"} {
		t.Run(name, func(t *testing.T) {
			job := CellJob{Engine: name, DataDir: t.TempDir(), DirLabel: "d0", Cores: 1, Scenario: []byte(procsScenario),
				Verify: true, Quiet: true, Topology: TopologyProcs, Executable: exe}
			var stderr strings.Builder
			cell, err := RunCell(context.Background(), job, &stderr)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			if cell.Topology != TopologyProcs || len(cell.Nodes) != 2 {
				t.Fatalf("topology %q, nodes %+v", cell.Topology, cell.Nodes)
			}
			for _, n := range cell.Nodes {
				if n.Pid <= 0 || n.Pid == os.Getpid() || len(n.CPUs) == 0 {
					t.Errorf("node %+v", n)
				}
			}
			for _, ph := range cell.Phases {
				if ph.Verify == results.VerifyFail {
					t.Errorf("phase %s: %s", ph.Name, ph.VerifyDetail)
				}
			}
			checkVerified(t, cell, "load", "ingest", "request-plus", "rollback-recent", "build", "restart", "drop-index", "after")
			m := cell.Phase("ingest").Metrics
			if m["cpu_seconds_index_node"] <= 0 || m["cpu_us_per_mutation_index_node"] <= 0 {
				t.Errorf("ingest has no index node CPU: %v", m)
			}
			// The index node's own timings reach the cell's results.
			if m["index_lag_p99_ms"] <= 0 || m["flushes"] <= 0 {
				t.Errorf("ingest has no index lag or flushes from the index node: %v", m)
			}
			if p := cell.Phase("persist").Metrics; p["persist_ms"] <= 0 {
				t.Errorf("persist phase has no persist_ms from the index node: %v", p)
			}
			if m["pipeline_to_raw_ratio"] <= 0 || m["raw_replay_ops"] <= 0 || m["pipeline_to_raw_cpu_ratio"] <= 0 {
				t.Errorf("ingest has no raw replay from the index node: %v", m)
			}
		})
	}
}

// TestDeadNodeIsNamed: when a node process dies, what the cell sees next
// names the node's role and pid, not a broken connection.
func TestDeadNodeIsNamed(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sc := []byte(procsScenario)
	parsed, err := ParseScenario(sc)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := EffectiveWorkload(parsed, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	index, kv, err := NodeCPUs(1)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engines.Lookup("memory")
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{RoleIndex, RoleKV} {
		t.Run(role, func(t *testing.T) {
			var stderr strings.Builder
			cfg := pipelineConfig{spec: spec, engine: eng, dir: t.TempDir(), settings: parsed.Indexer,
				procs: &procsConfig{exe: exe, engine: "memory", indexCPUs: index, kvCPUs: kv, scenario: sc, stderr: &stderr}}
			cfg.opts.EnsureDefaults()
			p, err := newPipeline(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.close()
			if _, err := p.load(); err != nil {
				t.Fatal(err)
			}
			if err := p.ix.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			var victim *nodeProc
			for _, np := range p.procs {
				if np.role == role {
					victim = np
				}
			}
			victim.kill()
			want := fmt.Sprintf("%s node (pid %d) died", role, victim.pid)
			if err := p.apply(100); err == nil || !strings.Contains(err.Error(), want) {
				if err = p.failure(); err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("after the %s node's death: %v; want it to say %q", role, err, want)
				}
			}
		})
	}
}
