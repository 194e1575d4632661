// Package results owns what a run leaves behind and everything that reads it
// back: the schema-versioned results.json, the bench.txt that benchstat
// reads, the ticks.jsonl time series, the self-contained report.html, the
// statistical comparison of runs, and the live Prometheus export
// (subpackage metricsexport).
//
// Data flows one way. The harness builds a Run cell by cell (each child
// process appends its per-second Ticks to ticks.jsonl through a TickWriter
// while it runs) and calls WriteDir after every cell, so an interrupted run
// still leaves a valid directory marked Partial. WriteDir writes
// results.json, bench.txt and report.html, each atomically (temporary file,
// fsync, rename), and can be called as often as needed; it derives the
// run's Summary (median, range and coefficient of variation of every metric
// over the repeats) and checks results.json against the JSON Schema in
// schema/results.schema.json (Validate), which describes SchemaVersion.
// Tools later call ReadRun or ReadHistory — which read every schema
// version so far — then Compare or WriteReport. Size reads capacity
// searches back and answers a sizing question (sizing.go): cores from the
// Universal Scalability Law fitted over the core counts measured, disk,
// memory and write bandwidth from the measured costs.
//
// The package imports no other package of this module, so a tool that only
// compares result files links no storage engine; dep_test.go pins that.
//
// Metric names carry their unit (mutations_per_sec, scan_p99_ms,
// disk_bytes, write_amp); Better tells from the name whether a higher or a
// lower value is the good direction, which compare, bench.txt and the
// report all rely on.
package results
