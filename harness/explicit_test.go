package harness

import (
	"strings"
	"testing"
)

// TestExplicitZerosRefused: a setting written as a zero where zero is out
// of range was replaced by its default in silence; now it is an error
// naming the setting.
func TestExplicitZerosRefused(t *testing.T) {
	phases := "phases:\n  - type: load\n"
	for _, tc := range []struct{ in, want string }{
		{"indexer: {max_rollbacks: 0}\n" + phases, "indexer.max_rollbacks: must be in 1..100, got 0"},
		{"indexer: {snapshot_interval: 0s}\n" + phases, "indexer.snapshot_interval: must be at least 10ms, got 0s"},
		{"indexer: {persist_interval: 0ms}\n" + phases, "indexer.persist_interval: must be a positive duration, got 0ms"},
		{"indexer: {st_mode: ''}\n" + phases, `indexer.st_mode: must be local or coordinator, got ""`},
		{"indexer: {durability: }\n" + phases, "indexer.durability: must be nosync or sync, got null"},
		{"indexer: {queue_size: 0}\n" + phases, "indexer.queue_size: must be ≥ 1, got 0"},
		{"indexer: {flush_batch_size: 0}\n" + phases, "indexer.flush_batch_size: must be ≥ 1, got 0"},
		{phases + "  - {type: scan, duration: 1s, clients: 0}\n", "phases[1].clients: must be in 1..1024, got 0"},
		{phases + "  - {type: scan, duration: 1s, limit: 0}\n", "phases[1].limit: must be ≥ 1, got 0"},
		{phases + "  - {type: scan, duration: 0s}\n", "phases[1].duration: must be a positive duration, got 0s"},
		{phases + "  - {type: scan, duration: 1s, kind: ''}\n", `phases[1].kind: must be range, lookup, count or all, got ""`},
		{phases + "  - {type: restart, mutations: 0}\n", "phases[1].mutations: must be ≥ 1, got 0"},
		{phases + "  - {type: rollback, mutations: 0}\n", "phases[1].mutations: must be ≥ 1, got 0"},
		{phases + "  - {type: raw-ingest, entries: 0}\n", "phases[1].entries: must be ≥ 1, got 0"},
		{phases + "  - {type: build-index, indexes: []}\n", "phases[1].indexes: must be a list of index names, got []"},
		// A zero of a setting the type does not take was invisible too.
		{phases + "  - {type: ingest, mutations: 10, clients: 0}\n", "phases[1].clients: not a setting of a ingest phase"},
	} {
		_, err := ParseScenario([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseScenario(%q): %v, want %q", tc.in, err, tc.want)
		}
	}
	// Zeros that mean something stay valid.
	for _, in := range []string{
		phases + "  - {type: ingest, mutations: 0, duration: 1s, rate: 0}\n",
		phases + "  - {type: rollback, vbuckets: 0}\n",
		phases + "  - {type: scan, duration: 1s, scan_rate: 0, under_ingest: false}\n",
		"indexer: {back_index_cache_bytes: 0}\n" + phases,
		"phases:\n  - {type: load, verify: false}\n  - {type: scan, name: s0, duration: 1s}\n",
	} {
		if _, err := ParseScenario([]byte(in)); err != nil {
			t.Errorf("ParseScenario(%q): %v", in, err)
		}
	}
}
