package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idxbench/idxbench/harness"
	"github.com/idxbench/idxbench/results"
)

// writeRun writes a results directory of reps repeats of one pebble cell
// whose ingest throughput is base×(1+small spread).
func writeRun(t *testing.T, dir string, base float64, reps int) {
	t.Helper()
	run := &results.Run{Schema: results.SchemaVersion, Scenario: "test", Started: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Config: testConfig(t)}
	for r := 0; r < reps; r++ {
		v := base * (1 + 0.01*float64(r%5-2))
		run.Cells = append(run.Cells, results.Cell{Engine: "pebble", Dir: "d0", Cores: 2, Repeat: r, Phases: []results.Phase{
			{Name: "ingest", Verify: results.VerifyPass, Metrics: map[string]float64{"mutations_per_sec": v, "scan_p99_ms": 1000 / v}},
		}})
	}
	if err := results.WriteDir(dir, run); err != nil {
		t.Fatal(err)
	}
}

func TestCompareCommand(t *testing.T) {
	tmp := t.TempDir()
	a, a2, slow := filepath.Join(tmp, "a"), filepath.Join(tmp, "a2"), filepath.Join(tmp, "slow")
	writeRun(t, a, 1000, 10)
	writeRun(t, a2, 1000, 10)
	writeRun(t, slow, 900, 10)
	bad := filepath.Join(tmp, "bad")
	os.MkdirAll(bad, 0o755)
	os.WriteFile(filepath.Join(bad, "results.json"), []byte("{"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{a, a2}, 0, "no significant regression"},
		{[]string{a, slow}, 1, "REGRESSION"},
		{[]string{a, slow, "--threshold", "20%"}, 0, "no significant regression beyond 20%"},
		{[]string{slow, a}, 0, "improved"},
		{[]string{a, filepath.Join(tmp, "missing")}, 2, "no such results directory"},
		{[]string{a, bad}, 2, "corrupt results file"},
		{[]string{a, slow, "--threshold", "abc"}, 2, "--threshold"},
		{[]string{a, slow, "--threshold", "5"}, 2, "5%"},
		{[]string{a}, 2, "want two"},
		{[]string{a, slow, "--metrics", "scan_p99_ms"}, 1, "1 significant regression"},
		{[]string{a, slow, "--metrics", "nope"}, 2, "no metrics"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"compare"}, tc.args...), &out, &out)
		text := out.String()
		if err != nil {
			text += "\nerror: " + err.Error()
		}
		if got := exitCode(err); got != tc.code || !strings.Contains(text, tc.want) {
			t.Errorf("compare %v: exit %d, want %d and %q in:\n%s", tc.args, got, tc.code, tc.want, text)
		}
	}
}

func TestReportCommand(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "r1")
	writeRun(t, dir, 1000, 3)
	writeRun(t, filepath.Join(tmp, "r2"), 1100, 3)
	os.Remove(filepath.Join(dir, "report.html"))
	var out bytes.Buffer
	if err := run(context.Background(), []string{"report", dir, "--history", tmp}, &out, &out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil || !bytes.Contains(data, []byte(`data-chart="trend"`)) {
		t.Errorf("report not rebuilt with a trend: %v", err)
	}
	if err := run(context.Background(), []string{"report", filepath.Join(tmp, "none")}, &out, &out); exitCode(err) != 2 {
		t.Errorf("missing dir: %v", err)
	}
}

// testConfig is the configuration `idxbench run` records for the tiny
// scenario, so synthetic runs are valid results files.
func testConfig(t *testing.T) map[string]any {
	t.Helper()
	p, err := harness.Prepare(harness.RunConfig{Scenario: "ingest", Engines: []string{"pebble"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := p.EffectiveConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
