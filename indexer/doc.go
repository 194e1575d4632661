// Package indexer is one indexer node of the pipeline: it turns the
// projector's key versions into index slices on a storage engine and serves
// consistent scans from snapshots of them.
//
// Data flows through it in this order:
//
//  1. The stream reader (Run) receives projector batches from a Source.
//     Stream commands (StreamBegin, Snapshot markers, Sync) feed the
//     timekeeper; data key versions (Upsert, Deletion, UpsertDeletion) go
//     into per-vbucket mutation queues. The queues hold at most
//     Config.QueueSize key versions over all vbuckets, counting those a
//     flush is applying; at the bound the reader blocks, which blocks the
//     projector's Send, so memory stays bounded when the engine is slower
//     than the source.
//  2. The timekeeper, a plain state machine, tracks per vbucket the branch
//     (vbuuid), the current snapshot marker and the last seqno received:
//     the high-watermark timestamp (HWT). A vbucket is aligned when its
//     last seqno ends its snapshot; the aligned HWT is, per vbucket, the
//     last aligned position. In local mode the flush loop promotes the
//     aligned HWT to a stability timestamp (ST) every SnapshotInterval
//     when it moved (and early when the queue is half full, or, with
//     STOnDemand, as soon as the aligned HWT covers a waiting scan's
//     vector); in coordinator mode STs come only from PromoteST. The
//     timekeeper holds the vectors waiting scans need (demands) and
//     counts, per demand, the vbuckets the aligned HWT still misses, so a
//     key version costs a comparison per waiting scan, not a vector walk.
//  3. The flusher takes every queued key version with seqno ≤ ST — a
//     round — and hands each slice its part as a job. A slice runs its
//     jobs in round order; slices run in parallel (at most GOMAXPROCS at
//     once); up to two rounds are in flight, so a slice done with one
//     round goes on with the next while a slower one finishes, and queue
//     space frees slice by slice. A job applies its key versions in
//     engine batches of at most FlushBatchSize operations,
//     each batch also rewriting the slice's timestamp vector in the meta
//     keyspace. Back-index logic: an upsert reads the document's previous
//     key (from the back keyspace, or from earlier key versions of the same
//     flush, or from the optional write-through back-index cache), does
//     nothing when it is unchanged, else replaces the main entry and the
//     back entry; a deletion removes both when present. A primary index
//     keeps no back index.
//  4. At the round's boundary each job also takes what the storage
//     manager asked of its slice: a read view for the in-memory snapshot
//     when the round's vector is snapshot-aligned and the slice changed,
//     and, every PersistInterval, a recovery point of a slice changed
//     since its last one (the round's vector as meta, keeping MaxRollbacks
//     of them). Rounds complete in order: when all of a round's jobs are
//     done its snapshot is published — the new views, the unchanged
//     slices' previous ones, shared and reference-counted so scans can
//     hold a snapshot while newer ones are published.
//  5. Scans (Range, Lookup, Count, All) pick a snapshot by consistency
//     (any; request_plus: one covering the bucket's seqnos at request
//     time; at_plus: one covering a given vector), waiting with a
//     timeout, and merge the partitions in key order, then document id.
//     A waiting scan records "st_delay": from when the stream covered
//     its vector to when a snapshot did (promotion, flush and views).
//
// When the queue is full and no ST can be found twice in a row (a
// snapshot larger than the queue can never become aligned while the reader
// waits), the flusher applies everything queued without a snapshot; scans
// see it at the next aligned one.
//
// Recovery (Recover after a restart, Rollback when the producer answers a
// stream request with a rollback): with Run stopped, the queues are
// dropped, waiting scans fail with ErrIndexRollback, and every slice is
// rolled back to a recovery point (the newest one; for a rollback the
// newest at or below the rollback seqnos) or emptied when it has none.
// The streams restart from the oldest vector a slice was restored to;
// slices restored further ahead replay what they hold, which converges, and
// no snapshot is published (scans wait, DDL is refused with ErrRecovering)
// until the flushed vector covers the newest restored one.
//
// Damage: a slice whose store the engine reports damaged (an error wrapping
// engines.ErrCorrupt, not a transient one such as a full disk or an I/O
// error) when it is opened, or while it is restored, is rebuilt empty
// rather than failing the node or being served: the directory is replaced
// by a new store, only if its marker names the engine, and the slice
// restarts from the zero vector, so the streams replay it. Stats counts
// these in SlicesRebuilt; each is logged with its reason. A flush round
// that fails in many slices for one cause (a full disk) reports it once,
// naming the slices.
//
// Slice layout (one engines.Store per partition, Dir/<index>/p<N>): main
// keyspace encodedKey ++ docid ++ uint16 big-endian len(docid) → empty;
// back keyspace docid → encodedKey; meta keyspace "ts" → the vector the
// contents correspond to, "snapshots" → the retained recovery point ids.
//
// Concurrency: Run starts the reader and the flush loop; the rest of the
// API is safe to call from any goroutine. Two locks: flushMu serialises
// starting and completing rounds, persists and instance changes (an
// instance change first waits for the rounds in flight); mu guards the
// queues, the timekeeper and the published snapshot (held briefly, never
// across engine calls). A slice's writer state belongs to its running job.
package indexer
