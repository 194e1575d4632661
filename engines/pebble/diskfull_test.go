package pebble_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/enginetest"
	"github.com/idxbench/idxbench/engines/pebble"
)

// TestDiskFull fills a small tmpfs through the store (root only).
func TestDiskFull(t *testing.T) {
	opts := engines.Options{CacheBytes: 1 << 20, MemtableBytes: 1 << 20, Extra: map[string]string{pebble.ExtraDiskReserveBytes: "4194304"}}
	enginetest.RunDiskFull(t, enginetest.FromRegistry(pebble.Name, opts, true), 16)
}
