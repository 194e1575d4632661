package harness

import (
	"strings"
	"testing"

	"github.com/idxbench/idxbench/results"
)

// TestPrintSummaryMedianRangeAndOrder: rows follow the order engines ran
// in (not the alphabet), each figure is the median over the repeats with
// its range and, from three repeats, its coefficient of variation; a
// legend names the derived columns.
func TestPrintSummaryMedianRangeAndOrder(t *testing.T) {
	run := &results.Run{}
	for _, e := range []string{"pebble", "bbolt"} {
		for r, v := range []float64{100, 300, 200} {
			run.Cells = append(run.Cells, results.Cell{Engine: e, Dir: "d0", Cores: 2, Repeat: r, Phases: []results.Phase{
				{Name: "ingest", Verify: results.VerifyPass, Metrics: map[string]float64{"mutations_per_sec": v, "pipeline_to_raw_ratio": 0.5, "index_lag_p50_ms": 9, "driver_target_mutations_per_sec": 0}},
			}})
		}
	}
	run.Cells[5].Phases[0].Verify = results.VerifyFail
	var out strings.Builder
	PrintSummary(&out, run)
	got := out.String()
	t.Log("\n" + got)
	if p, b := strings.Index(got, "pebble"), strings.Index(got, "bbolt"); p < 0 || b < p {
		t.Errorf("pebble ran first but is not the first row")
	}
	for _, want := range []string{
		"200.0 (100.0–300.0, 50.0%)", // median, range, cv = 100/200
		"  0.5  ",                    // equal values shown once
		"fail 1/3",
		"pipe/raw = ",
		"driver ran closed loop (at most 100k mutations outstanding)",
		"median (min–max, cv = standard deviation ÷ mean) over the repeats",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
}
