package engines_test

import (
	"testing"

	"github.com/idxbench/idxbench/engines"
)

func TestBatchCloneSharesNothing(t *testing.T) {
	var b engines.Batch
	b.Set(engines.Main, []byte("a"), []byte("1"))
	b.Delete(engines.Back, []byte("b"))
	c := b.Clone()
	b.Reset()
	b.Set(engines.Main, []byte("x"), []byte("9"))
	if c.Len() != 2 || string(c.Op(0).Key) != "a" || string(c.Op(0).Value) != "1" ||
		c.Op(1).Kind != engines.OpDelete || string(c.Op(1).Key) != "b" {
		t.Fatalf("clone changed with its original: %+v %+v", c.Op(0), c.Op(1))
	}
}
