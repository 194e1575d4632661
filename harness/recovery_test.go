package harness

import (
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/idxbench/idxbench/results"
)

const recoveryScenario = `
name: recovery
workload: {docs: 3000, vbuckets: 32, seed: 11}
indexer: {snapshot_interval: 20ms, persist_interval: 200ms}
phases:
  - type: load
  - {type: ingest, mutations: 3000}
  - {type: rollback, name: rollback-recent, vbuckets: 4, mutations: 2000}
  - {type: rollback, name: rollback-boundary, point: boundary, mutations: 2000}
  - {type: rollback, name: rollback-zero, point: unknown-vbuuid, vbuckets: 3, mutations: 1000}
  - {type: restart, mutations: 2000}
  - {type: ingest, name: after, mutations: 2000}
  - {type: drop-index, index: by_zip, rate: 3000}
  - {type: ingest, name: after-drop, mutations: 2000}
`

func TestRecoveryFlowsVerifyOnEveryEngine(t *testing.T) {
	for _, name := range []string{"memory", "pebble", "badger", "bbolt"} {
		t.Run(name, func(t *testing.T) {
			cell := runSmallCell(t, name, []byte(recoveryScenario))
			checkVerified(t, cell, "load", "ingest", "rollback-recent", "rollback-boundary", "rollback-zero", "restart", "after", "drop-index", "after-drop")
			for _, ph := range []string{"rollback-recent", "rollback-boundary", "rollback-zero"} {
				m := cell.Phase(ph).Metrics
				if m["rollbacks"] < 1 || m["recovery_ms"] <= 0 {
					t.Errorf("%s: no rollback measured: %v", ph, m)
				}
			}
			if m := cell.Phase("rollback-zero").Metrics; m["mutations_replayed"] < 1000 {
				t.Errorf("rollback to zero replayed only %v mutations", m["mutations_replayed"])
			}
			if m := cell.Phase("restart").Metrics; m["open_ms"] <= 0 || m["recovery_ms"] < m["first_scan_ms"] {
				t.Errorf("restart metrics: %v", m)
			}
			if cell.Phase("restart").Verify != results.VerifyPass {
				t.Errorf("restart: %s", cell.Phase("restart").VerifyDetail)
			}
		})
	}
}

// TestRecoverySizesMetrics runs the built-in recovery-sizes scenario's
// phases, shrunk (3000 documents, 32 vbuckets, 2000 mutations a phase), and
// checks every figure the recovery report reads is there: the index entry
// count, the persistent snapshot time, the rollback's and the restart's
// times, and both fractions of the rebuild from zero, computed from the
// phases' own figures.
func TestRecoverySizesMetrics(t *testing.T) {
	sc, _, err := LoadScenario("recovery-sizes")
	if err != nil {
		t.Fatal(err)
	}
	sc.Workload = []byte("{docs: 3000, vbuckets: 32, seed: 5}")
	sc.Indexer.SnapshotInterval = Duration(20 * time.Millisecond)
	sc.Indexer.PersistInterval = Duration(200 * time.Millisecond)
	for i := range sc.Phases {
		if sc.Phases[i].Mutations != 0 {
			sc.Phases[i].Mutations = 2000
		}
		if sc.Phases[i].Vbuckets > 32 {
			sc.Phases[i].Vbuckets = 4
		}
	}
	src, err := yaml.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	for _, engine := range []string{"memory", "pebble"} {
		t.Run(engine, func(t *testing.T) {
			cell := runSmallCell(t, engine, src)
			checkVerified(t, cell, "load", "ingest", "rollback-snapshot", "restart", "rebuild-from-zero")
			want := map[string][]string{
				"load":              {"index_entries", "build_ms"},
				"persist":           {"persist_ms", "persists"},
				"rollback-snapshot": {"engine_rollback_ms", "scans_resume_ms", "catch_up_ms", "recovery_ms", "mutations_replayed", "index_entries", "recovery_to_rebuild_ratio", "rollback_to_rebuild_ratio"},
				"restart":           {"open_ms", "engine_rollback_ms", "first_scan_ms", "catch_up_ms", "recovery_ms", "index_entries", "recovery_to_rebuild_ratio", "rollback_to_rebuild_ratio"},
				"rebuild-from-zero": {"engine_rollback_ms", rebuildMetric, "recovery_ms", "mutations_replayed", "index_entries"},
			}
			for ph, names := range want {
				m := cell.Phase(ph).Metrics
				for _, n := range names {
					if v, ok := m[n]; !ok || v < 0 || n != "mutations_replayed" && v == 0 {
						t.Errorf("%s: %s = %v, %v; want a positive figure", ph, n, v, ok)
					}
				}
			}
			rebuild := cell.Phase("rebuild-from-zero").Metrics
			if _, ok := rebuild["recovery_to_rebuild_ratio"]; ok {
				t.Errorf("the rebuild is given a fraction of itself: %v", rebuild)
			}
			if rebuild[rebuildMetric] != rebuild["recovery_ms"] {
				t.Errorf("rebuild_from_zero_ms %v is not the rebuild's recovery_ms %v", rebuild[rebuildMetric], rebuild["recovery_ms"])
			}
			// 3000 documents hold about 4.3 entries each in the default
			// indexes; the rebuild streams every document again.
			if e := cell.Phase("load").Metrics["index_entries"]; e < 3.5*3000 || e > 5*3000 {
				t.Errorf("load reached %v index entries, want about 4.3 per document", e)
			}
			if r := rebuild["mutations_replayed"]; r < 3000 {
				t.Errorf("the rebuild replayed only %v mutations", r)
			}
			for _, ph := range []string{"rollback-snapshot", "restart"} {
				m := cell.Phase(ph).Metrics
				if got, want := m["recovery_to_rebuild_ratio"], m["recovery_ms"]/rebuild["recovery_ms"]; got != want {
					t.Errorf("%s: recovery_to_rebuild_ratio %v, want %v", ph, got, want)
				}
				if got, want := m["rollback_to_rebuild_ratio"], m["engine_rollback_ms"]/rebuild["recovery_ms"]; got != want {
					t.Errorf("%s: rollback_to_rebuild_ratio %v, want %v", ph, got, want)
				}
			}
			var out strings.Builder
			PrintSummary(&out, &results.Run{Cells: []results.Cell{cell}})
			for _, col := range []string{"entries", "rec/rebuild", "rb/rebuild", "scans back ms", "catch-up ms", "open ms"} {
				if !strings.Contains(out.String(), col) {
					t.Errorf("summary has no %q column:\n%s", col, out.String())
				}
			}
		})
	}
}

