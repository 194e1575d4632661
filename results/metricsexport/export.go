package metricsexport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Stable metric names. Dashboards and alerts rely on them: add freely,
// never rename.
const (
	DocsIndexedTotal          = "idxbench_docs_indexed_total"
	DocsPending               = "idxbench_docs_pending"
	DocsQueued                = "idxbench_docs_queued"
	MutationQueueSize         = "idxbench_mutation_queue_size"
	SnapshotsTotal            = "idxbench_snapshots_total"
	PersistentSnapshotsTotal  = "idxbench_persistent_snapshots_total"
	RollbacksTotal            = "idxbench_rollbacks_total"
	ScansTotal                = "idxbench_scans_total"
	ScanErrorsTotal           = "idxbench_scan_errors_total"
	ScanLatencySeconds        = "idxbench_scan_latency_seconds"
	FlushLatencySeconds       = "idxbench_flush_latency_seconds"
	PersistLatencySeconds     = "idxbench_persist_latency_seconds"
	IndexLagSeconds           = "idxbench_index_lag_seconds"
	StabilityTimestampAgeSecs = "idxbench_stability_timestamp_age_seconds"
	DiskBytes                 = "idxbench_disk_bytes"
)

// help describes the stable names; others get a generic line.
var help = map[string]string{
	DocsIndexedTotal:          "Documents applied to the index (upserts and deletions).",
	DocsPending:               "Mutations received by the indexer and not yet flushed.",
	DocsQueued:                "Mutations waiting in the indexer's mutation queues.",
	MutationQueueSize:         "Length of the indexer's mutation queues.",
	SnapshotsTotal:            "In-memory snapshots taken.",
	PersistentSnapshotsTotal:  "Persistent snapshots (recovery points) taken.",
	RollbacksTotal:            "Rollbacks of the index to a snapshot.",
	ScansTotal:                "Scans served.",
	ScanErrorsTotal:           "Scans that failed (timeouts, rollbacks).",
	ScanLatencySeconds:        "Scan latency from request to last row.",
	FlushLatencySeconds:       "Time to apply one stability timestamp's batch.",
	PersistLatencySeconds:     "Time to take one persistent snapshot.",
	IndexLagSeconds:           "Time from a mutation's emission to its visibility in a snapshot.",
	StabilityTimestampAgeSecs: "Age of the newest stability timestamp.",
	DiskBytes:                 "Bytes the engine's files take on disk.",
}

// Labels say which index and engine a value belongs to; empty values are
// allowed (a value for the whole process).
type Labels struct {
	Index  string
	Engine string
}

// Sample is one gauge or counter value.
type Sample struct {
	Name   string
	Labels Labels
	Value  float64
}

// Bucket is one histogram bucket: Count observations were ≤ UpperBound
// (cumulative, as Prometheus counts them).
type Bucket struct {
	UpperBound float64
	Count      uint64
}

// Histogram is a latency distribution, in seconds.
type Histogram struct {
	Name    string
	Labels  Labels
	Count   uint64
	Sum     float64
	Buckets []Bucket
}

// Snapshot is everything a Source reports at one scrape.
type Snapshot struct {
	Gauges     []Sample
	Counters   []Sample
	Histograms []Histogram
}

// Source is asked for a Snapshot at every scrape. Collect may be called
// from the HTTP server's goroutines concurrently with the benchmark; it
// must be safe for that and should be quick.
type Source interface {
	Collect() Snapshot
}

// SourceFunc adapts a function to a Source.
type SourceFunc func() Snapshot

// Collect calls f.
func (f SourceFunc) Collect() Snapshot { return f() }

var labelNames = []string{"index", "engine"}

// collector is an unchecked prometheus.Collector: the metric names come
// from the Source at scrape time, so it describes none up front.
type collector struct{ src Source }

// NewCollector returns a collector reading src at every scrape.
func NewCollector(src Source) prometheus.Collector { return collector{src} }

func (collector) Describe(chan<- *prometheus.Desc) {}

func desc(name string) *prometheus.Desc {
	h, ok := help[name]
	if !ok {
		h = "idxbench metric " + name + "."
	}
	return prometheus.NewDesc(name, h, labelNames, nil)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.src.Collect()
	emit := func(samples []Sample, typ prometheus.ValueType) {
		for _, s := range samples {
			d := desc(s.Name)
			m, err := prometheus.NewConstMetric(d, typ, s.Value, s.Labels.Index, s.Labels.Engine)
			if err != nil {
				m = prometheus.NewInvalidMetric(d, fmt.Errorf("metric %s: %w", s.Name, err))
			}
			ch <- m
		}
	}
	emit(snap.Gauges, prometheus.GaugeValue)
	emit(snap.Counters, prometheus.CounterValue)
	for _, h := range snap.Histograms {
		d := desc(h.Name)
		buckets := make(map[float64]uint64, len(h.Buckets))
		for _, b := range h.Buckets {
			buckets[b.UpperBound] = b.Count
		}
		m, err := prometheus.NewConstHistogram(d, h.Count, h.Sum, buckets, h.Labels.Index, h.Labels.Engine)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, fmt.Errorf("histogram %s: %w", h.Name, err))
		}
		ch <- m
	}
}

// Handler serves src in the Prometheus exposition format from a registry
// of its own. A bad metric (an invalid name, a duplicate) is left out and
// the rest still served.
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ListenAddr resolves the address a user gave: empty means an ephemeral
// loopback port, a missing host (":9090") means loopback, and only a host
// named explicitly ("0.0.0.0:9090", "myhost:9090") leaves the machine.
func ListenAddr(addr string) (string, error) {
	if addr == "" {
		return "127.0.0.1:0", nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("metrics address %q: want HOST:PORT or :PORT", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Serve serves src at http://ADDR/metrics until ctx ends and returns the
// address it listens on (useful when the port was 0). See ListenAddr for
// how addr is read.
func Serve(ctx context.Context, addr string, src Source) (string, error) {
	la, err := ListenAddr(addr)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", la)
	if err != nil {
		return "", fmt.Errorf("metrics: listen on %s: %w", la, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(src))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			ln.Close()
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()
	return ln.Addr().String(), nil
}

// Names lists the stable metric names, sorted.
func Names() []string {
	names := make([]string, 0, len(help))
	for n := range help {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
