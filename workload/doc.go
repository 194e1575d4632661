// Package workload is idxbench's synthetic data source: a simulated KV
// bucket speaking UPR (DCP) to its consumers, a deterministic generator of
// documents and operations, the workload spec that configures both, and the
// oracle that says what every index must contain.
//
// Data flows like this:
//
//	Spec (YAML: ParseSpec / LoadSpec)
//	  │
//	  ▼
//	Generator ── Load, then Next ──► Op ── Apply ──► Bucket
//	                                                  │  per-vbucket history,
//	                                                  │  seqnos, failover logs
//	                         ┌────────────────────────┴────────────┐
//	                         ▼                                      ▼
//	              Feed (Request / Next): per-vbucket        Oracle.Expected(index, ts)
//	              StreamBegin|Rollback, snapshot markers,   from the same history,
//	              mutations, deletions, expirations,        with its own JSON walk
//	              StreamEnd → projector                     and WHERE evaluation
//
// Everything here is a deterministic state machine driven by calls: the
// bucket and its feeds start no goroutines (Feed.Next blocks its caller
// only), and all randomness comes from PCG generators seeded from the
// spec's seed. The same seed gives the same documents, seqnos, vbuuids and
// stream contents; Generator.Digest proves it, `idxbench workload --dump`
// shows it. Only Event.EmitNanos, read from the bucket's clock, varies
// between runs unless a clock is injected (BucketOptions.Clock).
//
// Stream semantics, in brief (details on Bucket, Feed and rollbackSeqno):
//   - A stream from seqno 0 starts with a backfill: one snapshot [0, X]
//     holding each document's latest version at or below the vbucket's
//     high seqno X once, deletion and expiration tombstones included, so the
//     snapshot's last item has seqno X. Live mutations follow.
//   - The bucket closes a vbucket's snapshot every SnapshotItems mutations;
//     a stream that catches up sends the open part as a snapshot of its
//     own. Every marker's SnapEnd is the seqno of its last item.
//   - A stream requested inside a partial snapshot [snapStart, snapEnd]
//     resumes it: its first marker is [snapStart, ≥ snapEnd].
//   - Rollback: start 0 → never; unknown vbuuid → 0; start past the
//     requester's branch end → that end; a requester's snapshot reaching
//     past the branch end → its snapStart. A failover ends open streams
//     with EndStateChanged.
//   - A KV restart (Bucket.Restart) ends every open stream with
//     EndDisconnected. A crash may lose the unpersisted tail of some
//     vbuckets: with a new failover-log entry there, a consumer past it is
//     answered with Rollback; without one, only a consumer that asks from
//     past the high seqno is, and once new mutations reuse the lost seqnos
//     nothing in the protocol tells a consumer holding the lost ones.
//   - Compaction (Bucket.Compact, Oracle.Forget) deduplicates history below
//     a vector, as KV does; streams starting below it get one
//     deduplicated snapshot, and the oracle refuses vectors below it.
//
// The oracle answers two ways. Expected walks the whole bucket for one
// index at one vector (a phase's final check). A View (Oracle.NewView)
// keeps a few indexes' entries in index order (CompareKeys, the oracle's
// own statement of the collation), each version tagged with the seqno
// range it lives in, and moves forward with the bucket's history: it
// answers a range, lookup, count or full scan with a limit at any vector
// between its floor and its head for about the cost of the scan itself,
// so every scan of a benchmark can be checked. View.Forget drops what no
// later vector can see.
//
// The source must never be what limits a benchmark (BenchmarkGenerateApply
// measures it), so the hot path avoids copies, allocations and string
// maps: the generator carves each operation's id and body from a slab
// chunk that the bucket keeps rather than copies (Generator.Apply), the
// bucket's history lives in one append-only arena and in fixed-size item
// segments (appending never copies) carved from big huge-page-advised
// chunks, and generated ids find their state by number. Fresh memory's
// page faults, about a third of the source's CPU time on the benchmark
// machine, are most of what is left: a mutation needs its id, body and
// 48-byte item in memory nothing used before.
//
// The spec format is YAML; testdata/default-spec.yaml is the default spec
// printed by Spec.YAML (kept in sync by a test). Unknown fields are errors;
// errors name the field's path ("workload.ops.update: must be in [0,1]").
//
// Subpackages: upr holds the protocol types and timestamp vectors; defn
// holds index definitions and the WHERE grammar.
package workload
