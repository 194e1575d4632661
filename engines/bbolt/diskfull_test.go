package bbolt_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/bbolt"
	"github.com/idxbench/idxbench/engines/enginetest"
)

// TestDiskFull fills a small tmpfs through the store (root only).
func TestDiskFull(t *testing.T) {
	opts := engines.Options{}
	enginetest.RunDiskFull(t, enginetest.FromRegistry(bbolt.Name, opts, true), 8)
}
