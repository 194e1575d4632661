// Package measure turns individual operations into the numbers a benchmark
// reports: latency histograms per operation type, per-second ticks, and the
// CPU, memory and I/O a phase cost.
//
// Latency flows from workers to ticks. Each worker owns a Recorder (one per
// worker id) and calls Record(op, d) for every operation; a Recorder keeps
// one HDR histogram per operation type behind a mutex that only the tick
// contends for, so recording costs a map lookup and a histogram increment.
// Once a second the driver calls Registry.Tick(now): it swaps every
// worker's histograms for empty ones, merges them into the tick's window
// and into the cumulative histograms, and returns per-operation figures
// (ops/s instantaneous and cumulative, p50/p95/p99/max). TickPrinter
// prints those in the familiar cockroach shape, with pipeline gauges
// alongside.
//
// Open-loop drivers, which issue operations on a schedule, record with
// RecordIntended(op, intendedStart, end) so that time spent waiting behind
// a slow operation counts against the system (no coordinated omission).
//
// Resources are read from the kernel at phase edges: Begin() snapshots
// getrusage (self and waited-for children), /proc/self/io and the peak RSS
// (resetting the kernel's high-water mark where it allows), End() returns
// the differences.
//
// The core is driven by calls: Tick takes the time it should account to,
// so tests step it without sleeping. The package imports nothing from the
// rest of idxbench; the harness converts its figures into results.
package measure
