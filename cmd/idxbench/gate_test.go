package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idxbench/idxbench/results"
)

// gateScenario is the gate's default workload: a load, then a timed
// closed-loop ingest, small enough for many trials on a shared machine.
const gateScenario = `
name: gate
description: the nightly gate's trial workload (cmd/idxbench/gate_test.go)
workload: {docs: 20000}
phases:
  - type: load
  - {type: ingest, duration: 3s}
`

// TestGateFalseAlarmsAndDetection measures how far `idxbench ab` can be
// trusted as a nightly gate on this machine: IDXBENCH_GATE_TRIALS=N runs N
// A/A comparisons (the same binary on both sides) and N with the new side's
// engine batches 10% slower (--inject-slowdown-new), the two kinds
// alternating so that drift on the machine falls on both, and reports, per
// gated metric, the false-alarm rate and the detection rate. With N ≥ 20
// it fails when the first metric's false-alarm rate is above 5% or its
// detection rate below 95%.
//
//	IDXBENCH_GATE_TRIALS=20 go test ./cmd/idxbench -run TestGateFalseAlarmsAndDetection -v -timeout 0
//
// Settings: IDXBENCH_GATE_REPEAT (repeats per side, default 6),
// IDXBENCH_GATE_ENGINE (default pebble), IDXBENCH_GATE_METRICS (the
// metrics judged, each on its own, comma-separated; default
// mutations_per_sec,mutations_per_cpu_sec), IDXBENCH_GATE_SLOWDOWN
// (default 10%), IDXBENCH_GATE_SCENARIO (a scenario name or file; default
// gateScenario above), IDXBENCH_GATE_ARGS (more run flags, space-separated,
// such as --verify=false), IDXBENCH_GATE_OUT (keep every trial's results
// directories there).
//
// The injected slowdown sleeps: CPU-time metrics do not see it, by design,
// so a CPU metric's detection rate here says nothing of a CPU regression.
func TestGateFalseAlarmsAndDetection(t *testing.T) {
	trials := envInt(t, "IDXBENCH_GATE_TRIALS", 0)
	if trials == 0 {
		t.Skip("set IDXBENCH_GATE_TRIALS=N to measure the gate's false alarms and detections over N trials each")
	}
	repeat := envInt(t, "IDXBENCH_GATE_REPEAT", 6)
	engine := envString("IDXBENCH_GATE_ENGINE", "pebble")
	metrics := splitList(envString("IDXBENCH_GATE_METRICS", "mutations_per_sec,mutations_per_cpu_sec"))
	slowdown := envString("IDXBENCH_GATE_SLOWDOWN", "10%")
	tmp := t.TempDir()
	out := envString("IDXBENCH_GATE_OUT", tmp)
	scenario := os.Getenv("IDXBENCH_GATE_SCENARIO")
	if scenario == "" {
		scenario = filepath.Join(tmp, "gate.yaml")
		if err := os.WriteFile(scenario, []byte(gateScenario), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	extra := strings.Fields(os.Getenv("IDXBENCH_GATE_ARGS"))

	alarms := map[string]int{}
	detections := map[string]int{}
	var aaTime, abTime time.Duration
	for i := range trials {
		for _, planted := range []bool{false, true} {
			dir := filepath.Join(out, fmt.Sprintf("trial%02d-%s", i, map[bool]string{false: "aa", true: "slow"}[planted]))
			args := []string{"ab", "--old", os.Args[0], "--new", os.Args[0], "--engine", engine, "--scenario", scenario,
				"--repeat", strconv.Itoa(repeat), "--metrics", strings.Join(metrics, ","), "--quiet", "--out", dir}
			if planted {
				args = append(args, "--inject-slowdown-new", slowdown)
			}
			args = append(args, extra...)
			var stdout, stderr bytes.Buffer
			start := time.Now()
			err := run(context.Background(), args, &stdout, &stderr)
			took := time.Since(start)
			var ee *exitError
			if err != nil && !(errors.As(err, &ee) && ee.code == 1 && strings.Contains(err.Error(), "significant regression")) {
				t.Fatalf("trial %d (slowdown %v): %v\n%s", i, planted, err, stderr.String())
			}
			old, err1 := results.ReadHistory(filepath.Join(dir, "old"))
			new, err2 := results.ReadHistory(filepath.Join(dir, "new"))
			if err := errors.Join(err1, err2); err != nil {
				t.Fatal(err)
			}
			kind := "A/A"
			if planted {
				kind = "slowdown " + slowdown
				abTime += took
			} else {
				aaTime += took
			}
			var verdicts []string
			for _, m := range metrics {
				cmp, err := results.Compare(old, new, results.CompareOptions{Metrics: []string{m}})
				if err != nil {
					t.Fatalf("trial %d: compare %s: %v", i, m, err)
				}
				regressed := cmp.Regressions > 0
				if regressed && planted {
					detections[m]++
				} else if regressed {
					alarms[m]++
				}
				for _, r := range cmp.Rows {
					verdicts = append(verdicts, fmt.Sprintf("%s %+.1f%% p=%.3f %s", m, r.Change*100, r.P, r.Verdict))
				}
			}
			t.Logf("trial %d %-13s %s: %s", i, kind, took.Round(time.Second), strings.Join(verdicts, "; "))
		}
	}
	for _, m := range metrics {
		t.Logf("gate on %s, %s, %d repeats per side, %d trials each: false alarms %d/%d (%.0f%%), detections of a %s slowdown %d/%d (%.0f%%)",
			engine, m, repeat, trials, alarms[m], trials, 100*float64(alarms[m])/float64(trials),
			slowdown, detections[m], trials, 100*float64(detections[m])/float64(trials))
	}
	t.Logf("%s per A/A trial, %s per slowdown trial", (aaTime / time.Duration(trials)).Round(time.Second), (abTime / time.Duration(trials)).Round(time.Second))
	if trials >= 20 {
		m := metrics[0]
		if float64(alarms[m]) > 0.05*float64(trials) {
			t.Errorf("%s: false-alarm rate %d/%d above 5%%", m, alarms[m], trials)
		}
		if float64(detections[m]) < 0.95*float64(trials) {
			t.Errorf("%s: detection rate %d/%d below 95%%", m, detections[m], trials)
		}
	}
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a count", name, s)
	}
	return n
}

func envString(name, def string) string {
	if s := os.Getenv(name); s != "" {
		return s
	}
	return def
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
