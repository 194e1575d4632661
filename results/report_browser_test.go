package results

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium. In CI (CI set) a missing browser
// fails the test; elsewhere it skips with a message saying how to get one.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("IDXBENCH_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found, and CI is set: .ci/run must install it (apt-get install -y chromium)")
	}
	t.Skip("chromium not found; install it with `apt-get install -y chromium` (or set IDXBENCH_CHROMIUM) to run the browser test")
	return ""
}

type renderedChart struct {
	Kind   string  `json:"kind"`
	Title  string  `json:"title"`
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
	Marks  int     `json:"marks"`  // lines, bars and points drawn with a non-zero size
	Blank  int     `json:"blank"`  // lines and bars with an empty bounding box
	Labels int     `json:"labels"` // text elements
}

const inspectCharts = `Array.from(document.querySelectorAll('svg[data-chart]')).map(svg => {
  const r = svg.getBoundingClientRect();
  let marks = 0, blank = 0;
  svg.querySelectorAll('path.line, rect.bar, circle').forEach(el => {
    const b = el.getBBox();
    if (b.width > 0 || b.height > 0) { marks++; } else { blank++; }
  });
  return {kind: svg.dataset.chart, title: svg.getAttribute('aria-label'), width: r.width, height: r.height,
          marks: marks, blank: blank, labels: svg.querySelectorAll('text').length};
})`

// TestReportInBrowser loads a generated report in headless chromium and
// checks that every chart rendered with visible marks, that every kind of
// chart is there, and that the page logged no error.
func TestReportInBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	path, _ := reportFixture(t)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()

	var mu sync.Mutex
	var problems []string
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value))
				}
				problems = append(problems, "console."+string(e.Type)+": "+strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError {
				problems = append(problems, "log: "+e.Entry.Text)
			}
		}
	}); err != nil {
		t.Fatalf("start chromium %s: %v", chromium, err)
	}

	runCtx, cancelRun := context.WithTimeout(ctx, 60*time.Second)
	defer cancelRun()
	if err := chromedp.Do(runCtx,
		chromedp.EmulateViewport(1400, 1000),
		chromedp.Navigate("file://"+path),
		chromedp.WaitVisible(chromedp.CSS("#status")),
	); err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	charts, err := chromedp.Run(runCtx, chromedp.Evaluate[[]renderedChart](inspectCharts))
	if err != nil {
		t.Fatalf("inspect charts: %v", err)
	}
	kinds := map[string]int{}
	for _, c := range charts {
		kinds[c.Kind]++
		if c.Width < 100 || c.Height < 50 {
			t.Errorf("chart %q (%s) is %.0f×%.0f px", c.Title, c.Kind, c.Width, c.Height)
		}
		if c.Marks == 0 || c.Blank > 0 {
			t.Errorf("chart %q (%s): %d visible marks, %d empty", c.Title, c.Kind, c.Marks, c.Blank)
		}
		if c.Labels < 3 {
			t.Errorf("chart %q (%s): only %d labels", c.Title, c.Kind, c.Labels)
		}
	}
	for _, k := range []string{"throughput", "latency", "bars", "scaling", "trend"} {
		if kinds[k] == 0 {
			t.Errorf("no %s chart rendered (rendered: %v)", k, kinds)
		}
	}
	t.Logf("%d charts rendered: %v", len(charts), kinds)

	// The first screen answers "which engine, by how much": the headline
	// table starts inside the 1000 px viewport, with a visible bar per row.
	type answerBox struct {
		Top   float64 `json:"top"`
		Rows  int     `json:"rows"`
		Bars  int     `json:"bars"`
		Wide  int     `json:"wide"`
		Bests int     `json:"bests"`
	}
	ans, err := chromedp.Run(runCtx, chromedp.Evaluate[answerBox](`(() => {
  const t = document.querySelector('table.answer');
  if (!t) return {top: 1e9, rows: 0, bars: 0, wide: 0, bests: 0};
  const fills = Array.from(t.querySelectorAll('.fill'));
  return {top: t.getBoundingClientRect().top, rows: t.querySelectorAll('tr').length - 1, bars: fills.length,
          wide: fills.filter(f => f.getBoundingClientRect().width > 4).length, bests: t.querySelectorAll('td.best').length};
})()`))
	if err != nil {
		t.Fatalf("inspect the answer table: %v", err)
	}
	if ans.Top > 1000-100 || ans.Rows < 4 || ans.Bars != ans.Rows || ans.Wide != ans.Rows || ans.Bests < 2 {
		t.Errorf("first screen: answer table %+v, want it within the first screen with a visible bar per row and a best per metric", ans)
	}

	if shot := os.Getenv("IDXBENCH_SCREENSHOT"); shot != "" {
		// The first screen as a person sees it, then the whole page.
		if top, err := chromedp.Run(runCtx, chromedp.CaptureScreenshot()); err == nil {
			os.WriteFile(strings.TrimSuffix(shot, ".png")+"-top.png", top, 0o644)
		}
		for _, id := range []string{"over-time", "engines", "scaling", "trend"} {
			if png, err := chromedp.Run(runCtx, chromedp.Screenshot(chromedp.CSS("#"+id+" + p + .charts"))); err == nil {
				os.WriteFile(strings.TrimSuffix(shot, ".png")+"-"+id+".png", png, 0o644)
			}
		}
		png, err := chromedp.Run(runCtx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot: %v", err)
		} else if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Error(err)
		} else {
			t.Logf("screenshot: %s", filepath.Clean(shot))
		}
	}

	// The listener must be able to see an error: log one and wait for it,
	// so a broken listener cannot pass the check below vacuously.
	if _, err := chromedp.Run(runCtx, chromedp.Evaluate[any](`console.error("idxbench-selftest")`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		var seen bool
		var real []string
		for _, p := range problems {
			if strings.Contains(p, "idxbench-selftest") {
				seen = true
			} else {
				real = append(real, p)
			}
		}
		mu.Unlock()
		if seen {
			for _, p := range real {
				t.Errorf("page error: %s", p)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("console listener never saw the self-test error; console checks are not working")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
