package workload

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

const hardYAML = `
docs: 300
vbuckets: 4
value_size: {dist: fixed, mean: 64}
fields:
  extra:
    - path: mixed
      missing: 0.1
      types: {number: 1, string: 1, null: 0.2, bool: 0.2, array: 0.5, object: 0.5}
      string: {alphabet: hostile, length: {dist: uniform, min: 0, max: 6}}
      number: {min: -1e308, max: 1e308, extremes: 0.5}
      depth: 4
    - path: deep.a.b.c
      string: {alphabet: unicode, length: {dist: uniform, max: 2000}}
    - path: deep.a.n
      types: {number: 1}
      number: {min: -9223372036854775808, max: 9223372036854775807, integer: true}
    - path: deep.s
      types: {string: 1}
      string: {alphabet: small}
indexes:
  - {name: by_mixed, keys: [mixed]}
`

func TestParseExtraFields(t *testing.T) {
	s, err := ParseSpec([]byte(hardYAML))
	if err != nil {
		t.Fatal(err)
	}
	x := s.Fields.Extra
	if len(x) != 4 {
		t.Fatalf("%d extra fields, want 4", len(x))
	}
	want := DefaultFieldGen("mixed")
	want.Missing = 0.1
	want.Types = TypeMix{Number: 1, String: 1, Null: 0.2, Bool: 0.2, Array: 0.5, Object: 0.5} // an unquoted null key is the kind null
	want.String = StringGen{Alphabet: AlphabetHostile, Length: SizeDist{Dist: "uniform", Max: 6}}
	want.Number = NumberGen{Min: -1e308, Max: 1e308, Extremes: 0.5}
	want.Depth = 4
	if !reflect.DeepEqual(x[0], want) {
		t.Errorf("extra[0] = %+v\nwant %+v", x[0], want)
	}
	// What an entry leaves out keeps its default.
	want = DefaultFieldGen("deep.a.b.c")
	want.String.Alphabet = AlphabetUnicode
	want.String.Length.Max = 2000
	if !reflect.DeepEqual(x[1], want) {
		t.Errorf("extra[1] = %+v\nwant %+v", x[1], want)
	}
	if x[2].Number.Min != math.MinInt64 || x[2].Types != (TypeMix{Number: 1}) {
		t.Errorf("extra[2] = %+v", x[2])
	}
	// The printed spec reads back to itself.
	y, err := s.YAML()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := ParseSpec(y)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, y)
	}
	if !reflect.DeepEqual(s, s2) {
		t.Fatalf("round trip changed the spec:\n%s", y)
	}
}

