package results

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// reportFixture writes a report with every kind of chart: two engines, two
// core counts, two dirs, three repeats, per-second series and a history.
func reportFixture(t *testing.T) (path string, run *Run) {
	t.Helper()
	rng := testRand(t)
	run = synthRun(rng, t0, []string{"pebble", "bbolt"}, 3, 0.05, 1)
	more := synthRun(rng, t0, []string{"pebble", "bbolt"}, 3, 0.05, 1.6)
	for i := range more.Cells {
		more.Cells[i].Cores = 1
	}
	run.Cells = append(run.Cells, more.Cells...)
	run.Cells[0].Phases[1].Verify = VerifyFail
	run.Cells[0].Phases[1].VerifyDetail = `scan mismatch <script>alert("x")</script>`
	run.Cells = append(run.Cells, Cell{Engine: "badger", Dir: "d1", Cores: 2, Error: "open: disk full & <gone>"})
	run.Machine.DataDirs = []DirInfo{{Path: "/tmp/a", Label: "d0", Filesystem: "ext4", FreeBytes: 10 << 30}}
	var history []*Run
	for i := 0; i < 4; i++ {
		history = append(history, synthRun(rng, t0.AddDate(0, 0, -4+i), []string{"pebble", "bbolt"}, 2, 0.05, 1+0.1*float64(i)))
	}
	history = append(history, run)
	path = filepath.Join(t.TempDir(), ReportFile)
	if err := WriteReport(path, run, history); err != nil {
		t.Fatal(err)
	}
	return path, run
}

func TestReportContent(t *testing.T) {
	path, _ := reportFixture(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)
	// Self-contained: nothing to fetch, no script.
	for _, bad := range []string{"<script", "src=", "<link", "url(", "http://", "https://", "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("report contains %q", bad)
		}
	}
	// Escaped, and the failure is prominent.
	if !strings.Contains(page, "scan mismatch &lt;script&gt;") || !strings.Contains(page, "disk full &amp; &lt;gone&gt;") {
		t.Error("verify detail or cell error not escaped or missing")
	}
	if !strings.Contains(page, `class="banner bad"`) {
		t.Error("failed verification not shown in the banner")
	}
	for _, kind := range []string{"throughput", "latency", "bars", "scaling", "trend"} {
		n := len(regexp.MustCompile(`data-chart="`+kind+`"`).FindAllString(page, -1))
		if n == 0 {
			t.Errorf("no %s chart", kind)
		}
	}
	for _, want := range []string{"Test CPU", "ext4", "mutations_per_sec", "seed 42"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestReportEmptyRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), ReportFile)
	run := &Run{Schema: SchemaVersion, Partial: true, Started: time.Now()}
	if err := WriteReport(path, run, nil); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "PARTIAL RUN") {
		t.Error("partial run not marked")
	}
}

// TestAnswers: the first screen's rows are per phase and headline metric,
// engines in the order they ran, each the median with its range and the
// difference from the best in the metric's good direction.
func TestAnswers(t *testing.T) {
	run := fixedRun("pebble", []float64{100, 120, 110}, []float64{4, 5, 6})
	run.Cells = append(run.Cells, fixedRun("bbolt", []float64{50, 55, 45}, []float64{2, 2, 2}).Cells...)
	rows := answers(run, map[string]string{"pebble": "#d55", "bbolt": "#e94"})
	if len(rows) != 2 || rows[0].Metric != "mutations_per_sec" || rows[1].Metric != "scan_p99_ms" {
		t.Fatalf("rows: %+v", rows)
	}
	ing, scan := rows[0].Cells, rows[1].Cells
	if ing[0].Label != "pebble" || ing[0].Vs != "best" || ing[0].Median != "110.0" || ing[0].Range != "100.0–120.0" {
		t.Errorf("ingest pebble: %+v", ing[0])
	}
	if ing[1].Label != "bbolt" || ing[1].Vs != "-54.5% vs best" {
		t.Errorf("ingest bbolt: %+v", ing[1])
	}
	if scan[1].Vs != "best" || scan[0].Vs != "+150.0% vs best" || scan[1].Range != "2.000–2.000" {
		t.Errorf("scan (lower is better): %+v", scan)
	}
	if ing[0].Bar != "91.7%" || ing[0].ErrLo != "83.3%" || ing[0].ErrSpan != "16.7%" {
		t.Errorf("bar: %+v", ing[0])
	}
}

// TestConfigColorsDistinct: with several core counts, each engine
// configuration gets a colour of its own; with one, each engine keeps its.
func TestConfigColorsDistinct(t *testing.T) {
	run := fixedRun("pebble", []float64{100}, []float64{4})
	two := fixedRun("pebble", []float64{90}, []float64{5})
	two.Cells[0].Cores = 1
	run.Cells = append(run.Cells, two.Cells...)
	colors := map[string]string{"pebble": "#111"}
	c := configColors(run, colors)
	if c("pebble", 1, "d0") == c("pebble", 2, "d0") || c("pebble", 1, "d0") == "" {
		t.Errorf("pebble c1 %q and c2 %q", c("pebble", 1, "d0"), c("pebble", 2, "d0"))
	}
	if one := configColors(fixedRun("pebble", []float64{1}, []float64{1}), colors); one("pebble", 2, "d0") != "#111" {
		t.Errorf("one configuration: %q, want the engine's colour", one("pebble", 2, "d0"))
	}
}

func TestIECScale(t *testing.T) {
	for _, tc := range []struct {
		metric string
		max    float64
		div    float64
		unit   string
	}{
		{"disk_bytes", 3 << 20, 1 << 20, "MiB"},
		{"peak_rss_bytes", 2 << 30, 1 << 30, "GiB"},
		{"disk_bytes", 500, 1, "B"},
		{"mutations_per_sec", 3e6, 1, ""},
	} {
		if div, unit := iecScale(tc.metric, tc.max); div != tc.div || unit != tc.unit {
			t.Errorf("iecScale(%s, %g) = %g %q, want %g %q", tc.metric, tc.max, div, unit, tc.div, tc.unit)
		}
	}
}
