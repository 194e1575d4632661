package pebble_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines/enginetest"
	"github.com/idxbench/idxbench/engines/pebble"
)

func TestVerify(t *testing.T) {
	enginetest.RunVerify(t, enginetest.Factory{Name: pebble.Name, Open: open, Durable: true})
}
