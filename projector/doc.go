// Package projector turns a vbucket change stream into index mutations: it
// evaluates every index instance on every document version and sends the
// resulting KeyVersions, batched, to the indexer endpoints that hold the
// instances' partitions.
//
// Data flows through it in this order:
//
//	Feed.Next ──▶ Run (reader goroutine) ──▶ Handle(event)
//	   ──▶ one-pass field extraction over the paths of all instances (jsonpath.go)
//	   ──▶ per instance: WHERE, key (projector/collate), partition (instance.go)
//	   ──▶ per endpoint batch (Router picks the endpoint of each partition)
//	   ──▶ Transport.Send when the batch is full, or from Flush / the Run ticker
//
// The package owns:
//   - Instance: an index definition compiled for evaluation (Compile).
//   - Projector: the deterministic core (Handle, Flush, driven by calls, no
//     goroutines, no clock) and its edge (Run: a feed reader goroutine and a
//     flush ticker). Instances are added and dropped at run time through an
//     immutable instance set swapped atomically, so DDL never stops the
//     stream. Two projectors share nothing, so an INIT stream for an initial
//     build is simply a second Projector over a second feed holding only the
//     new instances.
//   - Transport and Router, the in-process ChanTransport, and BatchPool.
//   - KeyVersion, Batch and Command (keyversions.go), the wire types the
//     indexer consumes.
//
// The rules for which KeyVersions an event yields are on Handle; the key
// rules (primary key = the document id; secondary key = one value per
// expression, WHERE false or leading expression missing = no key, missing
// non-leading components indexed as defn.Missing, arrays as whole values)
// are those of workload/defn. Partitions are FNV-1a 32 of the document id
// (default) or of the collated partition key value, modulo the partition
// count (PartitionOf).
package projector
