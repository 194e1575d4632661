package harness

import (
	"os"
	"testing"

	"github.com/idxbench/idxbench/results"
)

// TestRollbackQueues runs the built-in rollback-queues scenarios, shrunk,
// both ways: a KV rollback under ingest with the indexer keeping the
// queued key versions it can, and discarding them. Both must end equal to
// the oracle; keep must have kept some and replayed fewer mutations from
// KV in the phase where only unpersisted mutations were lost, and discard
// none. A disk engine persisting at every snapshot makes it slow (about
// 25 s on pebble), so it runs on pebble too only with
// IDXBENCH_SCENARIO_DISK=1.
func TestRollbackQueues(t *testing.T) {
	engines := []string{"memory"}
	if os.Getenv("IDXBENCH_SCENARIO_DISK") != "" {
		engines = append(engines, "pebble")
	}
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			cells := map[string]*results.Cell{}
			for _, mode := range []string{"discard", "keep"} {
				cell := runSmallCell(t, engine, shrunkScenario(t, "rollback-queues-"+mode))
				checkVerified(t, cell, "load", "ingest", "rollback-unpersisted", "rollback-recent", "ingest-after")
				cells[mode] = &cell
				for _, ph := range []string{"rollback-unpersisted", "rollback-recent"} {
					m := cell.Phase(ph).Metrics
					t.Logf("%s %s: queued %v kept %v replayed %v recovery_ms %v", mode, ph, m["queued_key_versions_at_rollback"],
						m["rollback_kept_key_versions"], m["mutations_replayed"], m["recovery_ms"])
				}
			}
			if m := cells["discard"].Phase("rollback-unpersisted").Metrics; m["rollback_kept_key_versions"] != 0 {
				t.Errorf("discard kept %v key versions", m["rollback_kept_key_versions"])
			}
			if m := cells["keep"].Phase("rollback-unpersisted").Metrics; m["rollback_kept_key_versions"] == 0 {
				t.Errorf("keep kept nothing of %v queued: %v", m["queued_key_versions_at_rollback"], m)
			}
		})
	}
}
