// Package badger is the idxbench adapter for dgraph-io/badger (v4), an LSM
// tree with a value log. It registers the engine "badger".
//
// One store is one badger database in <dir>/data, opened in managed mode:
// the adapter, not badger, hands out versions. The three keyspaces share it
// under a one-byte key prefix; the adapter's own records (recovery points,
// a rollback in progress) live under the reserved prefix 0xff, which views
// never show.
//
// Data flow: Apply turns an engines.Batch into one transaction committed at
// the next version (WriteBatch would split a large batch into several
// transactions, losing atomicity); a Sync batch is followed by db.Sync.
// NewView is a read transaction at the last committed version. A recovery
// point is a commit of its meta under a reserved key, at version T, and a
// Sync: O(1). The discard timestamp stays at the oldest retained T (and the
// oldest open view), so compaction keeps what a rollback needs; badger
// keeps it only in memory, so Open sets it again, after resuming the
// version counter from MaxVersion and reading the recovery points back.
// RollbackTo(id) marks the rollback durably, then rewrites every key with a
// version above T to its state at T, at one new version, walking the
// changed versions beside an iterator at T; the rewrite's transactions
// commit while the walk goes on (at most two outstanding). A crash part
// way leaves the mark, and Open finishes the rollback.
//
// Costs and limits: rollback writes one version per key changed since the
// point, and reads every table holding a version newer than T (after
// compactions, most of the store): seconds to tens of seconds for 500 k
// updates of a 2 M-entry store, where pebble's and bbolt's rollbacks grow
// with the store's file count or size; retained points pin
// superseded versions (space). A batch must fit one transaction (~15% of the
// memtable; about 100 k small entries at 64 MiB); a larger one is refused
// with an error wrapping badger.ErrTxnTooBig. Badger's per-DB byte counters
// are process-global expvars, so EngineBytesWritten is -1: measure bytes
// written from outside (/proc/self/io).
//
// Faults: badger writes its memtable logs, value logs and new tables
// through memory mappings of sparse files, where a full disk is a SIGBUS,
// so a space guard keeps disk_reserve_bytes (plus the LSM tree's size, for
// compactions) free and refuses writes that would dip into it
// (engines.ErrDiskFull, syscall.ENOSPC). Badger exits the process on some
// damaged tables and silently drops others, so Open first checks the key
// registry, the value logs' headers and the MANIFEST (checkFiles). A store
// closed cleanly is sealed: Open checks every file's size and CRC-32C. One
// a crash left unsealed has every table verified block by block instead
// (checkTables, about 4 s per GB per core; verify_tables=false keeps only
// the cheap checks). Damage is engines.ErrCorrupt naming the file; a panic
// on the caller's goroutine is contained (engines.ErrFailed).
package badger
