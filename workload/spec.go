package workload

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/idxbench/idxbench/workload/defn"
)

// Spec describes a workload: the bucket, the initial documents, the
// operation stream that follows, the document shape and the indexes. It is
// written in YAML (see ParseSpec); field names below are the YAML names.
// Errors name fields by their path from "workload", e.g.
// "workload.ops.update".
type Spec struct {
	// Seed drives everything random: document contents, key choices,
	// vbuuids. Default 1.
	Seed uint64 `yaml:"seed"`
	// Vbuckets is the bucket's vbucket count, 1..1024. Default 1024.
	Vbuckets int `yaml:"vbuckets"`
	// Docs is how many documents the load phase inserts. Default 100000;
	// 0 starts from an empty bucket.
	Docs int `yaml:"docs"`
	// ValueSize is the distribution of document body sizes. Default fixed
	// 256 bytes.
	ValueSize SizeDist `yaml:"value_size"`
	// KeyDist chooses which existing document an update, delete or expire
	// touches: uniform, zipfian (the oldest documents are hottest), latest
	// (zipfian over recency: the newest are hottest) or sequential (cycles
	// through documents in insertion order). Default zipfian.
	KeyDist string `yaml:"key_dist"`
	// ZipfTheta is the skew of zipfian and latest, in (0,1). Default 0.99.
	ZipfTheta float64 `yaml:"zipf_theta"`
	// Ops is the operation mix after the load. Default 10% inserts, 80%
	// updates, 5% deletes, 5% expirations.
	Ops OpMix `yaml:"ops"`
	// Rate is the target operations per second (open loop: each operation
	// has an intended start time); 0 is closed loop. Default 0.
	Rate float64 `yaml:"rate"`
	// Mutations is how many operations follow the load; 0 means unbounded
	// (the phase's duration decides). Default 0.
	Mutations int `yaml:"mutations"`
	// SnapshotItems is how many mutations of a vbucket the bucket groups
	// into one snapshot at most. Default 64.
	SnapshotItems int `yaml:"snapshot_items"`
	// Fields shapes the documents.
	Fields FieldSpec `yaml:"fields"`
	// Indexes are the secondary indexes over the bucket. Default: by_city,
	// by_age_city, active_scores, primary, by_zip (see DefaultIndexes); an
	// explicit empty list means none.
	Indexes []defn.IndexDefn `yaml:"indexes"`
}

// SizeDist is a distribution of sizes in bytes.
type SizeDist struct {
	// Dist is fixed (always Mean), uniform (in [Min, Max]) or normal (Mean
	// and Stddev, clamped to [Min, Max] when Max > 0). Default fixed.
	Dist   string `yaml:"dist"`
	Mean   int    `yaml:"mean"`
	Stddev int    `yaml:"stddev,omitempty"`
	Min    int    `yaml:"min,omitempty"`
	Max    int    `yaml:"max,omitempty"`
}

// OpMix is the fraction of each operation kind; the fractions sum to 1. In
// YAML an ops block replaces the default mix as a whole: kinds it does not
// name get 0.
type OpMix struct {
	Insert float64 `yaml:"insert"`
	Update float64 `yaml:"update"`
	Delete float64 `yaml:"delete"`
	Expire float64 `yaml:"expire"`
}

// UnmarshalYAML decodes an ops block from zero rather than on top of the
// default mix, so {update: 1} means only updates.
func (o *OpMix) UnmarshalYAML(unmarshal func(any) error) error {
	type plain OpMix
	var p plain
	if err := unmarshal(&p); err != nil {
		return err
	}
	*o = OpMix(p)
	return nil
}

