package bbolt_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines/enginetest"
	"github.com/idxbench/idxbench/engines/bbolt"
)

func TestVerify(t *testing.T) {
	enginetest.RunVerify(t, enginetest.Factory{Name: bbolt.Name, Open: open, Durable: true})
}
