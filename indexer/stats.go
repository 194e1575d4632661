package indexer

import (
	"sync/atomic"
	"time"
)

// stats are the indexer's counters, updated with atomics so Stats can read
// them without stopping anything.
type stats struct {
	batchesReceived    atomic.Int64
	readerBlocks       atomic.Int64
	readerBlockedNanos atomic.Int64
	skipped            atomic.Int64
	flushes            atomic.Int64
	flushOnly          atomic.Int64
	flushedKVs         atomic.Int64
	docsIndexed        atomic.Int64
	snapshots          atomic.Int64
	persisted          atomic.Int64
	scans              atomic.Int64
	scanErrors         atomic.Int64
	slicesRebuilt      atomic.Int64
	rollbackKept       atomic.Int64
}

// Stats is a point-in-time reading of the indexer's figures. The names
// follow the indexer stats users know (docs_indexed, docs_pending, …).
type Stats struct {
	// DocsIndexed counts applied key versions that changed an index
	// (an upsert of an unchanged key or a deletion of an absent document
	// does not).
	DocsIndexed int64
	// FlushedKeyVersions counts every applied data key version.
	FlushedKeyVersions int64
	// DocsPending is how many bucket mutations scans cannot see yet: the
	// sum of KV seqnos minus the sum of the latest snapshot's (0 without
	// Config.KVSeqnos).
	DocsPending int64
	// DocsQueued is the key versions in the mutation queues waiting for a
	// stability timestamp.
	DocsQueued int64
	// MutationQueueSize is what counts against Config.QueueSize: queued
	// key versions plus those a flush is applying.
	MutationQueueSize int64
	// NumSnapshots counts in-memory snapshots taken; NumPersisted rounds of
	// persistent snapshots (recovery points).
	NumSnapshots, NumPersisted int64
	// Flushes counts flushes; FlushOnly those that went past the aligned
	// high-watermark because the queue was full.
	Flushes, FlushOnly int64
	// Scans counts scans served; ScanErrors those that failed.
	Scans, ScanErrors int64
	// SkippedKeyVersions counts key versions for unknown (dropped)
	// instances.
	SkippedKeyVersions int64
	// SlicesRebuilt counts slices whose store was found damaged (on open,
	// or while restoring it in Recover or Rollback) and was replaced by an
	// empty one, for the streams to replay from the start.
	SlicesRebuilt int64
	// RollbackKeptKeyVersions counts the queued key versions rollbacks
	// kept (Config.RollbackQueues keep) rather than have KV send again.
	RollbackKeptKeyVersions int64
	// ReaderBlocks counts how often the stream reader waited for queue
	// space; ReaderBlocked is the time it waited in total.
	ReaderBlocks  int64
	ReaderBlocked time.Duration
	// SinceLastSnapshot is the age of the latest in-memory snapshot.
	SinceLastSnapshot time.Duration
	// HWTSeqnos and SnapshotSeqnos are the sums of the high-watermark's and
	// the latest snapshot's seqnos.
	HWTSeqnos, SnapshotSeqnos uint64
	// Instances is the number of index instances.
	Instances int
	// DiskBytes, EngineBytesWritten and EngineMemoryBytes sum the engine
	// metrics of every slice (figures an engine cannot know are left out).
	DiskBytes, EngineBytesWritten, EngineMemoryBytes int64
}

// Merge adds o's figures to s, as one node's to another's: counters and
// sizes add up, the snapshot's age is the older one and the seqno sums
// the lower ones (what both have reached).
func (s *Stats) Merge(o Stats) {
	s.DocsIndexed += o.DocsIndexed
	s.FlushedKeyVersions += o.FlushedKeyVersions
	s.DocsPending += o.DocsPending
	s.DocsQueued += o.DocsQueued
	s.MutationQueueSize += o.MutationQueueSize
	s.NumSnapshots += o.NumSnapshots
	s.NumPersisted += o.NumPersisted
	s.Flushes += o.Flushes
	s.FlushOnly += o.FlushOnly
	s.Scans += o.Scans
	s.ScanErrors += o.ScanErrors
	s.SkippedKeyVersions += o.SkippedKeyVersions
	s.SlicesRebuilt += o.SlicesRebuilt
	s.RollbackKeptKeyVersions += o.RollbackKeptKeyVersions
	s.ReaderBlocks += o.ReaderBlocks
	s.ReaderBlocked += o.ReaderBlocked
	s.SinceLastSnapshot = max(s.SinceLastSnapshot, o.SinceLastSnapshot)
	s.HWTSeqnos = min(s.HWTSeqnos, o.HWTSeqnos)
	s.SnapshotSeqnos = min(s.SnapshotSeqnos, o.SnapshotSeqnos)
	s.Instances += o.Instances
	s.DiskBytes += o.DiskBytes
	s.EngineBytesWritten += o.EngineBytesWritten
	s.EngineMemoryBytes += o.EngineMemoryBytes
}

// Stats reads the indexer's figures. It asks every slice's engine for its
// metrics, so it is meant for about once a second, not a hot loop.
func (ix *Indexer) Stats() Stats {
	s := Stats{
		DocsIndexed:             ix.st.docsIndexed.Load(),
		FlushedKeyVersions:      ix.st.flushedKVs.Load(),
		NumSnapshots:            ix.st.snapshots.Load(),
		NumPersisted:            ix.st.persisted.Load(),
		Flushes:                 ix.st.flushes.Load(),
		FlushOnly:               ix.st.flushOnly.Load(),
		Scans:                   ix.st.scans.Load(),
		ScanErrors:              ix.st.scanErrors.Load(),
		SkippedKeyVersions:      ix.st.skipped.Load(),
		SlicesRebuilt:           ix.st.slicesRebuilt.Load(),
		RollbackKeptKeyVersions: ix.st.rollbackKept.Load(),
		ReaderBlocks:            ix.st.readerBlocks.Load(),
		ReaderBlocked:           time.Duration(ix.st.readerBlockedNanos.Load()),
	}
	ix.mu.Lock()
	s.DocsQueued = int64(ix.q.len())
	s.MutationQueueSize = int64(ix.q.len() + ix.inflight)
	s.SinceLastSnapshot = time.Since(ix.snap.taken)
	s.SnapshotSeqnos = ix.snap.ts.Sum()
	for _, c := range ix.tk.cur {
		s.HWTSeqnos += uint64(c.seqno)
	}
	snap := ix.snap
	closed := ix.closed
	if !closed {
		// Close waits for this reader before it closes the stores,
		// whose metrics it reads and whose views snap holds. A closed
		// indexer's snapshot is released: it is read, not held.
		snap.refs.Add(1)
		ix.statsReaders.Add(1)
	}
	ix.mu.Unlock()
	if !closed {
		defer ix.statsReaders.Done()
		defer snap.release()
	}

	if ix.cfg.KVSeqnos != nil {
		if kv := ix.cfg.KVSeqnos(); kv != nil {
			s.DocsPending = max(0, int64(kv.Sum())-int64(s.SnapshotSeqnos))
		}
	}
	s.Instances = len(snap.insts)
	if closed {
		return s
	}
	for _, si := range snap.insts {
		for _, v := range si.views {
			m, err := v.slice.store.Metrics()
			if err != nil {
				continue
			}
			if m.DiskBytes > 0 {
				s.DiskBytes += m.DiskBytes
			}
			if m.EngineBytesWritten > 0 {
				s.EngineBytesWritten += m.EngineBytesWritten
			}
			if m.MemoryBytes > 0 {
				s.EngineMemoryBytes += m.MemoryBytes
			}
		}
	}
	return s
}