// FieldSpec shapes generated documents. A document looks like
//
//	{"name": "Ada Moreau", "age": 42, "city": "Lunaford", "active": true,
//	 "address": {"city": "Brightholm", "zip": 52110}, "tags": ["red", "new"],
//	 "score": 61.5, "padding": "qhzk..."}
//
// name, age, city, active, address, tags and score are each missing from a
// document with probability Missing; score is null with probability
// ScoreNull when present; padding brings the body to the drawn value size
// (bodies already larger get no padding field).
type FieldSpec struct {
	// Missing is the probability that each optional field is absent, in
	// [0,1]. Default 0.05.
	Missing float64 `yaml:"missing"`
	// Cities is the number of distinct city names, drawn zipfian. Default 1000.
	Cities int `yaml:"cities"`
	// CityTheta is the skew of the city distribution, in (0,1). Default 0.99.
	CityTheta float64 `yaml:"city_theta"`
	// AgeMin, AgeMax bound the uniform integer age. Default 18, 90.
	AgeMin int `yaml:"age_min"`
	AgeMax int `yaml:"age_max"`
	// Active is the probability that active is true, in [0,1]. Default 0.5.
	Active float64 `yaml:"active"`
	// TagsMax is the largest number of tags; the count is uniform in
	// [0, TagsMax]. Default 4.
	TagsMax int `yaml:"tags_max"`
	// ScoreNull is the probability that a present score is null, in [0,1].
	// Default 0.1.
	ScoreNull float64 `yaml:"score_null"`
	// Extra are further fields, each with its content shaped in detail
	// (FieldGen), written after score and before padding. Default none.
	Extra []FieldGen `yaml:"extra,omitempty"`
}

// builtinZero reports whether every built-in setting of f (all but Extra)
// is zero.
func (f FieldSpec) builtinZero() bool {
	f.Extra = nil
	return reflect.DeepEqual(f, FieldSpec{})
}

// Key distributions.
const (
	KeyUniform    = "uniform"
	KeyZipfian    = "zipfian"
	KeyLatest     = "latest"
	KeySequential = "sequential"
)

var keyDists = []string{KeyUniform, KeyZipfian, KeyLatest, KeySequential}

// DefaultIndexes are the default spec's indexes.
func DefaultIndexes() []defn.IndexDefn {
	return []defn.IndexDefn{
		{Name: "by_city", SecExprs: []string{"city"}},
		{Name: "by_age_city", SecExprs: []string{"age", "city"}},
		{Name: "active_scores", SecExprs: []string{"score"}, Where: "active = true"},
		{Name: "primary", IsPrimary: true},
		{Name: "by_zip", SecExprs: []string{"address.zip"}, Partitions: 4},
	}
}

func defaultFields() FieldSpec {
	return FieldSpec{Missing: 0.05, Cities: 1000, CityTheta: 0.99, AgeMin: 18, AgeMax: 90,
		Active: 0.5, TagsMax: 4, ScoreNull: 0.1}
}

// DefaultSpec is the spec every field of which has its default.
func DefaultSpec() Spec {
	return Spec{
		Seed:          1,
		Vbuckets:      MaxVbuckets,
		Docs:          100_000,
		ValueSize:     SizeDist{Dist: "fixed", Mean: 256},
		KeyDist:       KeyZipfian,
		ZipfTheta:     0.99,
		Ops:           OpMix{Insert: 0.1, Update: 0.8, Delete: 0.05, Expire: 0.05},
		SnapshotItems: DefaultSnapshotItems,
		Fields:        defaultFields(),
		Indexes:       DefaultIndexes(),
	}
}

// EnsureDefaults sets fields whose zero value means "default" to their
// defaults: vbuckets, value size, key distribution, zipf thetas, op mix,
// snapshot items, and a field spec that is entirely zero. Docs, Rate,
// Mutations, Seed and Indexes keep their zero values, which mean something.
func (s *Spec) EnsureDefaults() {
	d := DefaultSpec()
	if s.Vbuckets == 0 {
		s.Vbuckets = d.Vbuckets
	}
	if s.ValueSize == (SizeDist{}) {
		s.ValueSize = d.ValueSize
	}
	if s.ValueSize.Dist == "" {
		s.ValueSize.Dist = "fixed"
	}
	if s.KeyDist == "" {
		s.KeyDist = d.KeyDist
	}
	if s.ZipfTheta == 0 {
		s.ZipfTheta = d.ZipfTheta
	}
	if s.Ops == (OpMix{}) {
		s.Ops = d.Ops
	}
	if s.SnapshotItems == 0 {
		s.SnapshotItems = d.SnapshotItems
	}
	if s.Fields.builtinZero() {
		extra := s.Fields.Extra
		s.Fields = d.Fields
		s.Fields.Extra = extra
	}
	if len(s.Fields.Extra) == 0 {
		s.Fields.Extra = nil // "extra: []" and no extra fields are the same
	}
	for i := range s.Fields.Extra {
		s.Fields.Extra[i].ensureDefaults()
	}
	if s.Fields.Cities == 0 {
		s.Fields.Cities = d.Fields.Cities
	}
	if s.Fields.CityTheta == 0 {
		s.Fields.CityTheta = d.Fields.CityTheta
	}
	if len(s.Indexes) == 0 {
		s.Indexes = nil // "indexes: []" and "indexes: null" both mean none
	}
	for i := range s.Indexes {
		if len(s.Indexes[i].SecExprs) == 0 {
			s.Indexes[i].SecExprs = nil // "keys: []" and no keys are the same
		}
	}
}

