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
// alternating so that drift on the machine falls on both, and reports the
// false-alarm rate and the detection rate. With N ≥ 20 it fails when the
// false-alarm rate is above 5% or the detection rate below 95%.
//
//	IDXBENCH_GATE_TRIALS=20 go test ./cmd/idxbench -run TestGateFalseAlarmsAndDetection -v -timeout 0
//
// Settings: IDXBENCH_GATE_REPEAT (repeats per side, default 6),
// IDXBENCH_GATE_ENGINE (default pebble), IDXBENCH_GATE_METRICS (the
// metrics gated on, default mutations_per_sec), IDXBENCH_GATE_SLOWDOWN
// (default 10%), IDXBENCH_GATE_SCENARIO (a scenario name or file; default
// gateScenario above), IDXBENCH_GATE_ARGS (more run flags, space-separated).
func TestGateFalseAlarmsAndDetection(t *testing.T) {
	trials := envInt(t, "IDXBENCH_GATE_TRIALS", 0)
	if trials == 0 {
		t.Skip("set IDXBENCH_GATE_TRIALS=N to measure the gate's false alarms and detections over N trials each")
	}
	repeat := envInt(t, "IDXBENCH_GATE_REPEAT", 6)
	engine := envString("IDXBENCH_GATE_ENGINE", "pebble")
	metrics := envString("IDXBENCH_GATE_METRICS", "mutations_per_sec")
	slowdown := envString("IDXBENCH_GATE_SLOWDOWN", "10%")
	tmp := t.TempDir()
	scenario := os.Getenv("IDXBENCH_GATE_SCENARIO")
	if scenario == "" {
		scenario = filepath.Join(tmp, "gate.yaml")
		if err := os.WriteFile(scenario, []byte(gateScenario), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	extra := strings.Fields(os.Getenv("IDXBENCH_GATE_ARGS"))

	var alarms, detections int
	var aaTime, abTime time.Duration
	for i := range trials {
		for _, planted := range []bool{false, true} {
			args := []string{"ab", "--old", os.Args[0], "--new", os.Args[0], "--engine", engine, "--scenario", scenario,
				"--repeat", strconv.Itoa(repeat), "--metrics", metrics, "--quiet",
				"--out", filepath.Join(tmp, fmt.Sprintf("trial%d-%v", i, planted))}
			if planted {
				args = append(args, "--inject-slowdown-new", slowdown)
			}
			args = append(args, extra...)
			var stdout, stderr bytes.Buffer
			start := time.Now()
			err := run(context.Background(), args, &stdout, &stderr)
			took := time.Since(start)
			regressed := false
			var ee *exitError
			switch {
			case err == nil:
			case errors.As(err, &ee) && ee.code == 1 && strings.Contains(err.Error(), "significant regression"):
				regressed = true
			default:
				t.Fatalf("trial %d (slowdown %v): %v\n%s", i, planted, err, stderr.String())
			}
			kind := "A/A"
			if planted {
				kind = "slowdown " + slowdown
				abTime += took
				if regressed {
					detections++
				}
			} else {
				aaTime += took
				if regressed {
					alarms++
				}
			}
			t.Logf("trial %d %-13s regression=%-5v %s\n%s", i, kind, regressed, took.Round(time.Second), lastLines(stdout.String(), 3))
		}
	}
	t.Logf("gate on %s, %s, %d repeats per side, %d trials each: false alarms %d/%d (%.0f%%), detections %d/%d (%.0f%%); %s per A/A trial, %s per planted trial",
		engine, metrics, repeat, trials, alarms, trials, 100*float64(alarms)/float64(trials),
		detections, trials, 100*float64(detections)/float64(trials),
		(aaTime / time.Duration(trials)).Round(time.Second), (abTime / time.Duration(trials)).Round(time.Second))
	if trials >= 20 {
		if float64(alarms) > 0.05*float64(trials) {
			t.Errorf("false-alarm rate %d/%d above 5%%", alarms, trials)
		}
		if float64(detections) < 0.95*float64(trials) {
			t.Errorf("detection rate %d/%d below 95%%", detections, trials)
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
