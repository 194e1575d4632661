package projector

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/workload/defn"
)

// walkPath is the reference: encoding/json's decoded value, walked.
func walkPath(v any, path string) any {
	for _, name := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return defn.Missing
		}
		if v, ok = m[name]; !ok {
			return defn.Missing
		}
	}
	return v
}

func extractPaths(doc string, paths ...string) ([]any, error) {
	t, slots := newFieldTree(paths)
	vals := make([]jval, t.nslots)
	var r jsonReader
	if err := r.extract(t, []byte(doc), vals); err != nil {
		return nil, err
	}
	out := make([]any, len(paths))
	for i, s := range slots {
		out[i] = vals[s].toAny()
	}
	return out, nil
}

func TestExtract(t *testing.T) {
	m := defn.Missing
	for _, tc := range []struct {
		doc   string
		paths []string
		want  []any
	}{
		{`{"city":"Oslo","age":30}`, []string{"city", "age", "zip"}, []any{"Oslo", 30.0, m}},
		{` { "a" : { "b" : { "c" : [1, {"d":2}] } } } `, []string{"a.b.c", "a.b", "a.x", "a.b.c.d"},
			[]any{[]any{1.0, map[string]any{"d": 2.0}}, map[string]any{"c": []any{1.0, map[string]any{"d": 2.0}}}, m, m}},
		// Escapes and unicode, in values and in keys.
		{`{"s":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00"}`, []string{"s"}, []any{"a\"b\\c/d\b\f\n\r\té😀"}},
		{`{"\u0063ity":"x","c\"":"y"}`, []string{"city"}, []any{"x"}},
		{`{"s":"\ud800x","t":"\udc00\ud800\udc00","u":"caf\u00E9"}`, []string{"s", "t", "u"}, []any{"\uFFFDx", "\uFFFD𐀀", "café"}},
		{"{\"s\":\"\xff\xfeok\",\"é\":1,\"k\":\"日本\"}", []string{"s", "k"}, []any{"\uFFFD\uFFFDok", "日本"}},
		// Non-object intermediates and arrays on the path are missing.
		{`{"a":5,"b":[{"c":1}],"n":null}`, []string{"a.c", "b.c", "n.c", "n"}, []any{m, m, m, nil}},
		// Arrays and objects are whole values.
		{`{"tags":["x",true,null,-1.5e2],"o":{}}`, []string{"tags", "o"}, []any{[]any{"x", true, nil, -150.0}, map[string]any{}}},
		// A repeated key's last occurrence wins, also for nested paths.
		{`{"a":{"b":1,"c":2},"a":{"b":3}}`, []string{"a.b", "a.c"}, []any{3.0, m}},
		{`{"a":{"b":1},"a":7}`, []string{"a.b", "a"}, []any{m, 7.0}},
		{`{"a":1,"a":2}`, []string{"a"}, []any{2.0}},
		// Numbers.
		{`{"a":0,"b":-0,"c":123456789012345678,"d":1e308,"e":1E-400,"f":0.1}`, []string{"a", "b", "c", "d", "e", "f"},
			[]any{0.0, 0.0, 123456789012345678.0, 1e308, 0.0, 0.1}},
		// Top level not an object.
		{`[1,2]`, []string{"a"}, []any{m}},
		{`"a"`, []string{"a"}, []any{m}},
		{`{}`, []string{"a"}, []any{m}},
	} {
		got, err := extractPaths(tc.doc, tc.paths...)
		if err != nil {
			t.Errorf("extract %s %v: %v", tc.doc, tc.paths, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("extract %s %v = %#v, want %#v", tc.doc, tc.paths, got, tc.want)
		}
	}
}

func TestExtractErrors(t *testing.T) {
	for _, doc := range []string{
		``, ` `, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{a:1}`, `{"a":1}x`, `{"a":1}{}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}", `{"a":"unterminated}`, `{"a":01}`, `{"a":1.}`,
		`{"a":1e}`, `{"a":-}`, `{"a":tru}`, `{"a":nul}`, `{"a":[1,]}`, `{"a":[1 2]}`, `{"b":1e400}`,
		`{"b":-1e400,"a":1}`, `{"a":"\'"}`, `{"x":{"y":[}}`, "\xef\xbb\xbf{}",
		strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1),
		`{"z":` + strings.Repeat(`{"z":`, maxJSONDepth) + `1` + strings.Repeat("}", maxJSONDepth+1),
	} {
		if got, err := extractPaths(doc, "a", "b"); err == nil {
			t.Errorf("extract %.40q = %#v, want an error", doc, got)
		}
		var v any
		if json.Unmarshal([]byte(doc), &v) == nil {
			t.Errorf("encoding/json accepts %.40q: the table is wrong", doc)
		}
	}
	// encoding/json's depth limit is 10000, inclusive.
	ok := strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)
	if _, err := extractPaths(ok, "a"); err != nil {
		t.Errorf("depth %d: %v", maxJSONDepth, err)
	}
}

func FuzzExtract(f *testing.F) {
	for _, s := range []string{
		`{"a":{"b":[1,"x"]},"c":"\u00e9"}`, `{"a":1,"a":{"b":2}}`, `{"a":{"b":{"c":null}}}`, `[{"a":1}]`,
		`{"a\u0000":1,"b":-0.5e-3}`, `{"a":"\ud834\udd1e\ud834"}`, "{\"a\":\"\xc3\x28\"}",
	} {
		f.Add([]byte(s), "a.b")
	}
	f.Fuzz(func(t *testing.T, doc []byte, path string) {
		paths := []string{"a", "a.b", "a.b.c", "c"}
		if defn.ValidPath(path) {
			paths = append(paths, path, path+".b")
		}
		got, err := extractPaths(string(doc), paths...)
		var v any
		jerr := json.Unmarshal(doc, &v)
		if (err != nil) != (jerr != nil) {
			t.Fatalf("doc %q: extract error %v, encoding/json error %v", doc, err, jerr)
		}
		if err != nil {
			return
		}
		for i, p := range paths {
			if want := walkPath(v, p); !reflect.DeepEqual(got[i], want) {
				t.Fatalf("doc %q path %q: extract %#v, encoding/json %#v", doc, p, got[i], want)
			}
		}
	})
}

func BenchmarkExtract(b *testing.B) {
	doc := []byte(`{"name":"user_000123","age":37,"city":"Lisbon","active":true,"score":812.5,` +
		`"address":{"street":"Rua Augusta 12","zip":"1100-048","country":"PT"},` +
		`"tags":["blue","green"],"bio":"Lorem ipsum dolor sit amet, consectetur adipiscing elit sed do eiusmod"}`)
	t, _ := newFieldTree([]string{"city", "age", "active", "address.country"})
	vals := make([]jval, t.nslots)
	var r jsonReader
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if err := r.extract(t, doc, vals); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}
