package badger

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	badgerdb "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/idxbench/idxbench/engines"
)

// Engine-specific settings accepted in engines.Options.Extra.
const (
	// ExtraIndexCacheBytes bounds the cache of table indexes and bloom
	// filters. Default 64 MiB. Badger's own default (0) keeps every index
	// and filter on the Go heap, which is what makes a default badger's
	// resident memory approach 1 GB.
	ExtraIndexCacheBytes = "index_cache_bytes"
	// ExtraNumMemtables is how many memtables (active plus waiting to be
	// flushed) badger keeps before stalling writes. Default 5 (badger's).
	ExtraNumMemtables = "num_memtables"
	// ExtraDiskReserveBytes is the free space the store keeps on its
	// filesystem for what badger writes through memory mappings (memtable
	// logs, value logs, new tables), where a full disk is a SIGBUS rather
	// than an error; the LSM tree's size is added for compactions (see
	// Store.updateReserve). Writes that would dip into it fail with
	// engines.ErrDiskFull. Default (num_memtables + 2) memtables + 16 MiB.
	ExtraDiskReserveBytes = "disk_reserve_bytes"
	// ExtraVerifyTables, when true (the default), has Open read every table
	// and check every block's checksum before badger opens them, when the
	// store has no seal (after a crash; a seal's checksums cover the
	// tables otherwise); see checkTables. false opens faster after a
	// crash, and leaves a damaged table to badger, which may exit the
	// process or drop the table.
	ExtraVerifyTables = "verify_tables"
)

// settings are the effective badger settings an engines.Options leads to.
type settings struct {
	cacheBytes       int64
	memtableBytes    int64
	compression      string
	indexCacheBytes  int64
	numMemtables     int
	diskReserveBytes int64 // the base; see Store.updateReserve
	diskSpace        *engines.DiskSpace
	verifyTables     bool
	logger           *slog.Logger
}

func newSettings(o engines.Options) (settings, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return settings{}, fmt.Errorf("badger options: %w", err)
	}
	s := settings{
		cacheBytes:      o.CacheBytes,
		memtableBytes:   o.MemtableBytes,
		compression:     o.Compression,
		indexCacheBytes: 64 << 20,
		numMemtables:    5,
		verifyTables:    true,
		diskSpace:       o.DiskSpace,
		logger:          o.Logger,
	}
	reserve := int64(-1)
	for k, v := range o.Extra {
		n, err := strconv.ParseInt(v, 10, 64)
		switch k {
		case ExtraDiskReserveBytes:
			if err != nil || n < 0 {
				return settings{}, fmt.Errorf("badger options: %s=%q is not a byte count", k, v)
			}
			reserve = n
		case ExtraVerifyTables:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return settings{}, fmt.Errorf("badger options: %s=%q is not true or false", k, v)
			}
			s.verifyTables = b
		case ExtraIndexCacheBytes:
			if err != nil || n < 1 {
				return settings{}, fmt.Errorf("badger options: %s=%q is not a positive integer", k, v)
			}
			s.indexCacheBytes = n
		case ExtraNumMemtables:
			if err != nil || n < 1 || n > 64 {
				return settings{}, fmt.Errorf("badger options: %s=%q is not an integer in [1, 64]", k, v)
			}
			s.numMemtables = int(n)
		default:
			return settings{}, fmt.Errorf("badger options: unknown setting %q (known: %s, %s, %s, %s)",
				k, ExtraIndexCacheBytes, ExtraNumMemtables, ExtraDiskReserveBytes, ExtraVerifyTables)
		}
	}
	s.diskReserveBytes = reserve
	if reserve < 0 {
		s.diskReserveBytes = int64(s.numMemtables+2)*s.memtableBytes + 16<<20
	}
	return s, nil
}

// String renders the effective settings in a stable order. txn_limit is
// the largest atomic batch, in entries, the memtable size allows.
func (s settings) String() string {
	return fmt.Sprintf("cache=%d memtable=%d compression=%s index_cache=%d num_memtables=%d value_threshold=%d mode=managed detect_conflicts=false txn_limit_bytes=%d disk_reserve=%d+lsm verify_tables=%t",
		s.cacheBytes, s.memtableBytes, s.compression, s.indexCacheBytes, s.numMemtables, s.valueThreshold(), s.memtableBytes*15/100,
		s.diskReserveBytes, s.verifyTables)
}

// valueThreshold is the largest value kept in the LSM tree rather than the
// value log. Index values are a few dozen bytes; badger requires the
// threshold below the transaction limit, which a small memtable makes
// small.
func (s settings) valueThreshold() int64 { return min(1<<20, s.memtableBytes*15/100/4) }

// badgerOptions builds the options for the database in dir.
func (s settings) badgerOptions(dir string) badgerdb.Options {
	c := options.Snappy
	switch s.compression {
	case "none":
		c = options.None
	case "zstd":
		c = options.ZSTD
	}
	return badgerdb.DefaultOptions(dir).
		WithMemTableSize(s.memtableBytes).
		WithNumMemtables(s.numMemtables).
		WithBlockCacheSize(s.cacheBytes).
		WithIndexCacheSize(s.indexCacheBytes).
		WithCompression(c).
		WithValueThreshold(s.valueThreshold()).
		// Each Apply is one transaction from the one writer: conflict
		// detection would only cost time.
		WithDetectConflicts(false).
		// Durability is per Apply (db.Sync after a Sync batch), not per DB.
		WithSyncWrites(false).
		WithLogger(quietLogger{s.logger})
}

// quietLogger routes badger's log lines to a slog.Logger: info and debug at
// debug level (badger reports every compaction), warnings and errors at
// their own levels.
type quietLogger struct{ l *slog.Logger }

func (q quietLogger) Errorf(f string, a ...any) { q.l.Error(fmt.Sprintf(f, a...), "engine", "badger") }
func (q quietLogger) Warningf(f string, a ...any) {
	q.l.Warn(fmt.Sprintf(f, a...), "engine", "badger")
}
func (q quietLogger) Infof(f string, a ...any)  { q.debug(f, a) }
func (q quietLogger) Debugf(f string, a ...any) { q.debug(f, a) }

// debug formats only when the handler wants debug lines: badger logs every
// compaction.
func (q quietLogger) debug(f string, a []any) {
	if q.l.Enabled(context.Background(), slog.LevelDebug) {
		q.l.Debug(fmt.Sprintf(f, a...), "engine", "badger")
	}
}
