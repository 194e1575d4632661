package harness

import "testing"

// TestRecoverySteps runs the built-in recovery-steps scenario, shrunk: a
// failover below the vector a restarting index node resumes from makes it
// roll back further, and a failover while an initial build backfills
// discards the build (its backfill snapshot reaches past the branch) and
// builds again; every index equals the oracle after each.
func TestRecoverySteps(t *testing.T) {
	for _, engine := range []string{"memory", "pebble"} {
		t.Run(engine, func(t *testing.T) {
			cell := runSmallCell(t, engine, shrunkScenario(t, "recovery-steps"))
			checkVerified(t, cell, "load", "ingest-before", "restart-failover-below", "build-failover-in-backfill", "ingest-after")
			r := cell.Phase("restart-failover-below").Metrics
			// The memory engine keeps nothing across a restart: its node
			// restarts from zero, which no failover can be below.
			if r["vbuckets_failed_over_below_restart"] == 0 || engine != "memory" && r["rollback_ms"] <= 0 || r["mutations_replayed"] <= 0 {
				t.Errorf("restart below the failover: %v; want a rollback after the restart", r)
			}
			b := cell.Phase("build-failover-in-backfill").Metrics
			if b["catchup_discarded"] != 1 || b["backfill_vbuckets_past_branch"] == 0 || b["rollbacks"] < 1 {
				t.Errorf("failover in backfill: %v", b)
			}
			t.Logf("restart: %v rollback_ms, %v replayed; build: backfill in progress %v, %v vbuckets past the branch",
				r["rollback_ms"], r["mutations_replayed"], b["backfill_in_progress_at_fault"], b["backfill_vbuckets_past_branch"])
		})
	}
}
