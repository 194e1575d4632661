package harness

import (
	"os"
	"testing"

	"github.com/idxbench/idxbench/results"
)

// TestRollbackQueues runs the built-in rollback-queues scenarios, shrunk,
// both ways: a KV rollback under ingest with the indexer keeping the
// queued key versions it can, and discarding them. Both must end equal to
// the oracle; discard keeps nothing, and keep never more than was queued
// (whether it keeps any depends on timing: see below). A disk engine persisting at every snapshot makes it slow (about
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
			// What keep can keep depends on timing: a vbucket's queue is
			// kept only up to its last complete snapshot, and only when that
			// is at or below the rollback point, which the phase puts
			// halfway between the persisted vector and what the node has
			// received. On a quiet machine the node keeps up, its last
			// complete snapshot is past that point on every vbucket, and
			// keep rightly keeps nothing (3 runs in 4 here); under load it
			// kept 11-75%. So the test holds keep to what it may keep, and
			// to its effect when it kept some.
			m := cells["keep"].Phase("rollback-unpersisted").Metrics
			if kept, queued := m["rollback_kept_key_versions"], m["queued_key_versions_at_rollback"]; kept > queued {
				t.Errorf("keep kept %v key versions of %v queued", kept, queued)
			} else if kept == 0 {
				t.Logf("keep kept nothing of %v queued this run: every vbucket's last complete snapshot was past its rollback point", queued)
			}
		})
	}
}
