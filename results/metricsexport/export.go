package metricsexport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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

// SourceMutationsTotal counts the mutations the workload driver applied
// to the KV bucket (the source of the index's stream).
const SourceMutationsTotal = "idxbench_source_mutations_total"

// help describes the stable names precisely: what is counted, in which
// unit, from when. Others get a generic line.
var help = map[string]string{
	DocsIndexedTotal:          "Key versions the indexer applied that changed an index (an upsert of an unchanged key or a deletion of an absent document is not counted), since the index node started.",
	DocsPending:               "Bucket mutations that scans cannot see yet: the sum of the bucket's vbucket seqnos minus that of the latest in-memory snapshot.",
	DocsQueued:                "Key versions in the indexer's mutation queues waiting for a stability timestamp.",
	MutationQueueSize:         "Key versions in the indexer's mutation queues counted against its queue_size: those queued plus those a flush is applying.",
	SnapshotsTotal:            "In-memory snapshots (stability timestamps) the indexer took, since the index node started.",
	PersistentSnapshotsTotal:  "Rounds of persistent snapshots (recovery points) the indexer took, since the index node started.",
	RollbacksTotal:            "Rollbacks of the index to a persistent snapshot.",
	ScansTotal:                "Scans the indexer served, since the index node started.",
	ScanErrorsTotal:           "Scans that failed (timeouts, rollbacks), since the index node started.",
	ScanLatencySeconds:        "Scan latency in seconds as the scan clients see it, request to answer, in the current phase (open loop: from when the scan was due).",
	FlushLatencySeconds:       "Seconds to apply one stability timestamp's key versions to every slice, in the current phase.",
	PersistLatencySeconds:     "Seconds to take one round of persistent snapshots (recovery points) of the dirty slices, in the current phase.",
	IndexLagSeconds:           "Seconds from a sampled mutation's emission by the source to its visibility in an in-memory snapshot, in the current phase.",
	StabilityTimestampAgeSecs: "Seconds since the indexer's newest in-memory snapshot.",
	DiskBytes:                 "Bytes the engine's files of every slice take on disk.",
	SourceMutationsTotal:      "Mutations the workload driver applied to the KV bucket in the cell's phases after the load (ingest, scans under ingest, builds, rollbacks), since the cell started.",
}

// Labels say which index, engine, phase and cell a value belongs to;
// empty values are allowed (a value for the whole process). Cores and
// Repeat are the cell's; with Cores 0 both are left empty.
type Labels struct {
	Index  string
	Engine string
	Phase  string
	Cores  int
	Repeat int
}

// values are the label values in labelNames' order.
func (l Labels) values() []string {
	cores, repeat := "", ""
	if l.Cores > 0 {
		cores, repeat = strconv.Itoa(l.Cores), strconv.Itoa(l.Repeat)
	}
	return []string{l.Index, l.Engine, l.Phase, cores, repeat}
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

var labelNames = []string{"index", "engine", "phase", "cores", "repeat"}

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
			m, err := prometheus.NewConstMetric(d, typ, s.Value, s.Labels.values()...)
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
		m, err := prometheus.NewConstHistogram(d, h.Count, h.Sum, buckets, h.Labels.values()...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, fmt.Errorf("histogram %s: %w", h.Name, err))
		}
		ch <- m
	}
}

// Handler serves src in the Prometheus exposition format from a registry
// of its own, with the Go runtime's collector (go_*: goroutines, GC, heap)
// and the process collector (process_*: CPU seconds, resident memory, open
// files) of the serving process beside it. A bad metric (an invalid name,
// a duplicate) is left out and the rest still served.
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
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
