package harness

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/idxbench/idxbench/results"
)

// shrunkScenario loads a built-in scenario and shrinks it for a test: 3000
// documents over 32 vbuckets (its indexes kept), 2000 mutations a phase, 8 vbuckets where a
// phase names more, build phases' MAINT ingest at 3000/s if closed loop,
// short snapshot and persist intervals (equal if the scenario's are).
func shrunkScenario(t *testing.T, name string) []byte {
	t.Helper()
	sc, _, err := LoadScenario(name)
	if err != nil {
		t.Fatal(err)
	}
	w := map[string]any{}
	if len(sc.Workload) > 0 {
		if err := yaml.Unmarshal(sc.Workload, &w); err != nil {
			t.Fatal(err)
		}
	}
	w["docs"], w["vbuckets"], w["seed"] = 3000, 32, 7
	if sc.Workload, err = yaml.Marshal(w); err != nil {
		t.Fatal(err)
	}
	persistEverySnapshot := sc.Indexer.PersistInterval != 0 && sc.Indexer.PersistInterval == sc.Indexer.SnapshotInterval
	sc.Indexer.SnapshotInterval = Duration(20 * time.Millisecond)
	sc.Indexer.PersistInterval = Duration(200 * time.Millisecond)
	if persistEverySnapshot {
		sc.Indexer.PersistInterval = sc.Indexer.SnapshotInterval
	}
	for i := range sc.Phases {
		if sc.Phases[i].Mutations != 0 {
			sc.Phases[i].Mutations = 2000
		}
		if sc.Phases[i].Vbuckets > 32 {
			sc.Phases[i].Vbuckets = 8
		}
		if sc.Phases[i].Type == PhaseBuild && sc.Phases[i].Rate == 0 {
			// A closed-loop MAINT would apply far more than the shrunk
			// bucket holds while the builds run.
			sc.Phases[i].Rate = 3000
		}
	}
	src, err := yaml.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestKVRestart runs the built-in kv-restart scenario, shrunk: a clean KV
// restart resumes without a rollback, and a crash that loses the tails of
// some vbuckets under a new failover-log entry is answered with Rollback
// for each of them even though their lost seqnos were reused; both end
// equal to what KV holds.
func TestKVRestart(t *testing.T) {
	for _, engine := range []string{"memory", "pebble"} {
		t.Run(engine, func(t *testing.T) {
			cell := runSmallCell(t, engine, shrunkScenario(t, "kv-restart"))
			checkVerified(t, cell, "load", "ingest", "kv-restart-clean", "kv-restart-lose-tail-failover", "ingest-after")
			clean := cell.Phase("kv-restart-clean").Metrics
			if clean["rollbacks"] != 0 || clean["vbuckets_lost_tail"] != 0 || clean["mutations_replayed"] != 0 {
				t.Errorf("clean restart: %v; want no rollback, nothing lost, nothing replayed", clean)
			}
			fo := cell.Phase("kv-restart-lose-tail-failover").Metrics
			if fo["vbuckets_lost_tail"] == 0 || fo["mutations_lost"] == 0 || fo["mutations_after_restart"] == 0 {
				t.Fatalf("lose-tail-failover lost nothing or reused nothing: %v", fo)
			}
			if fo["vbuckets_answered_rollback"] != fo["vbuckets_lost_tail"] || fo["vbuckets_accepted_diverged"] != 0 || fo["rollbacks"] < 1 {
				t.Errorf("lose-tail-failover: %v; want every vbuckets that lost its tail answered with Rollback", fo)
			}
		})
	}
}

// TestKVRestartLoseTailIsCaught runs the built-in kv-restart-lose-tail
// scenario, shrunk: a crash loses the tails of some vbuckets without a
// failover-log entry and new mutations reuse the lost seqnos before the
// index node reconnects. KV accepts the index node's stream requests, so
// the index keeps the lost versions; the phase's verification must fail
// and name the entries that differ.
func TestKVRestartLoseTailIsCaught(t *testing.T) {
	for _, engine := range []string{"memory", "pebble"} {
		t.Run(engine, func(t *testing.T) {
			cell := runSmallCell(t, engine, shrunkScenario(t, "kv-restart-lose-tail"))
			checkVerified(t, cell, "load", "ingest")
			ph := cell.Phase("kv-restart-lose-tail")
			m := ph.Metrics
			if m["vbuckets_lost_tail"] == 0 || m["mutations_lost"] == 0 {
				t.Fatalf("the crash lost nothing: %v", m)
			}
			if m["vbuckets_accepted_diverged"] != m["vbuckets_lost_tail"] || m["vbuckets_answered_rollback"] != 0 || m["rollbacks"] != 0 {
				t.Errorf("metrics %v; want every vbucket that lost its tail accepted without a rollback", m)
			}
			if ph.Verify != results.VerifyFail || m["verify_mismatches"] == 0 {
				t.Fatalf("verify %s, %v mismatches (%s); the divergence passed silently", ph.Verify, m["verify_mismatches"], ph.VerifyDetail)
			}
			if !strings.Contains(ph.VerifyDetail, "differs from the oracle") || !strings.Contains(ph.VerifyDetail, "doc-") {
				t.Errorf("the failure does not name the divergent entries: %s", ph.VerifyDetail)
			}
			t.Logf("%s: %v mismatches: %.300s", engine, m["verify_mismatches"], ph.VerifyDetail)
		})
	}
}

// TestKVRestartProcs runs the three KV restarts with the KV node and the
// index node in processes of their own: the restart is a control on the KV
// node's admin endpoint, which the cell's replica of the bucket (the
// oracle's) replays.
func TestKVRestartProcs(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const scenario = `
name: kv-restart-procs
workload: {docs: 2000, vbuckets: 16, seed: 3}
indexer: {snapshot_interval: 20ms, persist_interval: 200ms}
phases:
  - type: load
  - {type: kv-restart, name: clean, mutations: 1000}
  - {type: kv-restart, name: failover, mode: lose-tail-failover, vbuckets: 4, mutations: 1000}
  - {type: kv-restart, name: lose-tail, mode: lose-tail, vbuckets: 4, mutations: 1000}
`
	job := CellJob{Engine: "memory", DataDir: t.TempDir(), DirLabel: "d0", Cores: 1, Scenario: []byte(scenario),
		Verify: true, Quiet: true, Topology: TopologyProcs, Executable: exe}
	var stderr strings.Builder
	cell, err := RunCell(context.Background(), job, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	checkVerified(t, cell, "load", "clean", "failover")
	if m := cell.Phase("failover").Metrics; m["vbuckets_lost_tail"] == 0 || m["vbuckets_answered_rollback"] != m["vbuckets_lost_tail"] {
		t.Errorf("failover: %v", m)
	}
	if ph := cell.Phase("lose-tail"); ph.Verify != results.VerifyFail || ph.Metrics["verify_mismatches"] == 0 {
		t.Errorf("lose-tail: verify %s (%s); the divergence passed silently", ph.Verify, ph.VerifyDetail)
	}
}

// TestScenarioSettingsOfTheDesignQuestions refuses bad values of the
// settings the design's questions added, naming the field.
func TestScenarioSettingsOfTheDesignQuestions(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"phases: [{type: load}, {type: kv-restart, mode: reboot}]", "phases[1].mode"},
		{"phases: [{type: load}, {type: kv-restart, vbuckets: 4}]", "a clean KV restart loses no vbucket's tail"},
		{"phases: [{type: load}, {type: kv-restart, mode: lose-tail, vbuckets: 2000}]", "phases[1].vbuckets"},
		{"phases: [{type: load}, {type: kv-restart, point: recent}]", "phases[1].point: not a setting of a kv-restart phase"},
		{"phases: [{type: load}, {type: rollback, rate: 100}]", "phases[1].rate: a rollback phase ingests at a rate only under_ingest"},
		{"phases: [{type: load}, {type: restart, point: recent}]", "phases[1].point"},
		{"phases: [{type: load}, {type: restart, vbuckets: 3}]", "phases[1].vbuckets"},
		{"indexer: {rollback_queues: hoard}\nphases: [{type: load}]", "indexer.rollback_queues"},
	} {
		_, err := ParseScenario([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}
}
