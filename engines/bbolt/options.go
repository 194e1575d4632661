package bbolt

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/idxbench/idxbench/engines"
)

// config is the effective bbolt configuration an engines.Options leads to.
type config struct {
	logger          *slog.Logger
	initialMmapSize int
	pageSize        int
	noFreelistSync  bool
	freelist        bolt.FreelistType
}

const defaultInitialMmapSize = 8 << 30

func parseOptions(opts engines.Options) (config, error) {
	if err := opts.Validate(); err != nil {
		return config{}, err
	}
	c := config{
		logger:          opts.Logger,
		initialMmapSize: defaultInitialMmapSize,
		pageSize:        os.Getpagesize(),
		freelist:        bolt.FreelistArrayType,
	}
	keys := make([]string, 0, len(opts.Extra))
	for k := range opts.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := opts.Extra[k]
		var err error
		switch k {
		case "initial_mmap_size":
			var n int64
			n, err = parseBytes(v)
			if err == nil && n < 0 {
				err = fmt.Errorf("negative")
			}
			c.initialMmapSize = int(n)
		case "page_size":
			var n int64
			n, err = parseBytes(v)
			if err == nil && (n < 1024 || n > 1<<16 || n&(n-1) != 0) {
				err = fmt.Errorf("want a power of two between 1KiB and 64KiB")
			}
			c.pageSize = int(n)
		case "no_freelist_sync":
			c.noFreelistSync, err = strconv.ParseBool(v)
		case "freelist":
			switch v {
			case "array":
				c.freelist = bolt.FreelistArrayType
			case "hashmap":
				c.freelist = bolt.FreelistMapType
			default:
				err = fmt.Errorf("want array or hashmap")
			}
		default:
			return config{}, fmt.Errorf("unknown bbolt option %q (known: freelist, initial_mmap_size, no_freelist_sync, page_size)", k)
		}
		if err != nil {
			return config{}, fmt.Errorf("bbolt option %s=%q: %w", k, v, err)
		}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// parseBytes reads an integer with an optional KiB, MiB or GiB suffix.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if t, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = t, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a byte count (an integer with optional KiB, MiB, GiB)")
	}
	return n * mult, nil
}

func (c config) boltOptions() *bolt.Options {
	return &bolt.Options{
		// Another process holding the file's lock is reported, not waited
		// for (bbolt waits forever by default).
		Timeout:         lockTimeout,
		NoGrowSync:      true,
		NoFreelistSync:  c.noFreelistSync,
		FreelistType:    c.freelist,
		InitialMmapSize: c.initialMmapSize,
		PageSize:        c.pageSize,
		NoSync:          true,
	}
}

func (c config) String() string {
	fl := "array"
	if c.freelist == bolt.FreelistMapType {
		fl = "hashmap"
	}
	return fmt.Sprintf("bbolt %s: page_size=%d initial_mmap_size=%d no_freelist_sync=%t freelist=%s no_grow_sync=true; cache, memtable, compression: not applicable (OS page cache via mmap, no compression)",
		boltVersion(), c.pageSize, c.initialMmapSize, c.noFreelistSync, fl)
}

// boltVersion is the linked bbolt module's version, from the build info.
func boltVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "go.etcd.io/bbolt" {
				return m.Version
			}
		}
	}
	return "(unknown version)"
}

// Describe renders the effective settings for opts, or the error that
// makes them invalid.
func Describe(opts engines.Options) string {
	c, err := parseOptions(opts)
	if err != nil {
		return "bbolt: invalid options: " + err.Error()
	}
	return c.String()
}