// Validate checks every field's range; the error names the first bad
// field by its path.
func (s *Spec) Validate() error {
	bad := func(path, format string, args ...any) error {
		return fmt.Errorf("workload.%s: %s", path, fmt.Sprintf(format, args...))
	}
	if s.Vbuckets < 1 || s.Vbuckets > MaxVbuckets {
		return bad("vbuckets", "must be in 1..%d, got %d", MaxVbuckets, s.Vbuckets)
	}
	if s.Docs < 0 {
		return bad("docs", "must be ≥ 0, got %d", s.Docs)
	}
	if err := s.ValueSize.validate("value_size"); err != nil {
		return err
	}
	found := false
	for _, k := range keyDists {
		found = found || s.KeyDist == k
	}
	if !found {
		return bad("key_dist", "must be one of %s, got %q", strings.Join(keyDists, ", "), s.KeyDist)
	}
	if !(s.ZipfTheta > 0 && s.ZipfTheta < 1) {
		return bad("zipf_theta", "must be in (0,1), got %v", s.ZipfTheta)
	}
	ops := []struct {
		name string
		v    float64
	}{{"insert", s.Ops.Insert}, {"update", s.Ops.Update}, {"delete", s.Ops.Delete}, {"expire", s.Ops.Expire}}
	sum := 0.0
	for _, o := range ops {
		if !(o.v >= 0 && o.v <= 1) {
			return bad("ops."+o.name, "must be in [0,1], got %v", o.v)
		}
		sum += o.v
	}
	if math.Abs(sum-1) > 1e-9 {
		return bad("ops", "fractions must sum to 1, got %v", sum)
	}
	if !(s.Rate >= 0) || math.IsInf(s.Rate, 0) {
		return bad("rate", "must be a finite number ≥ 0, got %v", s.Rate)
	}
	if s.Mutations < 0 {
		return bad("mutations", "must be ≥ 0, got %d", s.Mutations)
	}
	if s.SnapshotItems < 1 {
		return bad("snapshot_items", "must be ≥ 1, got %d", s.SnapshotItems)
	}
	f := &s.Fields
	for _, p := range []struct {
		name string
		v    float64
	}{{"missing", f.Missing}, {"active", f.Active}, {"score_null", f.ScoreNull}} {
		if !(p.v >= 0 && p.v <= 1) {
			return bad("fields."+p.name, "must be in [0,1], got %v", p.v)
		}
	}
	if f.Cities < 1 || f.Cities > 1_000_000 {
		return bad("fields.cities", "must be in 1..1000000, got %d", f.Cities)
	}
	if !(f.CityTheta > 0 && f.CityTheta < 1) {
		return bad("fields.city_theta", "must be in (0,1), got %v", f.CityTheta)
	}
	// Ages are JSON numbers: up to 2^53 they are exact, and the span
	// age_max-age_min+1 cannot overflow.
	const maxAge = 1 << 53
	if f.AgeMin < 0 || f.AgeMax < f.AgeMin || f.AgeMax > maxAge {
		return bad("fields.age_max", "must be ≥ age_min ≥ 0 and ≤ 2^53, got age_min %d, age_max %d", f.AgeMin, f.AgeMax)
	}
	if f.TagsMax < 0 || f.TagsMax > 64 {
		return bad("fields.tags_max", "must be in 0..64, got %d", f.TagsMax)
	}
	if err := validateExtra(f.Extra); err != nil {
		return err
	}
	names := map[string]int{}
	for i, d := range s.Indexes {
		p := fmt.Sprintf("indexes[%d]", i)
		if err := validateIndex(d); err != nil {
			return bad(p, "%v", err)
		}
		if j, dup := names[d.Name]; dup {
			return bad(p+".name", "%q is also the name of indexes[%d]", d.Name, j)
		}
		names[d.Name] = i
	}
	return nil
}

