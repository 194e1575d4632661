package harness

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idxbench/idxbench/coordinator/etcdserver"

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
			cell := mustRunCell(t, job)
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

// faultScenario is a loopback cluster of two index nodes holding every
// index's replicas and two coordinators, hit by each fault in turn.
const faultScenario = `
name: faults
workload:
  docs: 3000
  vbuckets: 32
  seed: 12
  indexes:
    - {name: by_city, keys: [city], replicas: 1}
    - {name: primary, primary: true, replicas: 1}
indexer: {st_mode: coordinator, snapshot_interval: 50ms, persist_interval: 300ms}
phases:
  - type: load
  - {type: fault, name: kill-master, fault: kill-master, duration: 2s, rate: 2000, consistency: request_plus}
  - {type: fault, name: kill-index-node, fault: kill-index-node, duration: 3s, rate: 2000, down: 500ms}
  - {type: fault, name: pause-index-node, fault: pause-index-node, duration: 5s, rate: 2000}
  - {type: fault, name: restart-etcd, fault: restart-etcd, duration: 5s, rate: 2000}
`

// TestClusterFaults runs each fault under scans and ingest: the scans
// never fail (they fail over), the cluster heals, and every replica
// equals the oracle afterwards.
func TestClusterFaults(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	job := CellJob{Engine: "memory", DataDir: t.TempDir(), DirLabel: "d0", Cores: 1, Scenario: []byte(faultScenario),
		Verify: true, Quiet: true, Topology: TopologyProcs, Executable: exe}
	cell := mustRunCell(t, job)
	checkVerified(t, cell, "load", "kill-master", "kill-index-node", "pause-index-node", "restart-etcd")
	for _, ph := range cell.Phases[1:] {
		var parts []string
		for _, k := range []string{"no_master_ms", "ddl_during_failover_ms", "st_promotion_resumed_ms", "index_node_down_ms", "registry_leave_ms", "rejoin_ms",
			"index_node_paused_ms", "registry_rejoin_ms", "resume_catch_up_ms",
			"ddl_refused_ms", "etcd_down_ms", "mutations_during_etcd_outage", "metadata_back_ms", "registry_back_ms", "scan_failovers", "replica_lag_mutations_p50", "replica_lag_mutations_p99", "scans", "scan_p99_ms", "background_mutations"} {
			if v, ok := ph.Metrics[k]; ok {
				parts = append(parts, fmt.Sprintf("%s=%.0f", k, v))
			}
		}
		t.Logf("%s: %s", ph.Name, strings.Join(parts, " "))
	}
	for _, c := range []struct{ phase, metric string }{
		{"kill-master", "no_master_ms"},
		{"kill-master", "st_promotion_resumed_ms"},
		{"kill-master", "ddl_during_failover_ms"},
		{"kill-index-node", "rejoin_ms"},
		{"kill-index-node", "index_node_down_ms"},
		{"kill-index-node", "scan_failovers"},
		{"pause-index-node", "registry_leave_ms"},
		{"pause-index-node", "registry_rejoin_ms"},
		{"pause-index-node", "scan_failovers"},
		{"restart-etcd", "ddl_refused_ms"},
		{"restart-etcd", "mutations_during_etcd_outage"},
		{"restart-etcd", "registry_back_ms"},
	} {
		m := cell.Phase(c.phase).Metrics
		if m[c.metric] <= 0 {
			t.Errorf("phase %s: %s = %v; metrics %v", c.phase, c.metric, m[c.metric], m)
		}
		if m["scan_errors"] != 0 || m["scans"] <= 0 {
			t.Errorf("phase %s: %v scans, %v errors", c.phase, m["scans"], m["scan_errors"])
		}
	}
}

// syncBuffer collects what several node processes write to one stderr
// (each process's output is copied by a goroutine of its own).
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// attachScenario is what the nodes started by hand and the attaching cell
// both run.
const attachScenario = `
name: attach
workload:
  docs: 2000
  vbuckets: 16
  seed: 13
  indexes:
    - {name: by_city, keys: [city], replicas: 1}
    - {name: by_zip, keys: [address.zip]}
indexer: {snapshot_interval: 20ms, persist_interval: 200ms}
phases:
  - type: load
  - {type: ingest, mutations: 3000}
  - {type: scan, name: request-plus, kind: range, consistency: request_plus, under_ingest: true, rate: 2000, duration: 400ms}
  - {type: drop-index, index: by_zip, rate: 2000}
`

// TestAttachToAClusterStartedByHand starts etcd, a KV node and two index
// nodes as a user would on several hosts (idxbench node, registered under
// a prefix), then runs a cell attached to them: it verifies every replica
// and leaves the nodes running. A second cell on the same, now loaded,
// cluster is refused.
func TestAttachToAClusterStartedByHand(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	member, err := etcdserver.Start(etcdserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	ctx := context.Background()
	const prefix = "/idxbench/by-hand"
	var stderr syncBuffer
	base := NodeJob{Scenario: []byte(attachScenario), Etcd: []string{member.ClientURL}, EtcdPrefix: prefix}
	cpus := availableCPUs()
	kvJob := base
	kvJob.Role = RoleKV
	kv, err := startNode(ctx, exe, kvJob, cpus, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer kv.stop(time.Minute)
	var index []*nodeProc
	for _, name := range []string{"index-a", "index-b"} {
		j := base
		j.Role, j.Name, j.KV, j.Engine, j.Dir = RoleIndex, name, kv.addrs["admin"], "memory", t.TempDir()
		np, err := startNode(ctx, exe, j, cpus, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		defer np.stop(time.Minute)
		index = append(index, np)
	}
	job := CellJob{Engine: "memory", DataDir: t.TempDir(), DirLabel: "d0", Cores: 1, Scenario: []byte(attachScenario),
		Verify: true, Quiet: true, Topology: TopologyProcs, Executable: exe, Etcd: []string{member.ClientURL}, Attach: prefix}
	cell, err := RunCell(ctx, job, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	checkVerified(t, cell, "load", "ingest", "drop-index")
	if got := cell.Phase("load").VerifyDetail; !strings.HasPrefix(got, "ok: 3 indexes") {
		t.Errorf("load verified %q, want by_city's two replicas and by_zip", got)
	}
	for _, np := range append([]*nodeProc{kv}, index...) {
		if err := np.died(); err != nil {
			t.Errorf("the attached cell stopped a node it did not start: %v", err)
		}
	}
	job.DataDir = t.TempDir()
	if _, err := RunCell(ctx, job, &stderr); err == nil || !strings.Contains(err.Error(), "holds mutations already") {
		t.Errorf("a second cell on the loaded cluster: %v, want it refused", err)
	}
}

// mustRunCell runs job, failing the test with the nodes' output when the
// cell cannot finish.
func mustRunCell(t *testing.T, job CellJob) results.Cell {
	t.Helper()
	var stderr syncBuffer
	cell, err := RunCell(context.Background(), job, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	return cell
}
