package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/results"
)

const tinyCapacityScenario = `
name: tiny-capacity
description: a few hundred documents, then a short capacity search
workload: {docs: 400, vbuckets: 8}
indexer: {snapshot_interval: 20ms}
phases:
  - type: load
  - {type: capacity, rate: 500, growth: 2, precision: 0.5, step: 10s, cool_off: 100ms}
`

// TestCapacityCommand runs a search through the command line: its flags
// replace the scenario's step, bound, SLO and top rate, and the results
// directory holds every step and the sustainable rate.
func TestCapacityCommand(t *testing.T) {
	tmp := t.TempDir()
	scen := filepath.Join(tmp, "tiny.yaml")
	os.WriteFile(scen, []byte(tinyCapacityScenario), 0o644)
	out := filepath.Join(tmp, "out")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"capacity", "--engine", "memory", "--scenario", scen, "--out", out, "--quiet",
		"--slo-lag", "300ms", "--step", "300ms", "--bound", "5s", "--max-rate", "2000"}, &stdout, &stderr)
	if exitCode(err) != 0 {
		t.Fatalf("exit %d: %v\n%s", exitCode(err), err, stderr.String())
	}
	r, err := results.ReadRun(out)
	if err != nil {
		t.Fatal(err)
	}
	ph := r.Cells[0].Phase("capacity")
	if ph == nil || ph.Capacity == nil || len(ph.Steps) == 0 {
		t.Fatalf("no capacity result in %s", out)
	}
	if ph.Capacity.LagP99Ms != 300 || ph.Capacity.BoundSeconds != 5 {
		t.Errorf("the flags did not reach the phase: %+v", *ph.Capacity)
	}
	for _, st := range ph.Steps {
		if st.Seconds > 1 || st.TargetPerSec > 2000 {
			t.Errorf("step %+v: longer than --step or above --max-rate", st)
		}
	}
	bench, err := os.ReadFile(filepath.Join(out, "bench.txt"))
	if err != nil || !strings.Contains(string(bench), "sustainable_mutations_per_sec") {
		t.Errorf("bench.txt lacks the sustainable rate (%v)", err)
	}
	if !strings.Contains(stdout.String(), "sustained/s") {
		t.Errorf("summary lacks the sustained rate:\n%s", stdout.String())
	}
}

func TestCapacityCommandBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"capacity", "--scenario", "ingest"},
		{"capacity", "--slo-lag", "-1s"},
		{"capacity", "--step", "5s", "--bound", "1s"},
		{"capacity", "--start-rate", "5000", "--max-rate", "100"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if exitCode(err) != 2 || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: exit %d, %v; want exit 2 and one line", args, exitCode(err), err)
		}
	}
}
