package indexer

// Every registered engine: the engine-parameterised tests run on each.
// Restrict with -engines=memory,pebble (or IDXBENCH_ENGINES) for a quick
// run.
import _ "github.com/idxbench/idxbench/engines/all"