func TestParseExtraFieldErrors(t *testing.T) {
	extra := func(entry string) string { return "fields:\n  extra:\n    - " + entry + "\n" }
	for _, tc := range []struct{ in, want string }{
		{extra("{types: {numbr: 1}}"), `types: unknown kind "numbr"`},
		{extra("{path: x, colour: red}"), `workload.fields.extra[0].colour: unknown field "colour"`},
		{extra("{path: x, string: {alphabet: ebcdic}}"), `workload.fields.extra[0].string.alphabet: must be one of ascii, unicode, hostile, small, got "ebcdic"`},
		{extra("{path: x, string: {alfabet: ascii}}"), `workload.fields.extra[0].string.alfabet: unknown field "alfabet"`},
		{extra("{missing: 0.5}"), `workload.fields.extra[0].path: "" is not a dotted field path`},
		{extra("{path: a..b}"), `workload.fields.extra[0].path: "a..b" is not a dotted field path`},
		{extra("{path: address.x}"), `workload.fields.extra[0].path: "address.x" starts with the built-in field "address"`},
		{extra("{path: x, missing: 1.5}"), "workload.fields.extra[0].missing: must be in [0,1], got 1.5"},
		{extra("{path: x, types: {number: -1}}"), "workload.fields.extra[0].types.number: must be a finite weight ≥ 0, got -1"},
		{extra("{path: x, types: {number: .inf}}"), "workload.fields.extra[0].types.number: must be a finite weight ≥ 0"},
		{extra("{path: x, types: {number: 1e308, string: 1e308}}"), "workload.fields.extra[0].types: needs a positive weight and a finite sum"},
		{extra("{path: x, types: {number: 0}}"), "workload.fields.extra[0].types: must be a positive weight, got none"},
		{extra("{path: x, types: {}}"), "workload.fields.extra[0].types: must be a positive weight, got none"},
		{extra("{path: x, types: {array: 1}, depth: 0}"), "workload.fields.extra[0].depth: 0 allows scalars only"},
		{extra("{path: x, depth: 65}"), "workload.fields.extra[0].depth: must be in 0..64, got 65"},
		{extra("{path: x, items: -1}"), "workload.fields.extra[0].items: must be in 0..1000, got -1"},
		{extra("{path: x, number: {min: 5, max: 1}}"), "workload.fields.extra[0].number: min and max must be finite with min ≤ max"},
		{extra("{path: x, number: {max: .inf}}"), "workload.fields.extra[0].number: min and max must be finite"},
		{extra("{path: x, number: {min: .nan}}"), "workload.fields.extra[0].number: min and max must be finite"},
		{extra("{path: x, number: {extremes: 2}}"), "workload.fields.extra[0].number.extremes: must be in [0,1], got 2"},
		{extra("{path: x, string: {length: {dist: uniform, min: 9, max: 3}}}"), "workload.fields.extra[0].string.length.max: must be ≥ min"},
		{extra("{path: x, string: {length: {dist: fixed, mean: 99999999}}}"), "workload.fields.extra[0].string.length.mean: must be in 0..20971520"},
		{"fields:\n  extra:\n    - {path: a.b}\n    - {path: a}\n", `workload.fields.extra[1].path: "a" overlaps fields.extra[0] ("a.b")`},
		{"fields:\n  extra:\n    - {path: a}\n    - {path: a}\n", `workload.fields.extra[1].path: "a" overlaps fields.extra[0] ("a")`},
	} {
		_, err := ParseSpec([]byte(tc.in))
		if err == nil {
			t.Errorf("ParseSpec(%q): no error, want %q", tc.in, tc.want)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("ParseSpec(%q):\n got %q\nwant %q", tc.in, msg, tc.want)
		}
	}
	// Depth 0 with scalars is in range, as are zero items.
	if _, err := ParseSpec([]byte(extra("{path: x, types: {number: 1, array: 1}, depth: 0, items: 0}"))); err != nil {
		t.Errorf("depth 0: %v", err)
	}
}

