package harness

import (
	"testing"

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
