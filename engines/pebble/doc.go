// Package pebble is the idxbench adapter for cockroachdb/pebble (v2), an LSM
// tree. It registers the engine "pebble".
//
// One store is one pebble database in <dir>/data (after a rollback,
// <dir>/data-NNNNNN, named by the file <dir>/LIVE). The three keyspaces share
// it under a one-byte key prefix (the Keyspace value), so a keyspace is a
// contiguous key range and a view's iterator is a pebble iterator bounded to
// that range.
//
// Data flow: Apply encodes a whole engines.Batch into one pebble batch
// (prefix and key written in place, no per-operation allocation) and commits
// it with or without a WAL fsync. NewView takes a pebble snapshot. A
// recovery point is Flush, then Checkpoint(<dir>/checkpoints/<id>,
// WithFlushedWAL), then a record of the checkpoint (the caller's meta, and
// the size and checksum of each file) written atomically last; Open lists
// only checkpoints with a record (or the older marker) and removes the
// others. RollbackTo drops newer checkpoints, checks the checkpoint
// against its record, builds a new database directory from it
// (sstables hard-linked, everything else copied, so the checkpoint is never
// opened and can be rolled back to again), switches LIVE to it atomically
// and opens it; the replaced database closes in
// the background (its Close waits for running compactions) and its
// directory is removed. Open removes database directories LIVE does not
// name, which is all a crash during a rollback can leave behind.
//
// Costs: creating a recovery point is a memtable flush plus one link per
// sstable; a retained one keeps the sstables it links alive after
// compaction deletes them from the live database (space, not time).
// Rollback is O(files), plus the reopen's WAL replay of the checkpoint.
//
// Faults (faults.go): pebble treats a failed WAL or MANIFEST write as
// fatal (a panic, or Logger.Fatalf), so a space guard keeps
// disk_reserve_bytes free for them and refuses Apply, recovery points and
// compactions — and, through pebble's filesystem, sstable and checkpoint
// writes — that would dip into it, with an error wrapping
// engines.ErrDiskFull and syscall.ENOSPC. Corruption pebble finds (block
// checksums, lazily) is engines.ErrCorrupt and marks the store damaged on
// disk; a store closed cleanly is sealed, so Open checks every file's size
// and every non-table file's checksum first (a damaged WAL would otherwise
// pass for a torn one). A panic left over is contained at the adapter
// boundary (engines.ErrFailed).
//
// The settings are benchmark settings (pebble's cmd/pebble), not pebble's
// library defaults: newest format, a 64 MiB memtable, L0 compaction at 2
// sublevels and write stalls only at 1000; see settings.String.
package pebble
