package engines

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
)

// Keyspace names one of the three keyspaces an index slice keeps in a Store.
// Engines keep them apart (a key prefix, a bucket, a column family); a key in
// one keyspace never collides with the same bytes in another.
type Keyspace uint8

const (
	// Main holds index entries: encodedKey ++ docid → empty value.
	Main Keyspace = iota
	// Back holds the back index: docid → encodedKey.
	Back
	// Meta holds the slice's own bookkeeping: the timestamp vector the
	// contents correspond to, the snapshot list.
	Meta
	// NumKeyspaces is the number of keyspaces.
	NumKeyspaces
)

func (k Keyspace) String() string {
	switch k {
	case Main:
		return "main"
	case Back:
		return "back"
	case Meta:
		return "meta"
	}
	return fmt.Sprintf("keyspace(%d)", uint8(k))
}

// Durability says whether Apply must make a batch durable before returning.
type Durability uint8

const (
	// NoSync leaves the batch in the engine's write-ahead log or page cache;
	// a crash may lose it (but never part of it).
	NoSync Durability = iota
	// Sync makes the batch durable (fsync or the engine's equivalent) before
	// Apply returns.
	Sync
)

func (d Durability) String() string {
	if d == Sync {
		return "sync"
	}
	return "nosync"
}

// Sentinel errors. Adapters wrap them with the path or id they concern, so
// callers test with errors.Is.
var (
	// ErrUnknownEngine is returned by Lookup for a name nobody registered.
	ErrUnknownEngine = errors.New("unknown engine")
	// ErrForeignDir means the directory holds files the engine did not
	// create (another engine's store, or unrelated files). Nothing is touched.
	ErrForeignDir = errors.New("directory holds files that are not this engine's store")
	// ErrCorrupt means the store's files exist but cannot be read as a
	// store, or do not hold what was written: damage, as opposed to a
	// transient failure (a full disk, permissions, a lock another process
	// holds). A caller may rebuild a corrupt store from scratch; it must
	// not do so for other errors.
	ErrCorrupt = errors.New("store is corrupt")
	// ErrDiskFull means a write was refused or failed because the store's
	// filesystem has no room (left) for it. Such errors also wrap
	// syscall.ENOSPC. What was applied before stays; the store can be
	// closed, and written again once there is room.
	ErrDiskFull = errors.New("disk full")
	// ErrFailed means the engine failed in a way the adapter could only
	// contain (a panic recovered at the adapter boundary, an error the
	// engine treats as fatal): the store refuses every later call with the
	// same error, without touching the engine again. Close it and reopen.
	ErrFailed = errors.New("store failed")
	// ErrNoRecoveryPoint means a recovery point id is not known to the store.
	ErrNoRecoveryPoint = errors.New("no such recovery point")
	// ErrClosed is returned by operations on a closed store or view.
	ErrClosed = errors.New("store is closed")
)

// Options are the settings every engine understands. The zero value works:
// EnsureDefaults fills in each field's documented default.
type Options struct {
	// CacheBytes is the block/page cache size. Default 64 MiB.
	CacheBytes int64
	// MemtableBytes is the in-memory write buffer size. Default 64 MiB.
	MemtableBytes int64
	// Compression is "none", "snappy" or "zstd". Default "snappy".
	Compression string
	// Extra holds engine-specific settings by name; each engine documents
	// the names it accepts and rejects others in Validate.
	Extra map[string]string
	// Logger receives the engine's own log lines. Default: discards them.
	Logger *slog.Logger
	// DiskSpace, when set, pools the free-space reserves of the stores
	// opened with it (see SpaceGuard): each refuses writes once the free
	// space on its filesystem falls below the sum of the reserves of the
	// pooled stores there, since they fill it together. Default nil: each
	// store keeps its own reserve only. Not a setting: String leaves it
	// out.
	DiskSpace *DiskSpace
}

// EnsureDefaults fills zero fields with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.CacheBytes == 0 {
		o.CacheBytes = 64 << 20
	}
	if o.MemtableBytes == 0 {
		o.MemtableBytes = 64 << 20
	}
	if o.Compression == "" {
		o.Compression = "snappy"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports the first out-of-range field.
func (o *Options) Validate() error {
	if o.CacheBytes < 0 {
		return fmt.Errorf("cache size %d is negative", o.CacheBytes)
	}
	if o.MemtableBytes < 0 {
		return fmt.Errorf("memtable size %d is negative", o.MemtableBytes)
	}
	switch o.Compression {
	case "", "none", "snappy", "zstd":
	default:
		return fmt.Errorf("compression %q is not one of none, snappy, zstd", o.Compression)
	}
	return nil
}

// String is a stable one-line rendering that goes into every results file.
func (o Options) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cache=%d memtable=%d compression=%s", o.CacheBytes, o.MemtableBytes, o.Compression)
	keys := make([]string, 0, len(o.Extra))
	for k := range o.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, o.Extra[k])
	}
	return b.String()
}

// Engine is a registered storage engine.
type Engine struct {
	// Name is what users type (--engine NAME).
	Name string
	// Doc is one line saying what the engine is and how it implements
	// recovery points.
	Doc string
	// Real is false for engines that keep nothing on disk (the in-memory
	// reference); `idxbench run` by default runs every real engine.
	Real bool
	// Open opens (creating if needed) the store in dir. It fails with an
	// error wrapping ErrForeignDir when dir holds files that are not this
	// engine's store, and never deletes anything it did not create.
	Open func(dir string, opts Options) (Store, error)
	// Describe renders the effective settings opts lead to, engine-specific
	// defaults included, as a stable one-line string.
	Describe func(opts Options) string
}

var registry = struct {
	sync.Mutex
	m map[string]Engine
}{m: map[string]Engine{}}

// WrapStores returns e with every store it opens passed through wrap (given
// the store's directory) — how a harness records, slows or watches an
// engine's stores without an adapter knowing.
func WrapStores(e Engine, wrap func(dir string, s Store) Store) Engine {
	open := e.Open
	e.Open = func(dir string, o Options) (Store, error) {
		s, err := open(dir, o)
		if err != nil {
			return nil, err
		}
		return wrap(dir, s), nil
	}
	return e
}

// Register makes an engine available by name. It panics on a duplicate name,
// as two adapters claiming one name is a programming error.
func Register(e Engine) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[e.Name]; dup {
		panic(fmt.Sprintf("engines: engine %q registered twice", e.Name))
	}
	registry.m[e.Name] = e
}

// Lookup returns the engine registered under name.
func Lookup(name string) (Engine, error) {
	registry.Lock()
	defer registry.Unlock()
	e, ok := registry.m[name]
	if !ok {
		return Engine{}, fmt.Errorf("%w %q (registered: %s)", ErrUnknownEngine, name, strings.Join(namesLocked(), ", "))
	}
	return e, nil
}

// Names lists registered engine names in sorted order.
func Names() []string {
	registry.Lock()
	defer registry.Unlock()
	return namesLocked()
}

func namesLocked() []string {
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
