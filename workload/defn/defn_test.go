package defn

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseWhere(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Where
	}{
		{"", nil},
		{"active = true", Where{{"active", "=", true}}},
		{"age>=18 AND city != 'Oslo'", Where{{"age", ">=", 18.0}, {"city", "!=", "Oslo"}}},
		{`a.b < "x y" and c IS MISSING AND d is not missing`, Where{{"a.b", "<", "x y"}, {"c", "missing", nil}, {"d", "exists", nil}}},
		{"score = null", Where{{"score", "=", nil}}},
		{"n <= -1.5e3", Where{{"n", "<=", -1500.0}}},
	} {
		got, err := ParseWhere(tc.in)
		if err != nil {
			t.Errorf("ParseWhere(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseWhere(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
		// String prints a filter that parses back to the same.
		again, err := ParseWhere(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseWhere(%q).String() = %q re-parses to %#v, %v", tc.in, got.String(), again, err)
		}
	}
	for _, in := range []string{"a", "a =", "a = 1 b = 2", "a ! 1", "a = 'x", "a.. = 1", "a IS", "a IS NOT", "a = x", "a == 1"} {
		if _, err := ParseWhere(in); err == nil {
			t.Errorf("ParseWhere(%q): no error", in)
		}
	}
}

func FuzzParseWhere(f *testing.F) {
	for _, s := range []string{"", "a = 1", "a.b != 'x' AND c IS MISSING", `x >= "q" and y is not missing`, "z = null"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWhere(s)
		if err != nil {
			return
		}
		for _, c := range w {
			if !ValidPath(c.Path) {
				t.Fatalf("accepted path %q", c.Path)
			}
		}
		// Printing and re-parsing is stable, unless a string literal holds
		// a quote, a backslash or a character strconv.Quote escapes: the
		// grammar has no escapes, but String quotes with Go syntax.
		for _, c := range w {
			if s, ok := c.Value.(string); ok && strings.IndexFunc(s, func(r rune) bool {
				return r < ' ' || r > '~' || r == '"' || r == '\'' || r == '\\'
			}) >= 0 {
				return
			}
		}
		again, err := ParseWhere(w.String())
		if err != nil || !reflect.DeepEqual(again, w) {
			t.Fatalf("%q → %q → %#v, %v", s, w.String(), again, err)
		}
	})
}

func TestNumPartitions(t *testing.T) {
	for p, want := range map[int]int{-1: 1, 0: 1, 1: 1, 8: 8} {
		d := IndexDefn{Partitions: p}
		if got := d.NumPartitions(); got != want {
			t.Errorf("NumPartitions(%d) = %d, want %d", p, got, want)
		}
	}
}