func (d SizeDist) validate(path string) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("workload.%s.%s: %s", path, field, fmt.Sprintf(format, args...))
	}
	const limit = 20 << 20 // KV's document size limit
	for _, f := range []struct {
		name string
		v    int
	}{{"mean", d.Mean}, {"stddev", d.Stddev}, {"min", d.Min}, {"max", d.Max}} {
		if f.v < 0 || f.v > limit {
			return bad(f.name, "must be in 0..%d, got %d", limit, f.v)
		}
	}
	switch d.Dist {
	case "fixed":
		if d.Mean < 1 {
			return bad("mean", "must be ≥ 1 for a fixed size, got %d", d.Mean)
		}
	case "uniform":
		if d.Max < 1 || d.Max < d.Min {
			return bad("max", "must be ≥ min and ≥ 1 for a uniform size, got min %d, max %d", d.Min, d.Max)
		}
	case "normal":
		if d.Mean < 1 {
			return bad("mean", "must be ≥ 1 for a normal size, got %d", d.Mean)
		}
		if d.Max != 0 && d.Max < d.Min {
			return bad("max", "must be ≥ min, got min %d, max %d", d.Min, d.Max)
		}
	default:
		return bad("dist", "must be fixed, uniform or normal, got %q", d.Dist)
	}
	return nil
}

// validateIndex checks one definition; errors name the field.
func validateIndex(d defn.IndexDefn) error {
	if d.Name == "" {
		return errors.New("name: must not be empty")
	}
	if strings.ContainsAny(d.Name, "/ \t\n") {
		return fmt.Errorf("name: %q must not contain '/' or spaces", d.Name)
	}
	if d.IsPrimary {
		if len(d.SecExprs) > 0 {
			return fmt.Errorf("keys: a primary index has no keys, got %q", d.SecExprs)
		}
		if d.Where != "" {
			return errors.New("where: a primary index has no filter")
		}
	} else if len(d.SecExprs) == 0 {
		return errors.New("keys: a secondary index needs at least one key (or primary: true)")
	}
	for i, e := range d.SecExprs {
		if !defn.ValidPath(e) {
			return fmt.Errorf("keys[%d]: %q is not a dotted field path", i, e)
		}
	}
	if _, err := defn.ParseWhere(d.Where); err != nil {
		return fmt.Errorf("where: %w", err)
	}
	if d.Partitions < 0 || d.Partitions > MaxVbuckets {
		return fmt.Errorf("partitions: must be in 0..%d, got %d", MaxVbuckets, d.Partitions)
	}
	if d.Replicas < 0 || d.Replicas > defn.MaxReplicas {
		return fmt.Errorf("replicas: must be in 0..%d, got %d", defn.MaxReplicas, d.Replicas)
	}
	if d.PartitionKey != "" && !defn.ValidPath(d.PartitionKey) {
		return fmt.Errorf("partition_key: %q is not a dotted field path", d.PartitionKey)
	}
	return nil
}

// ParseSpec parses a YAML spec strictly: unknown fields are errors, fields
// it does not mention keep their defaults, zero values that mean "default"
// take them (EnsureDefaults), and the result is validated. Errors are one
// line and name the field's path.
func ParseSpec(data []byte) (Spec, error) {
	s := DefaultSpec()
	// go-yaml zeroes the spec for an empty or null document (comments
	// only, say); such a document means "all defaults".
	if !emptyYAML(data) {
		if err := decodeYAML(data, &s); err != nil {
			return Spec{}, err
		}
		// The spec started from the defaults, so a zero here was written
		// in the file: where zero is no valid value, say so rather than
		// let EnsureDefaults put the default back in silence.
		if err := explicitZeros(s); err != nil {
			return Spec{}, err
		}
	}
	s.EnsureDefaults()
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// explicitZeros refuses fields set to an explicit zero that is out of
// their range.
func explicitZeros(s Spec) error {
	for _, f := range []struct {
		name string
		zero bool
		want string
	}{
		{"vbuckets", s.Vbuckets == 0, fmt.Sprintf("in 1..%d", MaxVbuckets)},
		{"zipf_theta", s.ZipfTheta == 0, "> 0"},
		{"snapshot_items", s.SnapshotItems == 0, "≥ 1"},
		{"fields.cities", s.Fields.Cities == 0 && !s.Fields.builtinZero(), "≥ 1"},
		{"fields.city_theta", s.Fields.CityTheta == 0 && !s.Fields.builtinZero(), "> 0"},
	} {
		if f.zero {
			return fmt.Errorf("workload.%s: must be %s, got 0 (leave it out for the default)", f.name, f.want)
		}
	}
	for i := range s.Fields.Extra {
		if field, want := s.Fields.Extra[i].explicitZero(); field != "" {
			return fmt.Errorf("workload.fields.extra[%d].%s: must be %s, got none (leave it out for the default)", i, field, want)
		}
	}
	return nil
}

// decodeYAML decodes strictly into s. go-yaml v1.19.2 panics on some
// malformed input (found by FuzzParseSpec: a tag on a sequence value, e.g.
// "keys: !0000"; goccy/go-yaml#735, fixed upstream by #862); a bad spec
// file must give an error line, not a crash, so a panic inside the decoder
// becomes an error.
func decodeYAML(data []byte, s *Spec) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("workload: malformed YAML (the decoder failed: %v)", r)
		}
	}()
	if err := yaml.UnmarshalWithOptions(data, s, yaml.Strict()); err != nil {
		return yamlError(data, err)
	}
	return nil
}

