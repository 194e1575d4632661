package harness

import (
	"strings"
	"testing"

	"github.com/idxbench/idxbench/workload/defn"
)

func TestDiffEntries(t *testing.T) {
	want := []defn.Entry{
		{Key: []any{"a"}, DocID: "d1"},
		{Key: []any{"b", defn.Missing}, DocID: "d2"},
		{Key: []any{1.5}, DocID: "d3"},
	}
	if lines, n := diffEntries(want, want, 10); n != 0 {
		t.Fatalf("identical sets differ: %v", lines)
	}
	got := []defn.Entry{
		{Key: []any{1.5}, DocID: "d3"},
		{Key: []any{"b", nil}, DocID: "d2"},
		{Key: []any{"z"}, DocID: "d9"},
	}
	lines, n := diffEntries(got, want, 10)
	if n != 3 {
		t.Fatalf("got %d differences, want 3: %v", n, lines)
	}
	joined := strings.Join(lines, "\n")
	for _, s := range []string{"missing d1", `wrong key d2: index has ["b",null], oracle ["b",MISSING]`, "extra d9"} {
		if !strings.Contains(joined, s) {
			t.Errorf("differences lack %q:\n%s", s, joined)
		}
	}
	if lines, n := diffEntries(got, want, 1); n != 3 || len(lines) != 1 {
		t.Fatalf("max not honoured: %d lines, n=%d", len(lines), n)
	}
}
