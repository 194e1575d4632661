// Package bbolt adapts go.etcd.io/bbolt (a copy-on-write B+tree in one
// memory-mapped file) to engines.Store. It registers as "bbolt" (Real).
//
// Layout of a store directory:
//
//	IDXBENCH-STORE            marker (engines.ClaimDir)
//	data.db                   the live bbolt file: one bucket per keyspace
//	rp/<id>.db                a consistent copy of data.db per recovery point
//	rp/<id>.meta              the recovery point's meta, written last
//
// Writes. Each Apply is one db.Update: the batch's operations are sorted
// stably by (keyspace, key), which keeps page accesses local and preserves
// batch order among equal keys (the last write wins), then applied. bbolt has
// one writer, so the per-batch durability flag is honoured by setting
// db.NoSync before each Update while holding the adapter's writer lock; only
// the writing goroutine reads that field, inside Commit. A synced commit costs
// two fdatasyncs (pages, then meta page). A NoSync commit survives a process
// crash (kill -9: the page cache keeps its writes), but after a power loss
// its meta page may have reached the disk before its data pages, which bbolt
// cannot detect: NoSync is a benchmark setting, not a durability level for
// machines that lose power. A later synced commit makes every earlier one
// durable too (fdatasync covers the whole file). NoGrowSync is always on: on Linux
// fdatasync also persists the file size a commit grew, so the extra fsync
// bbolt would issue when growing the file buys nothing.
//
// Views. A view is a bbolt read transaction held until the view is closed:
// it is exactly point-in-time and gives the fastest scans of the three real
// engines. The cost, accepted and measured rather than hidden: while a view is
// open bbolt cannot reuse the pages freed after it began, so long-lived views
// make the file grow; and bbolt remaps the file under a lock that read
// transactions hold, so if the file outgrows the mapping while a view is open
// the writer waits until the view closes. The mapping is therefore reserved
// large up front (initial_mmap_size, default 8 GiB of address space, not
// memory), which makes that wait practically unreachable for benchmark-sized
// stores. Near the end of the mapping, Apply refuses (with an error saying
// so) a batch that could trigger a remap while views are open, rather than
// risk a deadlock when the view's holder waits for that Apply.
//
// Recovery points cost O(file size): from a read transaction, tx.WriteTo
// streams a consistent image of the file to rp/<id>.db.tmp, which is fsynced
// and renamed, the directory fsynced, and then rp/<id>.meta is written
// atomically. A recovery point is listed only when its .meta exists, so a
// crash mid-way leaves an orphan that the next Open removes. Rollback closes
// the database, drops the newer recovery points, copies rp/<id>.db over
// data.db (temp file, fsync, rename, directory fsync) and reopens: O(data).
// DropRecoveryPoint removes the .meta first, then the copy.
//
// Corruption. bbolt maps far more than the file and trusts its pages: a
// page id past the end of the file is a SIGBUS, a damaged page a panic or a
// wrong answer (pages carry no checksums). So bolt.Open maps only a file
// checked first, with plain reads (check.go). A store closed cleanly is
// sealed (engines.Seal): Open checks data.db and the .meta files against
// their CRC-32C, so any damage since is refused, and checkFile reads the
// meta pages (a file without a valid one, not whole pages, shorter than
// its meta page says, a root or freelist page out of place). A store
// without a seal (a crash) gets checkTree instead: every page of every
// bucket's tree and the freelist, bounds and types checked (about 1 s per
// GB). Each recovery-point copy's checksum is in its .meta and checked
// when a rollback copies it back (a damaged copy leaves data.db as it
// was). A panic of bbolt's in a call (damage arising while open) is
// contained: an error wrapping engines.ErrCorrupt, the store marked
// damaged on disk (engines.MarkDamaged, so the next Open refuses it) and
// failed; iterators' Next relies on the checks at Open instead (see
// iter). Errors name the file; all wrap engines.ErrCorrupt. Check runs
// bbolt's own consistency check.
//
// A full disk: bbolt writes with pwrite, so a commit that finds no space
// fails with ENOSPC (wrapped with engines.ErrDiskFull, naming the store)
// and leaves the file as it was.
//
// Options. Cache, memtable and compression sizes have no bbolt meaning (the
// OS page cache holds the mmap; bbolt does not compress) and Describe says so.
// Engine-specific settings go in Options.Extra:
//
//	initial_mmap_size  bytes of address space mapped up front (default 8GiB)
//	page_size          page size of a new file (default the OS page size)
//	no_freelist_sync   true: do not write the freelist on commit (default false)
//	freelist           array | hashmap (default array, bbolt's default)
//
// Metrics. EngineBytesWritten is what the adapter knows it made bbolt write:
// the pages each commit allocated (bbolt's PageAlloc statistic) plus one meta
// page per commit, plus the bytes of recovery-point and rollback copies. It
// is an estimate from inside; /proc/self/io write_bytes is the honest
// cross-engine figure.
package bbolt