// emptyYAML reports whether data is a YAML stream without a document or
// whose first document is empty or null.
func emptyYAML(data []byte) (empty bool) {
	defer func() {
		if recover() != nil {
			empty = false // let decodeYAML report it
		}
	}()
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return false // let the decoder report it
	}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return true
	}
	_, null := f.Docs[0].Body.(*ast.NullNode)
	return null
}

// LoadSpec reads and parses a spec file.
func LoadSpec(path string) (Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, fmt.Errorf("workload spec: %w", err)
	}
	s, err := ParseSpec(data)
	if err != nil {
		return Spec{}, fmt.Errorf("workload spec %s: %w", path, err)
	}
	return s, nil
}

// YAML prints the spec as YAML that ParseSpec reads back to the same spec,
// the effective configuration a results file records.
func (s Spec) YAML() ([]byte, error) {
	return yaml.MarshalWithOptions(s, yaml.IndentSequence(true))
}

// yamlError turns a go-yaml error, which spans several lines with a source
// excerpt, into one line naming the field's path and the line.
func yamlError(data []byte, err error) error {
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil {
		return fmt.Errorf("workload: %s", oneLine(firstLine(err.Error())))
	}
	tk := ye.GetToken()
	msg := oneLine(ye.GetMessage())
	if p := pathAt(data, tk.Position.Line, tk.Position.Column); p != "" {
		return fmt.Errorf("%s: %s (line %d)", oneLine(p), msg, tk.Position.Line)
	}
	return fmt.Errorf("workload: line %d: %s", tk.Position.Line, msg)
}

// oneLine escapes line breaks and other control characters (YAML keys may
// hold them) so that an error stays one line.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// pathAt finds the path ("workload.ops.update", "workload.indexes[1].keys")
// of the mapping key or value at line:col of the YAML source: the deepest
// node there, so an unknown first key of a nested block names itself, not
// its block.
func pathAt(data []byte, line, col int) string {
	f, err := parser.ParseBytes(data, 0)
	if err != nil || len(f.Docs) == 0 {
		return ""
	}
	at := func(n ast.Node) bool {
		if n == nil {
			return false
		}
		tk := n.GetToken()
		return tk != nil && tk.Position.Line == line && tk.Position.Column == col
	}
	var walk func(n ast.Node, path string) string
	walk = func(n ast.Node, path string) string {
		switch n := n.(type) {
		case *ast.DocumentNode:
			return walk(n.Body, path)
		case *ast.MappingNode:
			for _, mv := range n.Values {
				if p := walk(mv, path); p != "" {
					return p
				}
			}
		case *ast.MappingValueNode:
			p := path + "." + n.Key.String()
			if at(n.Key) {
				return p
			}
			if q := walk(n.Value, p); q != "" {
				return q
			}
			if at(n.Value) {
				return p
			}
		case *ast.SequenceNode:
			for i, v := range n.Values {
				p := fmt.Sprintf("%s[%d]", path, i)
				if q := walk(v, p); q != "" {
					return q
				}
				if at(v) {
					return p
				}
			}
		case *ast.TagNode:
			return walk(n.Value, path)
		case *ast.AnchorNode:
			return walk(n.Value, path)
		}
		return ""
	}
	return walk(f.Docs[0], "workload")
}
