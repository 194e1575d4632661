package harness

import (
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/idxbench/idxbench/results"
)

// series builds a minute of samples: f gives each second's values.
func series(n int, f func(i int) map[string]float64) *driftSampler {
	d := &driftSampler{}
	for i := range n {
		d.add(time.Duration(i+1)*time.Second, f(i))
	}
	return d
}

func TestDriftVerdict(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	noise := func(x, frac float64) float64 { return x * (1 + frac*(2*r.Float64()-1)) }
	flat := func(i int) map[string]float64 {
		return map[string]float64{
			seriesRSS: noise(200<<20, 0.05), seriesRSS + "_index_node": noise(100<<20, 0.05),
			seriesGoroutines: float64(30 + r.IntN(3)), seriesQueue: float64(r.IntN(1000)),
			seriesLagP99: noise(250, 0.2),
		}
	}
	grow := func(name string, by func(i int, x float64) float64) func(int) map[string]float64 {
		return func(i int) map[string]float64 {
			m := flat(i)
			m[name] = by(i, m[name])
			return m
		}
	}
	const snapshot = 200 * time.Millisecond
	cases := []struct {
		name string
		d    *driftSampler
		fail string // the series that must fail; "" for none
	}{
		{"flat", series(60, flat), ""},
		{"leak", series(60, grow(seriesRSS+"_index_node", func(i int, x float64) float64 { return x + float64(i)*(2<<20) })), "rss_bytes_index_node"},
		{"goroutine leak", series(60, grow(seriesGoroutines, func(i int, x float64) float64 { return x + float64(i) })), "goroutines"},
		{"lag trend", series(60, grow(seriesLagP99, func(i int, x float64) float64 { return x + float64(i)*20 })), "index_lag_p99_ms"},
		// Up by more than 10%, but by less than a snapshot interval.
		{"lag jitter", series(60, grow(seriesLagP99, func(i int, x float64) float64 { return x + float64(i) })), ""},
		// A warm-up ramp in the first quarter is not drift.
		{"warm-up", series(60, grow(seriesRSS, func(i int, x float64) float64 { return x * min(1, 0.5+float64(i)/30) })), ""},
		// Downsampled: a day's samples keep the verdict.
		{"long leak", series(3*maxDriftSamples, grow(seriesRSS, func(i int, x float64) float64 { return x + float64(i)*(64<<10) })), "rss_bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := c.d.verdict(snapshot)
			if v.TooShort || len(c.d.samples) > maxDriftSamples {
				t.Fatalf("%d samples kept, too short %v", len(c.d.samples), v.TooShort)
			}
			var failed []string
			for _, ch := range v.Checks {
				if ch.Judged && !ch.OK {
					failed = append(failed, ch.Series)
				}
			}
			if got := strings.Join(failed, ","); got != c.fail {
				t.Fatalf("failed %q, want %q: %s", got, c.fail, v)
			}
			if c.fail != "" && (v.OK() || !strings.Contains(v.String(), c.fail)) {
				t.Fatalf("verdict %s", v)
			}
			m := map[string]float64{}
			v.addMetrics(m)
			if m["drift_failures"] != float64(len(failed)) || m["drift_rss_bytes_early"] <= 0 || m["drift_queue_late"] < 0 {
				t.Fatalf("metrics %v", m)
			}
		})
	}
	if v := series(5, flat).verdict(snapshot); !v.TooShort || !v.OK() {
		t.Fatalf("five samples judged: %s", v)
	}
}

// TestSoakScenario runs the built-in soak scenario briefly: its phase
// samples every process and reports a drift verdict, and its scans are
// checked. IDXBENCH_SOAK=30m (and IDXBENCH_SOAK_ENGINE, default memory)
// runs it for real, at its own size, and requires no drift.
func TestSoakScenario(t *testing.T) {
	sc, src, err := LoadScenario("soak")
	if err != nil {
		t.Fatal(err)
	}
	job := CellJob{Engine: "memory", DataDir: t.TempDir(), DirLabel: "d0", Cores: 1, Scenario: src, Verify: true, Quiet: true}
	long := os.Getenv("IDXBENCH_SOAK")
	if long == "" {
		docs, vbs := 2000, 16
		job.Overrides = Overrides{Docs: &docs, Vbuckets: &vbs, Duration: 10 * time.Second}
	} else {
		d, err := time.ParseDuration(long)
		if err != nil {
			t.Fatalf("IDXBENCH_SOAK=%q: %v", long, err)
		}
		job.Overrides.Duration = d
		if e := os.Getenv("IDXBENCH_SOAK_ENGINE"); e != "" {
			job.Engine = e
		}
		job.Quiet = false
	}
	var stderr strings.Builder
	cell, err := RunCell(context.Background(), job, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	ph := cell.Phase(sc.Phases[len(sc.Phases)-1].Label())
	m := ph.Metrics
	t.Logf("%s: %s", ph.Verify, ph.VerifyDetail)
	for _, k := range []string{"drift_samples", "drift_rss_bytes_pct", "drift_goroutines_pct", "drift_index_lag_p99_ms_late", "drift_queue_late", "drift_failures"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s in %v", k, m)
		}
	}
	if m["scans"] == 0 || m["scans_checked"] != m["scans"]+m["scans_before_ingest"] || m["scan_mismatches"] != 0 {
		t.Errorf("scans %v, checked %v, mismatches %v", m["scans"], m["scans_checked"], m["scan_mismatches"])
	}
	if rate := m["scans_per_sec"]; rate > 400*1.1 || rate < 400*0.5 {
		t.Errorf("scans/s %v: the scenario paces them at 400", rate)
	}
	gauges := map[string]bool{}
	for _, tk := range ph.Series {
		for g := range tk.Gauges {
			gauges[g] = true
		}
	}
	for _, g := range []string{"rss_mb", "goroutines", "queue"} {
		if !gauges[g] {
			t.Errorf("ticks have no %s gauge: %v", g, gauges)
		}
	}
	if long != "" && ph.Verify != results.VerifyPass {
		t.Fatalf("soak of %s: %s %s", long, ph.Verify, ph.VerifyDetail)
	}
}
