package indexer

import (
	"bytes"
	"testing"
)

// FuzzSplitMainKey: splitting never panics, and what splits re-joins to the
// same bytes.
func FuzzSplitMainKey(f *testing.F) {
	f.Add([]byte{0x06, 'a', 0x00, 0x01, 'd', 0x00, 0x01})
	f.Add([]byte{0x00, 0x00})
	f.Add([]byte{0xFF})
	f.Fuzz(func(t *testing.T, k []byte) {
		ek, doc, err := splitMainKey(k)
		if err != nil {
			return
		}
		if got := appendMainKey(nil, ek, doc); !bytes.Equal(got, k) {
			t.Fatalf("split(%x) = %x, %x; joined again %x", k, ek, doc, got)
		}
	})
}
