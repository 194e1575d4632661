package indexer

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/workload/upr"
)

// ST modes.
const (
	// ModeLocal: the indexer's own timekeeper promotes its snapshot-aligned
	// high-watermark to a stability timestamp every SnapshotInterval.
	ModeLocal = "local"
	// ModeCoordinator: stability timestamps come only from PromoteST (the
	// coordinator collects every indexer's AlignedHWT and broadcasts one).
	ModeCoordinator = "coordinator"
)

// What a KV rollback does with the mutation queues (Config.RollbackQueues).
const (
	// RollbackQueuesDiscard drops every queued key version: the streams
	// restart from the vector the slices were restored to and send them
	// again.
	RollbackQueuesDiscard = "discard"
	// RollbackQueuesKeep keeps, per vbucket, the queued key versions up to
	// the last complete snapshot received, when that is at or below the
	// rollback point and the slices were restored exactly to where the
	// queue begins (the vector flushed last); the vbucket's stream then
	// restarts after them. Elsewhere the queue is dropped as with discard:
	// a gap between the restored vector and the queue must come from KV,
	// which resends the queued versions with it.
	RollbackQueuesKeep = "keep"
)

// MinSnapshotInterval is the shortest SnapshotInterval Validate accepts.
const MinSnapshotInterval = 10 * time.Millisecond

// Recorder receives durations of the indexer's operations: "flush" (one
// stability timestamp applied to every slice), "snapshot" (views taken and
// published), "persist" (recovery points of every dirty slice), "index_lag"
// (a sampled mutation's emission to its visibility in a snapshot),
// "st_delay" (a waiting scan: its vector covered by the stream to covered by
// a snapshot), "verify_on_open" (one slice's checks when it is opened, see
// VerifyOnOpen) with "verify_engine_on_open" (the engine's part of them),
// and "scan_<kind>_<consistency>" (e.g. "scan_range_request_plus"). Record
// is called from several goroutines at once.
type Recorder interface {
	Record(op string, d time.Duration)
}

