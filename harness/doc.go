// Package harness runs idxbench's scenarios: it turns a scenario (a workload
// spec, indexer settings and a list of phases) into measured, verified
// results, one cell of the engine × data dir × core count × repeat matrix at
// a time.
//
// Data flows like this:
//
//	RunConfig ─ Prepare (validates everything, touches no disk)
//	   │
//	   ▼
//	plan.Run ─ for each cell: a child process of the same binary, pinned to
//	   │        its cores with GOMAXPROCS set, given a CellJob on stdin
//	   │        (RunChild) ─ results written after every cell
//	   ▼
//	RunCell ─ composes the cell's nodes: a KV node (projector/kvnode: the
//	   │      bucket, its generator and the topics' projectors), an index
//	   │      node on the engine (indexer/node: the indexer and its stream
//	   │      manager), the coordinator's metadata and the oracle ─ then runs
//	   │      the phases in order, driving the nodes through their APIs
//	   ▼
//	runPhase ─ a fresh measure.Registry per phase (HDR histograms per
//	            operation, a tick a second to stderr and ticks.jsonl),
//	            resource accounting, the phase's own metrics, and, for phases
//	            that change the index, verification: a full scan of every
//	            index compared with the oracle at the scan's snapshot vector.
//
// A scan phase with verification on checks every client's every answer
// (scancheck.go): the clients record a scan's latency, then hand the
// request and result to a checker goroutine that asks a workload.View of
// the index at the snapshot vector the scan read. Long runs stay bounded:
// ingest and scan drivers compact the bucket's history below what rollbacks,
// verification and the checker may still need (compact.go), and a phase
// with drift: true is judged for growth of resident set, goroutines and
// index lag (drift.go; the soak scenario).
//
// Phases: load (initial build from a backfill), ingest, scan, persist,
// rollback (KV failover), restart, reconfigure (a restart with other
// indexer settings, so one scenario compares them), kv-restart (KV restarts, losing
// unpersisted tails or not), build-index (INIT stream, merge into MAINT;
// faults in CATCHUP or the backfill, overlapping builds), drop-index,
// raw-ingest (the engine alone), capacity (a search for the highest
// open-loop ingest rate that meets a lag and scan SLO; capacity.go) and
// fault (a node, the master or etcd killed or stopped under scans and
// ingest on a cluster; clusterfaults.go). Every phase also reports what
// sizing needs: CPU and bytes written per mutation, write amplification
// and the engines' own figures (costs.go, through a tally of the
// pipeline's stores), and the load splits disk and engine memory into a
// fixed part per store and a part per entry. The crash test
// (RunCrashTest in crash.go, RunCrashChild in crash_child.go) kills child
// processes with SIGKILL and checks every recovery.
//
// Faults are injected on purpose only: --inject-slowdown (slowedEngine) to
// check that a comparison catches a regression, and the failovers of the
// rollback phase and the crash test. The harness deletes only directories
// it created and marked (datadir.go).
package harness
