// Package all links every engine adapter into a binary: importing it for
// its side effects registers memory, bbolt, pebble and badger with the
// engines registry.
package all

import (
	_ "github.com/idxbench/idxbench/engines/badger"
	_ "github.com/idxbench/idxbench/engines/bbolt"
	_ "github.com/idxbench/idxbench/engines/memory"
	_ "github.com/idxbench/idxbench/engines/pebble"
)
