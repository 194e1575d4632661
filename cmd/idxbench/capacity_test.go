package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/harness"
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
	cores := "1"
	if harness.AvailableCores() >= 2 {
		cores = "1,2"
	}
	err := run(context.Background(), []string{"capacity", "--engine", "memory", "--scenario", scen, "--out", out, "--quiet",
		"--cores", cores, "--slo-lag", "300ms", "--step", "300ms", "--bound", "5s", "--max-rate", "2000"}, &stdout, &stderr)
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

	// Size from it: a rate far above what was measured gets an answer
	// with a warning, never a silent extrapolation.
	stdout.Reset()
	err = run(context.Background(), []string{"size", "--target-rate", "100000", "--docs", "4000", "--slo-lag", "300ms", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("size: %v", err)
	}
	t.Logf("size:\n%s", stdout.String())
	for _, want := range []string{"engine memory", "meas", "model: X(N)", "warning: "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("size output lacks %q", want)
		}
	}
	err = run(context.Background(), []string{"size", "--target-rate", "100", "--docs", "4000", "--slo-lag", "100ms", out}, &stdout, &stderr)
	if err == nil {
		t.Error("sizing from searches with a looser SLO than asked succeeded")
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
