package indexer

// The disk engines the engine-parameterised tests also run on. Restrict
// with -engines=memory (or IDXBENCH_ENGINES) for a quick run.
import (
	_ "github.com/idxbench/idxbench/engines/bbolt"
	_ "github.com/idxbench/idxbench/engines/pebble"
)