// Config configures an Indexer. The zero value works except for Engine:
// EnsureDefaults fills every other field's documented default.
type Config struct {
	// Engine opens each slice's store. Required.
	Engine engines.Engine
	// EngineOptions are passed to Engine.Open for every slice. Without a
	// DiskSpace, New gives them one, so the indexer's slices keep their
	// free-space reserves together (engines.DiskSpace).
	EngineOptions engines.Options
	// Dir holds the slices, one store per partition in Dir/<index>/p<N>.
	// Required (even the memory engine claims its directories).
	Dir string
	// NumVbuckets is the bucket's vbucket count. Default 1024.
	NumVbuckets int
	// SnapshotInterval is how often the local timekeeper promotes a
	// stability timestamp (when it advanced). Default 200 ms, at least 10 ms.
	SnapshotInterval time.Duration
	// PersistInterval is the least time between two persistent snapshots
	// (recovery points) of a slice. Default 5 s; negative disables them.
	PersistInterval time.Duration
	// MaxRollbacks is how many recovery points each slice keeps. Default 5.
	MaxRollbacks int
	// QueueSize bounds the key versions held in the mutation queues, over
	// all vbuckets, counting those being flushed (plus, at most, the key
	// versions of one mutation less one: a mutation's key versions for
	// several instances enter together). The stream reader blocks
	// (and so does the projector's Send) while the bound is reached, so
	// memory stays bounded when the engine is slower than the source. When
	// half of it is used the local timekeeper promotes early rather than
	// waiting for the timer. Default 262144.
	QueueSize int
	// FlushBatchSize is the most operations (index, back-index and meta
	// writes) one engine batch carries; a flush larger than that is applied
	// as several batches. Default 10000.
	FlushBatchSize int
	// BackIndexCacheBytes bounds a write-through cache of each secondary
	// slice's back index, so upserts and deletions need not read the store
	// (a slice created empty whose cache stays within the bound never
	// reads it). Past the bound the cache empties and fills again from
	// later flushes. Default 0: no cache.
	BackIndexCacheBytes int64
	// RollbackQueues is what a KV rollback does with the mutation queues:
	// RollbackQueuesDiscard or RollbackQueuesKeep. Default discard.
	RollbackQueues string
	// Durability is passed to every Apply.
	Durability engines.Durability
	// VerifyOnOpen is how each slice's store is checked when it is opened
	// over existing files (a restart): VerifyNone, VerifyQuick (the
	// engine's quick checks and the stored vector) or VerifyFull (the
	// engine's full checks, which read all the data, and the back index
	// against the main index). A slice that fails is logged naming it,
	// counted in SlicesRebuilt and rebuilt from zero, never served.
	// Default VerifyNone.
	VerifyOnOpen string
	// STMode is ModeLocal or ModeCoordinator. Default ModeLocal.
	STMode string
	// STOnDemand, in local mode, makes a scan waiting for a snapshot
	// (request_plus, at_plus) promote a stability timestamp as soon as the
	// aligned high-watermark covers the scan's vector, instead of at the
	// next SnapshotInterval tick; the timer still paces the rest. It
	// trades more, smaller flush rounds for a wait close to the stream's
	// own delay. Default false. Coordinator mode refuses it: there the
	// coordinator chooses every stability timestamp.
	STOnDemand bool
	// KVSeqnos returns the bucket's current seqnos, for request_plus
	// scans and the docs_pending stat. nil: request_plus scans fail.
	KVSeqnos func() *upr.TsVbuuid
	// Clock returns the nanoseconds the source stamps EmitNanos with, for
	// index lag. nil: no index lag is recorded.
	Clock func() int64
	// LagSampleEvery records the index lag of one flushed mutation in this
	// many. Default 16.
	LagSampleEvery int
	// ScanTimeout bounds how long a scan waits for a covering snapshot when
	// the request sets no Timeout. Default 2 min.
	ScanTimeout time.Duration
	// Recorder receives operation durations. nil records nothing.
	Recorder Recorder
	// Logger receives the indexer's log lines. Default: discards them.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults and returns c.
func (c *Config) EnsureDefaults() *Config {
	if c.NumVbuckets == 0 {
		c.NumVbuckets = 1024
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 200 * time.Millisecond
	}
	if c.PersistInterval == 0 {
		c.PersistInterval = 5 * time.Second
	}
	if c.MaxRollbacks == 0 {
		c.MaxRollbacks = 5
	}
	if c.QueueSize == 0 {
		c.QueueSize = 256 << 10
	}
	if c.FlushBatchSize == 0 {
		c.FlushBatchSize = 10000
	}
	if c.STMode == "" {
		c.STMode = ModeLocal
	}
	if c.RollbackQueues == "" {
		c.RollbackQueues = RollbackQueuesDiscard
	}
	if c.VerifyOnOpen == "" {
		c.VerifyOnOpen = VerifyNone
	}
	if c.LagSampleEvery == 0 {
		c.LagSampleEvery = 16
	}
	if c.ScanTimeout == 0 {
		c.ScanTimeout = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.EngineOptions.EnsureDefaults()
	return c
}

// Validate reports the first missing or out-of-range field. It expects
// EnsureDefaults to have run.
func (c *Config) Validate() error {
	switch {
	case c.Engine.Open == nil:
		return errors.New("indexer: no engine")
	case c.Dir == "":
		return errors.New("indexer: no directory for the slices")
	case c.NumVbuckets < 1 || c.NumVbuckets > 1<<16:
		return fmt.Errorf("indexer: %d vbuckets is out of range [1,65536]", c.NumVbuckets)
	case c.SnapshotInterval < MinSnapshotInterval:
		return fmt.Errorf("indexer: snapshot interval %v is below the minimum %v", c.SnapshotInterval, MinSnapshotInterval)
	case c.MaxRollbacks < 1:
		return fmt.Errorf("indexer: max rollbacks %d must be at least 1", c.MaxRollbacks)
	case c.QueueSize < 1:
		return fmt.Errorf("indexer: queue size %d must be at least 1", c.QueueSize)
	case c.FlushBatchSize < 1:
		return fmt.Errorf("indexer: flush batch size %d must be at least 1", c.FlushBatchSize)
	case c.STMode != ModeLocal && c.STMode != ModeCoordinator:
		return fmt.Errorf("indexer: ST mode %q is not %q or %q", c.STMode, ModeLocal, ModeCoordinator)
	case c.RollbackQueues != RollbackQueuesDiscard && c.RollbackQueues != RollbackQueuesKeep:
		return fmt.Errorf("indexer: rollback queues %q is not %q or %q", c.RollbackQueues, RollbackQueuesDiscard, RollbackQueuesKeep)
	case c.STOnDemand && c.STMode != ModeLocal:
		return fmt.Errorf("indexer: ST on demand needs ST mode %q, not %q", ModeLocal, c.STMode)
	case c.VerifyOnOpen != VerifyNone && c.VerifyOnOpen != VerifyQuick && c.VerifyOnOpen != VerifyFull:
		return fmt.Errorf("indexer: verify on open %q is not %q, %q or %q", c.VerifyOnOpen, VerifyNone, VerifyQuick, VerifyFull)
	case c.LagSampleEvery < 1:
		return fmt.Errorf("indexer: lag sample rate %d must be at least 1", c.LagSampleEvery)
	case c.BackIndexCacheBytes < 0:
		return fmt.Errorf("indexer: back-index cache size %d is negative", c.BackIndexCacheBytes)
	case c.ScanTimeout < 0:
		return fmt.Errorf("indexer: scan timeout %v is negative", c.ScanTimeout)
	}
	if err := c.EngineOptions.Validate(); err != nil {
		return fmt.Errorf("indexer: engine options: %w", err)
	}
	return nil
}

// String is a stable one-line rendering of the settings that shape a run's
// results (not the callbacks).
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "engine=%s vbuckets=%d snapshot_interval=%v persist_interval=%v max_rollbacks=%d",
		c.Engine.Name, c.NumVbuckets, c.SnapshotInterval, c.PersistInterval, c.MaxRollbacks)
	fmt.Fprintf(&b, " queue_size=%d flush_batch_size=%d back_index_cache=%d durability=%s st_mode=%s st_on_demand=%t verify_on_open=%s lag_sample_every=%d scan_timeout=%v rollback_queues=%s",
		c.QueueSize, c.FlushBatchSize, c.BackIndexCacheBytes, c.Durability, c.STMode, c.STOnDemand, c.VerifyOnOpen, c.LagSampleEvery, c.ScanTimeout, c.RollbackQueues)
	fmt.Fprintf(&b, " engine_options={%s}", c.EngineOptions)
	return b.String()
}
