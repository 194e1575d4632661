package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idxbench/idxbench/coordinator"
	"github.com/idxbench/idxbench/coordinator/etcdserver"
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
	// One cell uses an external etcd cluster (here a member this test
	// runs), which must keep nothing of the cell afterwards.
	member, err := etcdserver.Start(etcdserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	for _, tc := range []struct {
		name string
		etcd []string
	}{{"memory", nil}, {"bbolt", nil}, {"memory", []string{member.ClientURL}}} {
		name := tc.name
		label := name
		if tc.etcd != nil {
			label += "/external-etcd"
		}
		t.Run(label, func(t *testing.T) {
			job := CellJob{Engine: name, DataDir: t.TempDir(), DirLabel: "d0", Cores: 1, Scenario: []byte(procsScenario),
				Verify: true, Quiet: true, Topology: TopologyProcs, Executable: exe, Etcd: tc.etcd}
			var stderr syncBuffer
			cell, err := RunCell(context.Background(), job, &stderr)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			want := 3 // etcd, KV, index
			if tc.etcd != nil {
				want = 2
			}
			if cell.Topology != TopologyProcs || len(cell.Nodes) != want {
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
			if tc.etcd != nil {
				cli, err := clientv3.New(clientv3.Config{Endpoints: tc.etcd, DialTimeout: 5 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer cli.Close()
				left, err := cli.Get(context.Background(), "/idxbench/", clientv3.WithPrefix(), clientv3.WithCountOnly())
				if err != nil || left.Count != 0 {
					t.Errorf("the external etcd keeps %v keys of the cell (%v)", left.Count, err)
				}
			}
			if m["pipeline_to_raw_ratio"] <= 0 || m["raw_replay_ops"] <= 0 || m["pipeline_to_raw_cpu_ratio"] <= 0 {
				t.Errorf("ingest has no raw replay from the index node: %v", m)
			}
		})
	}
}

// openProcsPipeline starts a procs-topology pipeline of the memory engine
// for scenario (the test binary runs the nodes), closed when the test ends.
func openProcsPipeline(t *testing.T, ctx context.Context, scenario string) (*pipeline, *syncBuffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sc := []byte(scenario)
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
	stderr := &syncBuffer{}
	cfg := pipelineConfig{spec: spec, engine: eng, dir: filepath.Join(t.TempDir(), "cell-t", "pipeline"), settings: parsed.Indexer,
		procs: &procsConfig{exe: exe, engine: "memory", indexCPUs: index, kvCPUs: kv, scenario: sc, stderr: stderr}}
	cfg.opts.EnsureDefaults()
	p, err := newPipeline(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.close() })
	return p, stderr
}

// TestDeadNodeIsNamed: when a node process dies, what the cell sees next
// names the node's role and pid, not a broken connection.
func TestDeadNodeIsNamed(t *testing.T) {
	for _, role := range []string{RoleIndex, RoleKV, RoleEtcd} {
		t.Run(role, func(t *testing.T) {
			p, _ := openProcsPipeline(t, context.Background(), procsScenario)
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

// TestRegistry: the procs topology's nodes register in etcd with leases;
// a client watching the registry sees a node that dies leave it, without
// polling, once its lease lapses.
func TestRegistry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, _ := openProcsPipeline(t, ctx, procsScenario)
	spec := p.spec
	nodes, err := coordinator.Nodes(ctx, p.etcd, p.etcdPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].Role != RoleIndex || nodes[1].Role != RoleKV || nodes[0].Addrs["query"] == "" {
		t.Fatalf("registry: %+v, want the index node and the KV node", nodes)
	}
	// The metadata is in etcd too: the spec's indexes are there.
	insts, err := p.coord.Instances()
	if err != nil || len(insts) != len(spec.Indexes) {
		t.Fatalf("metadata in etcd: %v %+v", err, insts)
	}
	events := coordinator.WatchTopology(ctx, p.etcd, p.etcdPrefix)
	var victim *nodeProc
	for _, np := range p.procs {
		if np.role == RoleIndex {
			victim = np
		}
	}
	killed := time.Now()
	victim.kill()
	for ev := range events {
		if !ev.Joined && ev.Node.Role == RoleIndex {
			t.Logf("the killed index node left the registry %s after the kill", time.Since(killed))
			return
		}
	}
	t.Fatal("the watch ended without the index node leaving")
}

// TestCoordinatorFailover: in coordinator mode two coordinator processes
// stand for master; the master promotes the index node's stability
// timestamps. Killing the master under ingest, the standby takes over
// (after the dead master's lease lapses) and the index catches up and
// verifies.
func TestCoordinatorFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, stderr := openProcsPipeline(t, ctx, strings.Replace(procsScenario, "indexer: {", "indexer: {st_mode: coordinator, ", 1))
	if _, err := p.load(); err != nil {
		t.Fatal(err)
	}
	if err := p.ix.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.waitCaughtUp(ctx, time.Minute); err != nil {
		t.Fatalf("catch up with the master promoting: %v\n%s", err, stderr.String())
	}
	master, err := coordinator.Master(ctx, p.etcd, p.etcdPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var victim *nodeProc
	for _, np := range p.procs {
		if np.role == RoleCoordinator && master == fmt.Sprintf("coordinator-%d", np.pid) {
			victim = np
		}
	}
	if victim == nil {
		t.Fatalf("master %q is none of the coordinator processes", master)
	}
	if err := p.apply(1000); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	victim.kill()
	p.procs = slices.DeleteFunc(p.procs, func(np *nodeProc) bool { return np == victim })
	if err := p.apply(1000); err != nil {
		t.Fatal(err)
	}
	if err := p.waitCaughtUp(ctx, time.Minute); err != nil {
		t.Fatalf("catch up after the master's death: %v", err)
	}
	t.Logf("caught up %s after the master's kill", time.Since(killed))
	next, err := coordinator.Master(ctx, p.etcd, p.etcdPrefix)
	if err != nil || next == master {
		t.Fatalf("master after the kill: %q (%v)", next, err)
	}
	v, err := (&cellRun{p: p}).verify(ctx)
	if err != nil || !v.OK() {
		t.Fatalf("verify: %v %s", err, v)
	}
}

// TestMasterKills kills the master coordinator IDXBENCH_MASTER_KILLS times
// under ingest (skipped when unset) and reports the time without a master
// (from the kill until another coordinator holds mastership: the dead
// master's lease must lapse first) and until stability timestamps move
// again (the index covers mutations applied after the kill), p50 and p99.
func TestMasterKills(t *testing.T) {
	kills, _ := strconv.Atoi(os.Getenv("IDXBENCH_MASTER_KILLS"))
	if kills <= 0 {
		t.Skip("set IDXBENCH_MASTER_KILLS=N to kill the master N times")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(kills)*30*time.Second)
	defer cancel()
	sc := strings.Replace(procsScenario, "indexer: {", "indexer: {st_mode: coordinator, ", 1)
	p, stderr := openProcsPipeline(t, ctx, sc)
	if _, err := p.load(); err != nil {
		t.Fatal(err)
	}
	if err := p.ix.Start(ctx); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	var noMaster, resumed []time.Duration
	for i := range kills {
		if err := p.waitCaughtUp(ctx, time.Minute); err != nil {
			t.Fatalf("kill %d: %v\n%s", i, err, stderr.String())
		}
		master, err := coordinator.Master(ctx, p.etcd, p.etcdPrefix)
		if err != nil {
			t.Fatal(err)
		}
		idx := slices.IndexFunc(p.procs, func(np *nodeProc) bool {
			return np.role == RoleCoordinator && master == fmt.Sprintf("coordinator-%d", np.pid)
		})
		if idx < 0 {
			t.Fatalf("master %q is none of the coordinator processes", master)
		}
		victim := p.procs[idx]
		killed := time.Now()
		victim.kill()
		p.procs = slices.Delete(p.procs, idx, idx+1)
		if err := p.apply(500); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := coordinator.Master(ctx, p.etcd, p.etcdPrefix)
			if err == nil && m != master {
				noMaster = append(noMaster, time.Since(killed))
				break
			}
			if ctx.Err() != nil {
				t.Fatal("no new master")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := p.waitCaughtUp(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		resumed = append(resumed, time.Since(killed))
		// A new standby, so two stand again.
		cp, err := startNode(ctx, exe, NodeJob{Role: RoleCoordinator, Scenario: []byte(sc), Etcd: p.etcd.Endpoints(),
			EtcdPrefix: p.etcdPrefix}, p.procs[0].cpus, stderr)
		if err != nil {
			t.Fatal(err)
		}
		p.procs = append(p.procs, cp)
	}
	v, err := (&cellRun{p: p}).verify(ctx)
	if err != nil || !v.OK() {
		t.Fatalf("verify: %v %s", err, v)
	}
	q := func(ds []time.Duration, f float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[min(len(s)-1, int(f*float64(len(s))))]
	}
	t.Logf("%d master kills: no master p50 %s p99 %s max %s; promotion resumed (index caught up) p50 %s p99 %s",
		kills, q(noMaster, 0.5), q(noMaster, 0.99), slices.Max(noMaster), q(resumed, 0.5), q(resumed, 0.99))
}
