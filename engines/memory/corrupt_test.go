package memory_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/enginetest"
	"github.com/idxbench/idxbench/engines/memory"
)

// TestCorruption runs the corruption suite, which skips an engine that
// keeps nothing on disk: the memory engine's only file is its marker.
func TestCorruption(t *testing.T) {
	enginetest.RunCorruption(t, enginetest.Factory{
		Name:    memory.Name,
		Open:    func(dir string) (engines.Store, error) { return memory.Open(dir, engines.Options{}) },
		Durable: false,
	})
}
