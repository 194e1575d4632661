package harness

import (
	"testing"
)

// TestRollbackTimeline runs one KV rollback, shrunk from the built-in
// rollback scenario's first, and checks its timeline: every step is
// there, after the stream end, in the order the flow takes them.
func TestRollbackTimeline(t *testing.T) {
	const scenario = `
name: timeline
workload: {docs: 3000, vbuckets: 32, seed: 11}
indexer: {snapshot_interval: 20ms, persist_interval: 200ms}
phases:
  - type: load
  - {type: rollback, name: rollback-recent, vbuckets: 8, mutations: 3000}
`
	for _, engine := range []string{"memory", "pebble"} {
		t.Run(engine, func(t *testing.T) {
			cell := runSmallCell(t, engine, []byte(scenario))
			checkVerified(t, cell, "load", "rollback-recent")
			m := cell.Phase("rollback-recent").Metrics
			steps := []string{"failover", "rollback_reply", "engine_rollback_start", "engine_rollback_end", "streams_restarted", "first_scan", "caught_up"}
			prev := 0.0
			for _, s := range steps {
				v, ok := m["timeline_"+s+"_ms"]
				if !ok || v < prev {
					t.Errorf("timeline_%s_ms = %v (present %v), before the step ahead of it (%v ms): %v", s, v, ok, prev, m)
				}
				prev = v
			}
			if m["timeline_engine_rollback_end_ms"] <= m["timeline_engine_rollback_start_ms"] {
				t.Errorf("the engine rollback took no time: %v", m)
			}
		})
	}
}
