package badger_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines/enginetest"
	"github.com/idxbench/idxbench/engines/badger"
)

func TestVerify(t *testing.T) {
	enginetest.RunVerify(t, enginetest.Factory{Name: badger.Name, Open: open, Durable: true})
}
