package memory_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/enginetest"
	"github.com/idxbench/idxbench/engines/memory"
)

func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Factory{
		Name:    memory.Name,
		Open:    func(dir string) (engines.Store, error) { return memory.Open(dir, engines.Options{}) },
		Durable: false,
	})
}

func TestRejectsExtraOptions(t *testing.T) {
	_, err := memory.Open(t.TempDir(), engines.Options{Extra: map[string]string{"bogus": "1"}})
	if err == nil {
		t.Fatal("unknown option accepted")
	}
}