// TestExtraFieldsGenerated checks the generated documents: valid JSON, the
// same from the same seed, and holding what the spec asks for — every
// kind, hard numbers, hard code points, escapes, deep nesting.
func TestExtraFieldsGenerated(t *testing.T) {
	s, err := ParseSpec([]byte(hardYAML))
	if err != nil {
		t.Fatal(err)
	}
	gen := func() (*Generator, [][]byte) {
		g, err := NewGenerator(s)
		if err != nil {
			t.Fatal(err)
		}
		var docs [][]byte
		for op, ok := g.NextLoad(); ok; op, ok = g.NextLoad() {
			docs = append(docs, op.Value)
		}
		for range 300 {
			if op := g.Next(); op.Value != nil {
				docs = append(docs, op.Value)
			}
		}
		return g, docs
	}
	g1, docs := gen()
	g2, _ := gen()
	if g1.Digest() != g2.Digest() {
		t.Fatalf("same seed, digests %s and %s", g1.Digest(), g2.Digest())
	}
	kinds := map[string]int{}
	var all []byte
	maxDepth := 0
	for _, d := range docs {
		var doc map[string]any
		if err := json.Unmarshal(d, &doc); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, d)
		}
		if v, ok := doc["mixed"]; ok {
			kinds[kindName(v)]++
			maxDepth = max(maxDepth, depthOf(v))
		}
		deep := doc["deep"].(map[string]any)["a"].(map[string]any)
		if _, ok := deep["b"].(map[string]any)["c"].(string); !ok {
			t.Fatalf("deep.a.b.c is not a string: %s", d)
		}
		if n, ok := deep["n"].(float64); !ok || n != math.Trunc(n) {
			t.Fatalf("deep.a.n is not an integer: %s", d)
		}
		all = append(all, d...)
		all = append(all, '\n')
	}
	for _, k := range []string{"number", "string", "null", "bool", "array", "object"} {
		if kinds[k] == 0 {
			t.Errorf("no document has a %s in mixed (kinds %v)", k, kinds)
		}
	}
	if maxDepth < 3 {
		t.Errorf("mixed nests at most %d deep, want ≥ 3", maxDepth)
	}
	for _, want := range []string{
		`\u0000`, `\"`, `\\`, `\u`, `\udc00`, "\u0301", "\U0010ffff", "\u2028",
	} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("no document holds %q", want)
		}
	}
	// Hard numbers, as values (keys may be escaped, so not by name).
	for _, want := range []string{"-1e308", "1.7976931348623157e308", "-0", "9007199254740993", "-9223372036854775808", "1e-400"} {
		found := false
		for _, end := range []string{",", "}", "]"} {
			found = found || bytes.Contains(all, []byte(":"+want+end)) || bytes.Contains(all, []byte("["+want+end))
		}
		if !found {
			t.Errorf("no document holds the number %s", want)
		}
	}
	// The unicode alphabet reaches every UTF-8 length, and long strings.
	longest, sizes := 0, map[int]bool{}
	for _, d := range docs {
		var doc struct {
			Deep struct {
				A struct {
					B struct{ C string }
				}
			}
		}
		if err := json.Unmarshal(d, &doc); err != nil {
			t.Fatal(err)
		}
		c := doc.Deep.A.B.C
		longest = max(longest, utf8.RuneCountInString(c))
		for _, r := range c {
			sizes[utf8.RuneLen(r)] = true
		}
	}
	if len(sizes) != 4 || longest < 1000 {
		t.Errorf("unicode strings: UTF-8 lengths %v, longest %d code points", sizes, longest)
	}
}

func kindName(v any) string {
	switch v.(type) {
	case float64:
		return "number"
	case string:
		return "string"
	case nil:
		return "null"
	case bool:
		return "bool"
	case []any:
		return "array"
	}
	return "object"
}

func depthOf(v any) int {
	d := 0
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			d = max(d, depthOf(e))
		}
		return d + 1
	case map[string]any:
		for _, e := range v {
			d = max(d, depthOf(e))
		}
		return d + 1
	}
	return 0
}

// TestExtraNumbersInRange checks that drawn numbers stay in [min, max]
// where min + u·(max-min) would overflow, and that integers are integers.
func TestExtraNumbersInRange(t *testing.T) {
	for _, n := range []NumberGen{
		{Min: -math.MaxFloat64, Max: math.MaxFloat64},
		{Min: -1e308, Max: 1e308, Integer: true},
		{Min: math.MinInt64, Max: math.MaxInt64, Integer: true},
		{Min: 0.5, Max: 0.7, Integer: true},
		{Min: 3, Max: 3},
	} {
		g := DefaultFieldGen("x")
		g.Types, g.Number = TypeMix{Number: 1}, n
		s := DefaultSpec()
		s.Fields.Extra = []FieldGen{g}
		err := s.Validate()
		if n.Min == 0.5 {
			if err == nil || !strings.Contains(err.Error(), "workload.fields.extra[0].number: no integer lies between") {
				t.Errorf("%+v: %v, want no integer in range", n, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		gen, err := NewGenerator(s)
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			op, _ := gen.NextLoad()
			var doc struct{ X *float64 }
			if err := json.Unmarshal(op.Value, &doc); err != nil || doc.X == nil {
				t.Fatalf("%+v: %s: %v", n, op.Value, err)
			}
			x := *doc.X
			lo, hi := n.Min, n.Max
			if n.Integer {
				lo, hi = math.Ceil(lo), math.Floor(hi)
			}
			if x < lo || x > hi || (n.Integer && x != math.Trunc(x)) {
				t.Fatalf("%+v: drew %v", n, x)
			}
		}
	}
}
