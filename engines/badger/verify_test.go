package badger_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines/badger"
	"github.com/idxbench/idxbench/engines/enginetest"
)

func TestVerify(t *testing.T) {
	enginetest.RunVerify(t, enginetest.Factory{Name: badger.Name, Open: open, Durable: true})
}
