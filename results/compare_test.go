package results

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// TestCompareFlagsSlowdown injects a 10% slowdown (throughput ÷1.1,
// latencies ×1.1) into ten repeats of one engine and expects exactly its
// directional metrics to be flagged, and nothing of the untouched engine.
func TestCompareFlagsSlowdown(t *testing.T) {
	rng := testRand(t)
	old := synthRun(rng, t0, []string{"bbolt", "pebble"}, 10, 0.03, 1)
	slow := synthRun(rng, t0.Add(time.Hour), []string{"pebble"}, 10, 0.03, 1.1)
	fine := synthRun(rng, t0.Add(time.Hour), []string{"bbolt"}, 10, 0.03, 1)
	slow.Cells = append(slow.Cells, fine.Cells...)
	cmp, err := Compare([]*Run{old}, []*Run{slow}, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	cmp.WriteTable(&buf)
	t.Logf("\n%s", buf.String())
	for _, r := range cmp.Rows {
		wantReg := r.Engine == "pebble" && r.Better != Neutral && r.Metric != "disk_bytes"
		if got := r.Verdict == Regressed; got != wantReg {
			t.Errorf("%s %s %s: verdict %s (change %+.1f%%, p=%.4f), want regression=%v", r.Engine, r.Phase, r.Metric, r.Verdict, 100*r.Change, r.P, wantReg)
		}
	}
	if cmp.Regressions != 4 {
		t.Errorf("regressions = %d, want 4", cmp.Regressions)
	}
	if !strings.Contains(cmp.Conclusion(), "4 significant regression(s)") {
		t.Errorf("conclusion = %q", cmp.Conclusion())
	}
	// The same change is an improvement when compared the other way.
	back, err := Compare([]*Run{slow}, []*Run{old}, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Regressions != 0 {
		t.Errorf("reverse comparison found %d regressions", back.Regressions)
	}
}

// TestCompareAA compares two samples of the same noisy distribution: no
// regression may be flagged.
func TestCompareAA(t *testing.T) {
	rng := testRand(t)
	for i := 0; i < 20; i++ {
		a := synthRun(rng, t0, []string{"bbolt", "pebble"}, 10, 0.03, 1)
		b := synthRun(rng, t0, []string{"bbolt", "pebble"}, 10, 0.03, 1)
		cmp, err := Compare([]*Run{a}, []*Run{b}, CompareOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cmp.Regressions != 0 {
			var buf bytes.Buffer
			cmp.WriteTable(&buf)
			t.Fatalf("trial %d: A/A comparison flagged %d regressions:\n%s", i, cmp.Regressions, buf.String())
		}
	}
}

// TestCompareSingleSample: one sample a side can never be significant;
// Compare says how many repeats it needs and marks big changes as warnings
// without failing.
func TestCompareSingleSample(t *testing.T) {
	rng := testRand(t)
	old := synthRun(rng, t0, []string{"pebble"}, 1, 0, 1)
	slow := synthRun(rng, t0, []string{"pebble"}, 1, 0, 1.5)
	cmp, err := Compare([]*Run{old}, []*Run{slow}, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cmp.Regressions != 0 {
		t.Errorf("regressions = %d with one sample a side", cmp.Regressions)
	}
	warnings := 0
	for _, r := range cmp.Rows {
		if r.Verdict == Warning {
			warnings++
		}
	}
	if warnings == 0 {
		t.Error("no warning for a 50% slowdown")
	}
	if !strings.Contains(strings.Join(cmp.Warnings, "\n"), "need >= 4 samples") {
		t.Errorf("warnings %q do not say how many samples are needed", cmp.Warnings)
	}
}

// TestCompareHistory pools repeats across runs of a history.
func TestCompareHistory(t *testing.T) {
	rng := testRand(t)
	var old, new []*Run
	for i := 0; i < 5; i++ {
		old = append(old, synthRun(rng, t0.Add(time.Duration(i)*time.Hour), []string{"pebble"}, 2, 0.03, 1))
		new = append(new, synthRun(rng, t0.Add(time.Duration(10+i)*time.Hour), []string{"pebble"}, 2, 0.03, 1.2))
	}
	cmp, err := Compare(old, new, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cmp.Rows {
		if r.Old.N != 10 || r.New.N != 10 {
			t.Errorf("%s: n = %d+%d, want 10+10", r.Metric, r.Old.N, r.New.N)
		}
	}
	if cmp.Regressions != 4 {
		t.Errorf("regressions = %d, want 4", cmp.Regressions)
	}
	only, err := Compare(old, new, CompareOptions{Metrics: []string{"scan_*_ms"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(only.Rows) != 2 || only.Regressions != 2 {
		t.Errorf("scan_*_ms: %d rows, %d regressions; want 2 and 2", len(only.Rows), only.Regressions)
	}
}

func TestCompareBadInput(t *testing.T) {
	rng := testRand(t)
	a := synthRun(rng, t0, []string{"pebble"}, 3, 0.03, 1)
	b := synthRun(rng, t0, []string{"bbolt"}, 3, 0.03, 1)
	errored := synthRun(rng, t0, []string{"pebble"}, 1, 0, 1)
	errored.Cells[0].Error = "crashed"
	for name, tc := range map[string]struct {
		old, new []*Run
		opts     CompareOptions
		want     string
	}{
		"nothing in common": {[]*Run{a}, []*Run{b}, CompareOptions{}, "share no"},
		"empty old":         {nil, []*Run{b}, CompareOptions{}, "old side has no metrics"},
		"only errors":       {[]*Run{a}, []*Run{errored}, CompareOptions{}, "new side has no metrics"},
		"negative":          {[]*Run{a}, []*Run{a}, CompareOptions{Threshold: -0.1}, "threshold"},
		"alpha":             {[]*Run{a}, []*Run{a}, CompareOptions{Alpha: 1.5}, "alpha"},
		"nan":               {[]*Run{a}, []*Run{a}, CompareOptions{Threshold: math.NaN()}, "threshold"},
		"bad pattern":       {[]*Run{a}, []*Run{a}, CompareOptions{Metrics: []string{"["}}, "metric pattern"},
		"no such metric":    {[]*Run{a}, []*Run{a}, CompareOptions{Metrics: []string{"nope_*"}}, "old side has no metrics"},
	} {
		_, err := Compare(tc.old, tc.new, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

// fixedRun builds a run from explicit values, for the golden table.
func fixedRun(engine string, ingest, p99 []float64) *Run {
	run := &Run{Schema: SchemaVersion, Started: t0}
	for i := range ingest {
		run.Cells = append(run.Cells, Cell{Engine: engine, Dir: "d0", Cores: 2, Repeat: i, Phases: []Phase{
			{Name: "ingest", Verify: VerifyPass, Metrics: map[string]float64{"mutations_per_sec": ingest[i], "mutations": 100000}},
			{Name: "scan", Verify: VerifyPass, Metrics: map[string]float64{"scan_p99_ms": p99[i]}},
		}})
	}
	return run
}

func TestCompareTableGolden(t *testing.T) {
	old := []*Run{
		fixedRun("pebble", []float64{50100, 50300, 49900, 50000, 50200, 49800}, []float64{4.0, 4.1, 3.9, 4.0, 4.05, 3.95}),
		fixedRun("bbolt", []float64{20000}, []float64{9}),
	}
	new := []*Run{
		fixedRun("pebble", []float64{45100, 45300, 44900, 45000, 45200, 44800}, []float64{3.0, 3.1, 2.9, 3.0, 3.05, 2.95}),
		fixedRun("bbolt", []float64{15000}, []float64{9.1}),
	}
	cmp, err := Compare(old, new, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := cmp.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "compare.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := buf.String(); got != string(want) {
		t.Errorf("table differs from %s (rerun with -update if intended):\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}
