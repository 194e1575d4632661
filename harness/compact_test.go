package harness

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/results"
	"github.com/idxbench/idxbench/workload/upr"
)

func vec(seqnos ...upr.Seqno) *upr.TsVbuuid {
	ts := upr.NewTsVbuuid(len(seqnos))
	copy(ts.Seqnos, seqnos)
	return ts
}

// TestPersistRounds: the compactor compacts only below a vector persisted
// keep distinct observations before the newest, and starts counting again
// after a failover or a vector that went back.
func TestPersistRounds(t *testing.T) {
	const keep = 2
	main := []upr.Vbuuid{1, 2}
	var r persistRounds
	oldest := func() string {
		if o := r.oldest(keep); o != nil {
			return strings.Trim(fmt.Sprint(o.Seqnos), "[]")
		}
		return "none"
	}
	steps := []struct {
		ts       *upr.TsVbuuid
		branches []upr.Vbuuid
		want     string
	}{
		{nil, main, "none"},
		{vec(1, 1), main, "none"},
		{vec(1, 1), main, "none"}, // the same round again
		{vec(2, 1), main, "none"},
		{vec(3, 4), main, "1 1"},
		{vec(5, 4), main, "2 1"},
		{vec(4, 9), main, "none"},                 // went back on vb 0: a rollback
		{vec(5, 9), main, "none"},                 //
		{vec(6, 9), main, "4 9"},                  //
		{vec(7, 9), []upr.Vbuuid{1, 3}, "none"},   // a failover
		{vec(8, 9), []upr.Vbuuid{1, 3}, "none"},   //
		{vec(9, 10), []upr.Vbuuid{1, 3}, "7 9"},   //
		{vec(10, 10), []upr.Vbuuid{1, 3}, "8 9"},  //
		{vec(11, 12), []upr.Vbuuid{1, 3}, "9 10"}, //
	}
	for i, s := range steps {
		r.observe(s.ts, s.branches, keep)
		if got := oldest(); got != s.want {
			t.Fatalf("step %d: compact below %s, want %s", i, got, s.want)
		}
	}
}

// compactScenario compacts during ingest and during a checked scan under
// ingest, then fails over, rolls back and restarts on the compacted bucket.
const compactScenario = `
name: compact
workload: {docs: 1000, vbuckets: 16, seed: 3}
indexer: {snapshot_interval: 20ms, persist_interval: 200ms, max_rollbacks: 1}
phases:
  - type: load
  - {type: ingest, duration: 2500ms, rate: 4000}
  - {type: scan, name: scan-under-ingest, kind: range, under_ingest: true, rate: 4000, duration: 2s}
  - {type: rollback, vbuckets: 4, mutations: 2000}
  - {type: restart, mutations: 1000}
  - {type: ingest, name: after, duration: 1500ms, rate: 4000}
`

// TestCompactionDuringRun: the run compacts the bucket's history while it
// ingests and while checked scans run, and every phase still verifies —
// including a failover, rollback and restart on the compacted history.
func TestCompactionDuringRun(t *testing.T) {
	job := CellJob{Engine: "memory", DataDir: t.TempDir(), DirLabel: "d0", Cores: 1, Scenario: []byte(compactScenario),
		Verify: true, Quiet: true}
	var stderr strings.Builder
	cell, err := RunCell(context.Background(), job, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, ph := range cell.Phases {
		if ph.Verify != results.VerifyPass {
			t.Errorf("phase %s: %s %s", ph.Name, ph.Verify, ph.VerifyDetail)
		}
	}
	applied := 1000.0
	for _, name := range []string{"ingest", "scan-under-ingest"} {
		m := cell.Phase(name).Metrics
		applied += m["mutations"] + m["background_mutations"]
		t.Logf("%s: %v compactions (longest %v ms), %v history items after %v mutations", name,
			m["kv_compactions"], m["kv_compact_max_ms"], m["kv_history_items"], applied)
		if m["kv_compactions"] < 1 {
			t.Errorf("phase %s did not compact: %v", name, m)
			continue
		}
		if m["kv_history_items"] >= applied {
			t.Errorf("phase %s: %v history items after %v mutations: nothing deduplicated", name, m["kv_history_items"], applied)
		}
	}
	// The scans before the background ingest's first mutation are checked
	// but not measured (scans_before_ingest).
	if m := cell.Phase("scan-under-ingest").Metrics; m["scans_checked"] != m["scans"]+m["scans_before_ingest"] || m["scans"] == 0 {
		t.Errorf("scans %v, checked %v", m["scans"], m["scans_checked"])
	}
}
