package bbolt_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines/bbolt"
	"github.com/idxbench/idxbench/engines/enginetest"
)

func TestVerify(t *testing.T) {
	enginetest.RunVerify(t, enginetest.Factory{Name: bbolt.Name, Open: open, Durable: true})
}
