// Package metricsexport serves a running benchmark's live figures to
// Prometheus under stable names (idxbench_docs_indexed_total,
// idxbench_mutation_queue_size, idxbench_scan_latency_seconds, …).
//
// Data flows at scrape time: Prometheus requests /metrics, the handler's
// private registry (never the global one) asks its collector, the
// collector calls Source.Collect once and turns the Snapshot — gauges,
// counters and latency histograms, each labelled by index and engine —
// into constant metrics. Nothing is cached between scrapes, so the values
// are as fresh as the source makes them. The harness adapts the indexer's
// stats and measure's histograms into a Source; this package links no
// engine.
//
// Serve listens on loopback unless the address names another host
// explicitly, and stops when its context ends.
package metricsexport
