package pebble

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/idxbench/idxbench/engines"
)

// Engine-specific settings accepted in engines.Options.Extra.
const (
	// ExtraL0CompactionThreshold is the number of L0 read-amplification
	// sublevels that triggers an L0 compaction. Default 2 (pebble: 4).
	ExtraL0CompactionThreshold = "l0_compaction_threshold"
	// ExtraL0StopWritesThreshold is the L0 read amplification at which
	// writes stop. Default 1000 (pebble: 12), so a benchmark measures
	// compaction debt instead of stalls.
	ExtraL0StopWritesThreshold = "l0_stop_writes_threshold"
	// ExtraDiskReserveBytes is the free space the store keeps on its
	// filesystem for its WAL and MANIFEST (see faults.go): writes that
	// would dip into it fail with engines.ErrDiskFull. Default twice the
	// WAL preallocation (1.1 × memtable) plus 16 MiB.
	ExtraDiskReserveBytes = "disk_reserve_bytes"
)

// settings are the effective pebble settings an engines.Options leads to.
// They are the benchmark settings pebble's own cmd/pebble uses, not pebble's
// library defaults (which favour a small footprint over throughput).
type settings struct {
	cacheBytes            int64
	memtableBytes         int64
	compression           string
	l0CompactionThreshold int
	l0StopWritesThreshold int
	diskReserveBytes      int64
	diskSpace             *engines.DiskSpace
	logger                *slog.Logger
	// wrapFS, set by tests, wraps the OS filesystem pebble writes through
	// (to inject errors).
	wrapFS func(vfs.FS) vfs.FS
}

// newSettings applies defaults to a copy of o, validates it and resolves the
// engine-specific extras.
func newSettings(o engines.Options) (settings, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return settings{}, fmt.Errorf("pebble options: %w", err)
	}
	s := settings{
		cacheBytes:            o.CacheBytes,
		memtableBytes:         o.MemtableBytes,
		compression:           o.Compression,
		l0CompactionThreshold: 2,
		l0StopWritesThreshold: 1000,
		diskSpace:             o.DiskSpace,
		logger:                o.Logger,
	}
	if s.memtableBytes >= 4<<30 {
		return settings{}, fmt.Errorf("pebble options: memtable size %d is not below 4 GiB", s.memtableBytes)
	}
	s.diskReserveBytes = 2*(s.memtableBytes+s.memtableBytes/10) + 16<<20
	for k, v := range o.Extra {
		if k == ExtraDiskReserveBytes {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return settings{}, fmt.Errorf("pebble options: %s=%q is not a byte count", k, v)
			}
			s.diskReserveBytes = n
			continue
		}
		var dst *int
		switch k {
		case ExtraL0CompactionThreshold:
			dst = &s.l0CompactionThreshold
		case ExtraL0StopWritesThreshold:
			dst = &s.l0StopWritesThreshold
		default:
			return settings{}, fmt.Errorf("pebble options: unknown setting %q (known: %s, %s, %s)",
				k, ExtraL0CompactionThreshold, ExtraL0StopWritesThreshold, ExtraDiskReserveBytes)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return settings{}, fmt.Errorf("pebble options: %s=%q is not a positive integer", k, v)
		}
		*dst = n
	}
	return s, nil
}

// String renders the effective settings, pebble-specific ones included, in
// a stable order.
func (s settings) String() string {
	return fmt.Sprintf("cache=%d memtable=%d compression=%s format=%d l0_compaction_threshold=%d l0_stop_writes_threshold=%d memtable_stop_writes=4 lbase_max_bytes=%d bloom_bits=10 disk_reserve=%d",
		s.cacheBytes, s.memtableBytes, s.compression, pebbledb.FormatNewest,
		s.l0CompactionThreshold, s.l0StopWritesThreshold, lbaseMaxBytes, s.diskReserveBytes)
}

const lbaseMaxBytes = 64 << 20

func (s settings) osFS() vfs.FS {
	if s.wrapFS != nil {
		return s.wrapFS(vfs.Default)
	}
	return vfs.Default
}

// pebbleOptions builds the options pebble.Open gets for the database in
// live, writing through guardFS and reporting to f's event listener. Each
// call returns fresh options: pebble keeps and mutates what it is given.
func (s settings) pebbleOptions(f *faults, live string) *pebbledb.Options {
	o := &pebbledb.Options{
		CacheSize:                   s.cacheBytes,
		MemTableSize:                uint64(s.memtableBytes),
		MemTableStopWritesThreshold: 4,
		FormatMajorVersion:          pebbledb.FormatNewest,
		L0CompactionThreshold:       s.l0CompactionThreshold,
		L0StopWritesThreshold:       s.l0StopWritesThreshold,
		LBaseMaxBytes:               lbaseMaxBytes,
		MaxOpenFiles:                16384,
		Logger:                      quietLogger{s.logger},
		// The plain OS filesystem behind the space guard. Left nil,
		// pebble wraps it in a disk health checker whose ticker
		// goroutines outlive a failed Open.
		FS:            vfs.OnDiskFull(guardFS{FS: s.osFS(), f: f, live: filepath.Clean(live)}, f.onDiskFull),
		EventListener: f.listener(s),
	}
	var profile *sstable.CompressionProfile
	switch s.compression {
	case "none":
		profile = sstable.NoCompression
	case "zstd":
		profile = sstable.ZstdCompression
	default:
		profile = sstable.SnappyCompression
	}
	for i := range o.Levels {
		l := &o.Levels[i]
		l.Compression = func() *sstable.CompressionProfile { return profile }
		// The back keyspace is read by point lookups on every upsert; a
		// bloom filter spares most of the per-level seeks.
		l.FilterPolicy = bloom.FilterPolicy(10)
		l.FilterType = pebbledb.TableFilter
	}
	o.EnsureDefaults()
	return o
}

// quietLogger routes pebble's log lines to a slog.Logger: informational lines
// at debug level (pebble is chatty about flushes and compactions), errors at
// error level. Fatalf means pebble met an error it cannot continue from; it
// logs and panics rather than exiting the whole benchmark process, and the
// adapter recovers the panic when it happens on the caller's goroutine
// (engines.Failure): a failed commit is the one the space guard cannot
// rule out (an I/O error).
type quietLogger struct{ l *slog.Logger }

func (q quietLogger) Infof(format string, args ...any) {
	// Formatting every flush and compaction line costs time even when the
	// handler drops it.
	if q.l.Enabled(context.Background(), slog.LevelDebug) {
		q.l.Debug(fmt.Sprintf(format, args...), "engine", "pebble")
	}
}

func (q quietLogger) Errorf(format string, args ...any) {
	q.l.Error(fmt.Sprintf(format, args...), "engine", "pebble")
}

func (q quietLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	q.l.Error(msg, "engine", "pebble")
	panic("pebble: " + msg)
}
