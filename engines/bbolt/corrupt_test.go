package bbolt_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines/bbolt"
	"github.com/idxbench/idxbench/engines/enginetest"
)

func TestCorruption(t *testing.T) {
	enginetest.RunCorruption(t, enginetest.Factory{Name: bbolt.Name, Open: open, Durable: true})
}
