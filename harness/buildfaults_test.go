package harness

import (
	"strings"
	"testing"
)

// TestBuildCatchupFaults runs the built-in build-catchup-faults scenario,
// shrunk: a KV rollback and an index node restart each come while a build
// is in CATCHUP; each catch-up is discarded once, the build starts again
// and ends ACTIVE, and every index equals the oracle.
func TestBuildCatchupFaults(t *testing.T) {
	for _, engine := range []string{"memory", "bbolt"} {
		t.Run(engine, func(t *testing.T) {
			cell := runSmallCell(t, engine, shrunkScenario(t, "build-catchup-faults"))
			checkVerified(t, cell, "load", "ingest-before", "build-kv-rollback", "build-restart", "ingest-after")
			for _, ph := range []string{"build-kv-rollback", "build-restart"} {
				m := cell.Phase(ph).Metrics
				if m["catchup_discarded"] != 1 || m["active_ms"] <= 0 || m["discarded_build_ms"] <= 0 || m["fault_recovery_ms"] <= 0 {
					t.Errorf("%s: %v; want one discarded catch-up and the build ACTIVE", ph, m)
				}
			}
			if m := cell.Phase("build-kv-rollback").Metrics; m["rollbacks"] < 1 {
				t.Errorf("build-kv-rollback: MAINT did not roll back: %v", m)
			}
		})
	}
}

// TestBuildOverlap runs the built-in build-overlap scenario, shrunk: a
// second build starts while the first is still catching up; both end
// ACTIVE (neither answered a scan before) and every index equals the
// oracle.
func TestBuildOverlap(t *testing.T) {
	for _, engine := range []string{"memory", "bbolt"} {
		t.Run(engine, func(t *testing.T) {
			cell := runSmallCell(t, engine, shrunkScenario(t, "build-overlap"))
			checkVerified(t, cell, "load", "ingest-before", "build-second", "ingest-after")

			first, second := cell.Phase("build-first").Metrics, cell.Phase("build-second").Metrics
			if first["initial_build_ms"] <= 0 || second["earlier_builds"] != 1 || second["earlier_active_ms"] <= 0 ||
				second["active_ms"] <= 0 || second["maint_mutations_per_sec_during_build"] <= 0 {
				t.Errorf("build-first %v, build-second %v", first, second)
			}
		})
	}
}

// TestPendingBuildRules refuses a scenario that leaves a wait: false build
// to anything but a build-index phase.
func TestPendingBuildRules(t *testing.T) {
	for _, tc := range []struct{ phases, want string }{
		{"[{type: load}, {type: build-index, wait: false}, {type: ingest, mutations: 10}]", "only a build-index phase may follow it"},
		{"[{type: load}, {type: build-index, wait: false}]", "must follow and complete it"},
		{"[{type: load}, {type: build-index, wait: false, fault: restart}, {type: build-index}]", "injects no fault"},
		{"[{type: load}, {type: build-index, name: a, wait: false}, {type: build-index, fault: restart}]", "is not supported"},
		{"[{type: load}, {type: build-index, fault: crash}]", `"crash" is not`},
		{"[{type: load}, {type: build-index, vbuckets: 4}]", "only a build with fault kv-rollback"},
	} {
		_, err := ParseScenario([]byte("phases: " + tc.phases))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.phases, err, tc.want)
		}
	}
}
