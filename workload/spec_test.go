package workload

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/workload/defn"
)

func TestParseSpecDefaults(t *testing.T) {
	for _, in := range []string{"", "\n", "# nothing\n", "{}"} {
		s, err := ParseSpec([]byte(in))
		if err != nil {
			t.Fatalf("ParseSpec(%q): %v", in, err)
		}
		if !reflect.DeepEqual(s, DefaultSpec()) {
			t.Errorf("ParseSpec(%q) = %+v, want the default spec", in, s)
		}
	}
	d := DefaultSpec()
	if err := d.Validate(); err != nil {
		t.Fatalf("default spec invalid: %v", err)
	}
	var zero Spec
	zero.EnsureDefaults()
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero spec with defaults invalid: %v", err)
	}
}

func TestParseSpec(t *testing.T) {
	in := `
seed: 42
vbuckets: 8
docs: 0
value_size: {dist: uniform, min: 100, max: 1000}
key_dist: latest
ops:
  update: 0.75
  delete: 0.25
rate: 5000
mutations: 1000
fields:
  missing: 0
  tags_max: 2
indexes:
  - name: by_name
    keys: [name]
    where: "age >= 18 AND active = true"
  - name: pk
    primary: true
    deferred: true
`
	s, err := ParseSpec([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultSpec()
	want.Seed, want.Vbuckets, want.Docs = 42, 8, 0
	want.ValueSize = SizeDist{Dist: "uniform", Mean: 256, Min: 100, Max: 1000}
	want.KeyDist = KeyLatest
	want.Ops = OpMix{Update: 0.75, Delete: 0.25} // the block replaces the default mix
	want.Rate, want.Mutations = 5000, 1000
	want.Fields.Missing, want.Fields.TagsMax = 0, 2 // the block merges
	want.Indexes = []defn.IndexDefn{
		{Name: "by_name", SecExprs: []string{"name"}, Where: "age >= 18 AND active = true"},
		{Name: "pk", IsPrimary: true, Deferred: true},
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got  %+v\nwant %+v", s, want)
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
		t.Fatalf("round trip changed the spec:\n%s\ngot %+v", y, s2)
	}

	// An explicit empty index list means none.
	s, err = ParseSpec([]byte("indexes: []\n"))
	if err != nil || s.Indexes != nil {
		t.Fatalf("indexes: [] gave %v, %v", s.Indexes, err)
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"vbuckets: 2000", "workload.vbuckets: must be in 1..1024, got 2000"},
		{"vbuckets: -1", "workload.vbuckets: must be in 1..1024, got -1"},
		{"docs: -5", "workload.docs: must be ≥ 0"},
		{"ops: {update: 1.5}", "workload.ops.update: must be in [0,1], got 1.5"},
		{"ops: {update: 0.5}", "workload.ops: fractions must sum to 1, got 0.5"},
		{"ops: {insert: -0.5, update: 1.5}", "workload.ops.insert: must be in [0,1]"},
		{"key_dist: gaussian", `workload.key_dist: must be one of uniform, zipfian, latest, sequential, got "gaussian"`},
		{"zipf_theta: 1", "workload.zipf_theta: must be in (0,1), got 1"},
		{"rate: -1", "workload.rate: must be a finite number ≥ 0"},
		{"mutations: -1", "workload.mutations: must be ≥ 0"},
		{"value_size: {dist: lognormal}", `workload.value_size.dist: must be fixed, uniform or normal, got "lognormal"`},
		{"value_size: {dist: uniform, min: 10, max: 5}", "workload.value_size.max: must be ≥ min"},
		{"value_size: {mean: 99999999}", "workload.value_size.mean: must be in 0..20971520"},
		{"fields: {missing: 2}", "workload.fields.missing: must be in [0,1], got 2"},
		{"fields: {age_min: 50, age_max: 20}", "workload.fields.age_max: must be ≥ age_min ≥ 0"},
		// An explicit zero was silently replaced by the default.
		{"vbuckets: 0", "workload.vbuckets: must be in 1..1024, got 0"},
		{"snapshot_items: 0", "workload.snapshot_items: must be ≥ 1, got 0"},
		// The span age_max-age_min+1 overflowed and the generator panicked.
		{"fields: {age_min: 0, age_max: 9223372036854775807}", "workload.fields.age_max: must be ≥ age_min ≥ 0 and ≤ 2^53"},
		{"fields: {cities: -3}", "workload.fields.cities: must be in 1..1000000"},
		{"indexes: [{name: x}]", "workload.indexes[0]: keys: a secondary index needs at least one key"},
		{"indexes: [{name: '', keys: [a]}]", "workload.indexes[0]: name: must not be empty"},
		{"indexes: [{name: x, keys: [a..b]}]", `workload.indexes[0]: keys[0]: "a..b" is not a dotted field path`},
		{"indexes: [{name: x, keys: [a], where: 'a =='}]", `workload.indexes[0]: where: where "a ==": `},
		{"indexes: [{name: x, primary: true, keys: [a]}]", "workload.indexes[0]: keys: a primary index has no keys"},
		{"indexes: [{name: x, keys: [a]}, {name: x, keys: [b]}]", `workload.indexes[1].name: "x" is also the name of indexes[0]`},
		{"indexes: [{name: x, keys: [a], partitions: 5000}]", "workload.indexes[0]: partitions: must be in 0..1024"},
		// Unknown fields name their path.
		{"bogus: 1", `workload.bogus: unknown field "bogus" (line 1)`},
		{"ops:\n  updat: 1\n", `workload.ops.updat: unknown field "updat" (line 2)`},
		{"fields: {misssing: 0.1}", `workload.fields.misssing: unknown field "misssing"`},
		{"indexes:\n  - name: x\n    keys: [a]\n  - name: y\n    key: [b]\n", `workload.indexes[1].key: unknown field "key" (line 5)`},
		// Type errors too.
		{"docs: many", "workload.docs: "},
		{"vbuckets: [1]", "workload.vbuckets: "},
		{"seed: -1", "workload.seed: "},
		{": :", "workload"},
		{"docs: 1\ndocs: 2\n", "workload"},
	} {
		_, err := ParseSpec([]byte(tc.in))
		if err == nil {
			t.Errorf("ParseSpec(%q): no error, want %q", tc.in, tc.want)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, tc.want) {
			t.Errorf("ParseSpec(%q):\n got %q\nwant %q...", tc.in, msg, tc.want)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("ParseSpec(%q): error spans lines: %q", tc.in, msg)
		}
	}
}

func TestLoadSpec(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "w.yaml")
	if err := os.WriteFile(p, []byte("docs: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSpec(p)
	if err != nil || s.Docs != 7 {
		t.Fatalf("LoadSpec = %+v, %v", s, err)
	}
	if _, err := LoadSpec(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("LoadSpec of a missing file: %v", err)
	}
	if err := os.WriteFile(p, []byte("docs: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSpec(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "workload.docs") {
		t.Fatalf("LoadSpec of a bad file: %v", err)
	}
}

// FuzzParseSpec checks that the parser never panics, that its errors are
// one line, and that every spec it accepts is valid and survives a print
// and re-parse unchanged.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("docs: 10\nvbuckets: 4\n"))
	f.Add([]byte("ops: {update: 1}\nkey_dist: uniform\n"))
	f.Add([]byte("indexes:\n  - name: a\n    keys: [x.y, z]\n    where: \"x = 'q' AND z IS MISSING\"\n"))
	f.Add([]byte("value_size: {dist: normal, mean: 300, stddev: 50, min: 10, max: 400}\n"))
	f.Add([]byte("fields: {missing: 0.5, cities: 3}\nrate: 100.5\n"))
	f.Add([]byte("seed: &a 3\ndocs: *a\n"))
	f.Add([]byte("fields:\n  extra:\n    - {path: a.b, types: {null: 1, array: 2}, depth: 5, string: {alphabet: hostile}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted an invalid spec: %v", err)
		}
		y, err := s.YAML()
		if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		s2, err := ParseSpec(y)
		if err != nil {
			t.Fatalf("re-parse of\n%s: %v", y, err)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("round trip changed the spec:\n%s\n%+v\n%+v", y, s, s2)
		}
	})
}

// TestDefaultSpecFile keeps testdata/default-spec.yaml, the documented
// default spec, in sync with DefaultSpec (rewrite with -rewrite-spec).
func TestDefaultSpecFile(t *testing.T) {
	y, err := DefaultSpec().YAML()
	if err != nil {
		t.Fatal(err)
	}
	const path = "testdata/default-spec.yaml"
	if *rewriteSpec {
		if err := os.WriteFile(path, y, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(y) {
		t.Fatalf("%s is stale; rerun with -rewrite-spec:\n%s", path, y)
	}
	s, err := ParseSpec(want)
	if err != nil || !reflect.DeepEqual(s, DefaultSpec()) {
		t.Fatalf("%s does not parse to the default spec: %v", path, err)
	}
}

var rewriteSpec = flag.Bool("rewrite-spec", false, "rewrite testdata/default-spec.yaml")