func TestAddRebuildRatios(t *testing.T) {
	cell := results.Cell{Phases: []results.Phase{
		{Name: "rollback", Metrics: map[string]float64{"recovery_ms": 300, "engine_rollback_ms": 30}},
		{Name: "raw-ingest", Metrics: map[string]float64{"rollback_ms": 7}},
		{Name: "rebuild", Metrics: map[string]float64{"recovery_ms": 1200, rebuildMetric: 1200, "engine_rollback_ms": 50}},
	}}
	addRebuildRatios(&cell)
	if m := cell.Phases[0].Metrics; m["recovery_to_rebuild_ratio"] != 0.25 || m["rollback_to_rebuild_ratio"] != 0.025 {
		t.Errorf("rollback: %v", m)
	}
	for _, i := range []int{1, 2} {
		m := cell.Phases[i].Metrics
		if _, ok := m["recovery_to_rebuild_ratio"]; ok {
			t.Errorf("%s: %v", cell.Phases[i].Name, m)
		}
		if _, ok := m["rollback_to_rebuild_ratio"]; ok {
			t.Errorf("%s: %v", cell.Phases[i].Name, m)
		}
	}

	// Without a rebuild phase nothing is added.
	cell = results.Cell{Phases: []results.Phase{{Name: "rollback", Metrics: map[string]float64{"recovery_ms": 300}}}}
	addRebuildRatios(&cell)
	if len(cell.Phases[0].Metrics) != 1 {
		t.Errorf("no rebuild, yet: %v", cell.Phases[0].Metrics)
	}
}

func TestIsRebuild(t *testing.T) {
	for _, tc := range []struct {
		ph       Phase
		failed   int
		rebuilds bool
	}{
		{Phase{Type: PhaseRollback, Point: PointUnknownVbuuid}, 64, true},
		{Phase{Type: PhaseRollback, Point: PointUnknownVbuuid, Vbuckets: 16}, 16, false},
		{Phase{Type: PhaseRollback, Point: PointBoundary}, 64, false},
		{Phase{Type: PhaseRestart}, 64, false},
	} {
		if got := isRebuild(tc.ph, tc.failed, 64); got != tc.rebuilds {
			t.Errorf("%+v with %d of 64 vbuckets failed: isRebuild = %v", tc.ph, tc.failed, got)
		}
	}
}
