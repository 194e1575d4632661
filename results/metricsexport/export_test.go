package metricsexport

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// counting is a Source whose values change between scrapes.
type counting struct{ scrapes atomic.Int64 }

func (c *counting) Collect() Snapshot {
	n := float64(c.scrapes.Add(1))
	l := Labels{Index: "by_city", Engine: "pebble", Phase: "ingest", Cores: 2, Repeat: 3}
	return Snapshot{
		Gauges: []Sample{{MutationQueueSize, l, 12}, {DocsPending, l, 3}, {DocsQueued, Labels{}, 7}},
		Counters: []Sample{
			{DocsIndexedTotal, l, 1000 * n},
			{SnapshotsTotal, l, 5},
			{"idxbench_custom_total", l, 1},
			{"bad name!", l, 1}, // left out, the rest still served
		},
		Histograms: []Histogram{{Name: ScanLatencySeconds, Labels: l, Count: 10, Sum: 0.05,
			Buckets: []Bucket{{0.001, 2}, {0.005, 8}, {0.01, 10}}}},
	}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s:\n%s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse scrape: %v\n%s", err, body)
	}
	return fams
}

func TestHandlerScrape(t *testing.T) {
	src := &counting{}
	srv := httptest.NewServer(Handler(src))
	defer srv.Close()

	fams := scrape(t, srv.URL)
	for name, typ := range map[string]dto.MetricType{
		MutationQueueSize: dto.MetricType_GAUGE, DocsPending: dto.MetricType_GAUGE, DocsQueued: dto.MetricType_GAUGE,
		DocsIndexedTotal: dto.MetricType_COUNTER, SnapshotsTotal: dto.MetricType_COUNTER, "idxbench_custom_total": dto.MetricType_COUNTER,
		ScanLatencySeconds: dto.MetricType_HISTOGRAM,
	} {
		f := fams[name]
		if f == nil {
			t.Errorf("%s missing from the scrape", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s: type %v, want %v", name, f.GetType(), typ)
		}
	}
	if _, ok := fams["bad name!"]; ok {
		t.Error("invalid metric name served")
	}
	m := fams[DocsIndexedTotal].Metric[0]
	labels := map[string]string{}
	for _, l := range m.Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["index"] != "by_city" || labels["engine"] != "pebble" || labels["phase"] != "ingest" ||
		labels["cores"] != "2" || labels["repeat"] != "3" || m.Counter.GetValue() != 1000 {
		t.Errorf("docs indexed: labels %v value %v", labels, m.Counter.GetValue())
	}
	// A value for the whole process leaves the cell's labels empty.
	for _, l := range fams[DocsQueued].Metric[0].Label {
		if l.GetValue() != "" {
			t.Errorf("docs queued without labels has %s=%q", l.GetName(), l.GetValue())
		}
	}
	// The serving process's Go runtime and process figures come along.
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("%s missing from the scrape", name)
		}
	}
	// Every stable name has its own help, not the generic line.
	for _, name := range Names() {
		if h := help[name]; strings.HasPrefix(h, "idxbench metric ") || len(h) < 30 {
			t.Errorf("%s: help %q", name, h)
		}
	}
	h := fams[ScanLatencySeconds].Metric[0].Histogram
	if h.GetSampleCount() != 10 || h.GetSampleSum() != 0.05 || len(h.Bucket) != 4 || h.Bucket[1].GetCumulativeCount() != 8 {
		t.Errorf("histogram = %v", h)
	}
	if !strings.Contains(fams[MutationQueueSize].GetHelp(), "mutation queues") {
		t.Errorf("help = %q", fams[MutationQueueSize].GetHelp())
	}
	// Read at scrape time: the second scrape sees new values.
	if v := scrape(t, srv.URL)[DocsIndexedTotal].Metric[0].Counter.GetValue(); v != 2000 {
		t.Errorf("second scrape docs indexed = %v, want 2000", v)
	}
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{
		"":                "127.0.0.1:0",
		":9090":           "127.0.0.1:9090",
		"localhost:9090":  "localhost:9090",
		"0.0.0.0:9090":    "0.0.0.0:9090",
		"[::1]:9090":      "[::1]:9090",
		"192.0.2.10:9100": "192.0.2.10:9100",
	} {
		if got, err := ListenAddr(in); err != nil || got != want {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"9090", "localhost", "a:b:c"} {
		if _, err := ListenAddr(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ListenAddr(%q) = %v, want an error naming it", bad, err)
		}
	}
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := Serve(ctx, ":0", &counting{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("served on %s, want loopback", addr)
	}
	if fams := scrape(t, "http://"+addr+"/metrics"); fams[DocsIndexedTotal] == nil {
		t.Error("no docs indexed metric")
	}
	cancel()
	// goleak in TestMain checks the server goroutines end.
	if _, err := Serve(context.Background(), "nonsense", &counting{}); err == nil {
		t.Error("bad address accepted")
	}
	http.DefaultClient.CloseIdleConnections()
}
