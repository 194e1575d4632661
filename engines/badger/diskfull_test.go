package badger_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/badger"
	"github.com/idxbench/idxbench/engines/enginetest"
)

// TestDiskFull fills a small tmpfs through the store (root only).
func TestDiskFull(t *testing.T) {
	opts := engines.Options{CacheBytes: 1 << 20, MemtableBytes: 1 << 20, Extra: map[string]string{badger.ExtraIndexCacheBytes: "1048576", badger.ExtraNumMemtables: "2", badger.ExtraDiskReserveBytes: "6291456"}}
	enginetest.RunDiskFull(t, enginetest.FromRegistry(badger.Name, opts, true), 48)
}
