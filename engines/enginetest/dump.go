package enginetest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/engines"
)

// Dump returns every entry of s, keyspace by keyspace in key order, one
// "keyspace:key=value" line each (key and value quoted), read from one view.
// Two stores hold the same contents exactly when their dumps are equal.
func Dump(t testing.TB, s engines.Store) string {
	t.Helper()
	v, err := s.NewView()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var b strings.Builder
	for ks := range engines.NumKeyspaces {
		it, err := v.NewIter(ks, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			fmt.Fprintf(&b, "%s:%q=%q\n", ks, it.Key(), it.Value())
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
