package badger_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines/badger"
	"github.com/idxbench/idxbench/engines/enginetest"
)

func TestCorruption(t *testing.T) {
	enginetest.RunCorruption(t, enginetest.Factory{Name: badger.Name, Open: open, Durable: true})
}
