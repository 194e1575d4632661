package pebble_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines/enginetest"
	"github.com/idxbench/idxbench/engines/pebble"
)

func TestCorruption(t *testing.T) {
	enginetest.RunCorruption(t, enginetest.Factory{Name: pebble.Name, Open: open, Durable: true})
}
