package pebble

import (
	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/idxbench/idxbench/engines"
)

// DB exposes the live database to the raw-engine benchmark.
func DB(s *Store) *pebbledb.DB { return s.db }

// OpenWithFS opens the store with pebble writing through wrap(the OS
// filesystem), for tests that inject errors.
func OpenWithFS(dir string, opts engines.Options, wrap func(vfs.FS) vfs.FS) (*Store, error) {
	set, err := newSettings(opts)
	if err != nil {
		return nil, err
	}
	set.wrapFS = wrap
	return open(dir, set)
}
