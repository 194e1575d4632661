package harness

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idxbench/idxbench/results/metricsexport"
)

func TestCellServesPrometheusMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	job := CellJob{Engine: "memory", DataDir: t.TempDir(), DirLabel: "d0", Quiet: true, MetricsAddr: addr,
		Scenario: []byte(`
workload: {docs: 1000, vbuckets: 8}
indexer: {snapshot_interval: 20ms}
phases:
  - type: load
  - {type: scan, kind: range, duration: 3s, under_ingest: true, rate: 500}
`)}
	done := make(chan error, 1)
	go func() {
		_, err := RunCell(context.Background(), job, io.Discard)
		done <- err
	}()
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if strings.Contains(body, metricsexport.ScanLatencySeconds+"_bucket") {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{metricsexport.DocsIndexedTotal, metricsexport.MutationQueueSize,
		metricsexport.ScanLatencySeconds + "_bucket", metricsexport.IndexLagSeconds + "_count", `engine="memory"`,
		`phase="scan"`, `repeat="0"`, `cores="`, metricsexport.SourceMutationsTotal, "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(body, name) {
			t.Errorf("scrape lacks %s:\n%.2000s", name, body)
		}
	}
	// The scan's background ingest had applied mutations by the time its
	// scans were measured.
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, metricsexport.SourceMutationsTotal+"{") && strings.HasSuffix(line, " 0") {
			t.Errorf("no source mutations counted: %s", line)
		}
	}
}
