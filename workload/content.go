package workload

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/idxbench/idxbench/workload/defn"
)

// FieldGen is an extra document field whose content the spec shapes in
// detail, for documents that break indexers: values whose type changes from
// document to document, strings in any alphabet and of any length, numbers
// at the float64 and int64 extremes, arrays and objects nested deeply. In
// YAML it is an entry of fields.extra; an entry starts from the defaults
// below, so a setting it leaves out keeps its default and one it writes
// must be in range.
type FieldGen struct {
	// Path is the field's dotted path; its leading components become
	// nested objects ("deep.a.b.c" is four levels deep). It must not be the
	// path of another extra field or lie under one, nor start with a
	// built-in field's name (name, age, city, active, address, tags, score,
	// padding). Required.
	Path string `yaml:"path"`
	// Missing is the probability that the field is absent, in [0,1].
	// Default 0.
	Missing float64 `yaml:"missing"`
	// Types is the relative weight of each kind of value; at least one
	// must be positive. Default: only strings.
	Types TypeMix `yaml:"types"`
	// String shapes the strings: the field's own when it is a string, and
	// those inside its arrays and objects (object keys are at most 8 code
	// points long).
	String StringGen `yaml:"string"`
	// Number shapes the numbers, likewise.
	Number NumberGen `yaml:"number"`
	// Depth is how deep arrays and objects nest inside the value, in
	// 0..64: a value at depth Depth is a scalar (the container weights are
	// left out there), so 0 means scalars only. Default 3.
	Depth int `yaml:"depth"`
	// Items is the largest number of elements of an array or pairs of an
	// object; the count is uniform in [0, Items], in 0..1000. Default 4.
	Items int `yaml:"items"`
}

// TypeMix weighs the kinds of a generated value; weights are finite and
// ≥ 0. In YAML a types block replaces the default mix as a whole: kinds it
// does not name get 0.
type TypeMix struct {
	Number float64 `yaml:"number"`
	String float64 `yaml:"string"`
	Null   float64 `yaml:"null"`
	Bool   float64 `yaml:"bool"`
	Array  float64 `yaml:"array"`
	Object float64 `yaml:"object"`
}

// typeNames are TypeMix's kinds as YAML names them.
var typeNames = []string{"number", "string", "null", "bool", "array", "object"}

// UnmarshalYAML decodes a types block from zero, so {number: 1} means only
// numbers. It reads the block as a map: an unquoted null key is YAML's
// null, not the string "null", and go-yaml decoding such a block into the
// struct drops every weight without an error.
func (m *TypeMix) UnmarshalYAML(unmarshal func(any) error) error {
	var raw map[string]float64
	if err := unmarshal(&raw); err != nil {
		return err
	}
	*m = TypeMix{}
	for name, w := range raw {
		if name == "" {
			name = "null"
		}
		switch name {
		case "number":
			m.Number = w
		case "string":
			m.String = w
		case "null":
			m.Null = w
		case "bool":
			m.Bool = w
		case "array":
			m.Array = w
		case "object":
			m.Object = w
		default:
			return fmt.Errorf("types: unknown kind %q (want one of %s)", name, strings.Join(typeNames, ", "))
		}
	}
	return nil
}

// StringGen shapes generated strings.
type StringGen struct {
	// Alphabet is where the code points come from:
	//   - ascii: printable ASCII, quote and backslash included;
	//   - unicode: any Unicode scalar value, drawn evenly from the 1-, 2-,
	//     3- and 4-byte UTF-8 ranges (control characters and U+0000
	//     included; surrogates are not scalar values);
	//   - hostile: a set chosen to break parsers and collations: U+0000 and
	//     other control characters, quote, backslash, slash, combining marks
	//     (U+0300, U+0301, U+036F) and a precomposed é, U+2028, U+2029,
	//     U+FEFF, U+FFFD, U+FFFF, 4-byte code points up to U+10FFFF, and a
	//     lone surrogate escape (which JSON decoders read as U+FFFD);
	//   - small: a, b and U+0000, so that strings often share prefixes or
	//     are equal.
	// Every alphabet is written with JSON escapes chosen at random where
	// JSON allows a choice (\u escapes, surrogate pairs, \/, \n or \u000a),
	// so the same string has many spellings. Default ascii.
	Alphabet string `yaml:"alphabet"`
	// Length is the distribution of lengths in code points (the limit is
	// the document size limit, 20 MiB). Default uniform in [0, 16].
	Length SizeDist `yaml:"length"`
}

// NumberGen shapes generated numbers.
type NumberGen struct {
	// Min and Max bound a uniform draw; both finite, Min ≤ Max. Default
	// -1e6 and 1e6.
	Min float64 `yaml:"min"`
	Max float64 `yaml:"max"`
	// Integer rounds the draw to an integer. Default false.
	Integer bool `yaml:"integer"`
	// Extremes is the probability, in [0,1], that a number is instead one
	// of the values at the edges of float64 and int64, written as JSON
	// spells them in the wild: ±1e308, ±MaxFloat64, 0, -0, -0.0, the
	// smallest subnormals, values that underflow to 0, 2^53-1, 2^53,
	// 2^53+1 (which a float64 cannot hold), the exact int64 bounds and
	// 2^63. Min and Max do not apply to them. Default 0.
	Extremes float64 `yaml:"extremes"`
}

// Alphabets of StringGen.
const (
	AlphabetASCII   = "ascii"
	AlphabetUnicode = "unicode"
	AlphabetHostile = "hostile"
	AlphabetSmall   = "small"
)

var alphabets = []string{AlphabetASCII, AlphabetUnicode, AlphabetHostile, AlphabetSmall}

// builtinFields are the generator's own top-level fields; an extra field
// may not start with one.
var builtinFields = []string{"name", "age", "city", "active", "address", "tags", "score", "padding"}

// DefaultFieldGen is an extra field at path with every setting at its
// default.
func DefaultFieldGen(path string) FieldGen {
	return FieldGen{
		Path:   path,
		Types:  TypeMix{String: 1},
		String: StringGen{Alphabet: AlphabetASCII, Length: SizeDist{Dist: "uniform", Max: 16}},
		Number: NumberGen{Min: -1e6, Max: 1e6},
		Depth:  3,
		Items:  4,
	}
}

// UnmarshalYAML decodes an entry on top of the defaults, so what it leaves
// out is the default and what it writes (an explicit 0 included) is
// checked by Validate.
func (f *FieldGen) UnmarshalYAML(unmarshal func(any) error) error {
	type plain FieldGen
	p := plain(DefaultFieldGen(""))
	if err := unmarshal(&p); err != nil {
		return err
	}
	*f = FieldGen(p)
	return nil
}

// ensureDefaults fills the settings whose zero value is no valid value
// (a Go caller's zero FieldGen): the type mix, the alphabet and the length
// distribution. Depth, Items and Number keep their zeros, which are valid.
func (f *FieldGen) ensureDefaults() {
	d := DefaultFieldGen(f.Path)
	if f.Types == (TypeMix{}) {
		f.Types = d.Types
	}
	if f.String.Alphabet == "" {
		f.String.Alphabet = d.String.Alphabet
	}
	if f.String.Length == (SizeDist{}) {
		f.String.Length = d.String.Length
	}
}

// validate checks one extra field; path is its place in the spec
// ("fields.extra[2]").
func (f *FieldGen) validate(path string) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("workload.%s.%s: %s", path, field, fmt.Sprintf(format, args...))
	}
	if !defn.ValidPath(f.Path) {
		return bad("path", "%q is not a dotted field path", f.Path)
	}
	head, _, _ := strings.Cut(f.Path, ".")
	if slices.Contains(builtinFields, head) {
		return bad("path", "%q starts with the built-in field %q", f.Path, head)
	}
	if !(f.Missing >= 0 && f.Missing <= 1) {
		return bad("missing", "must be in [0,1], got %v", f.Missing)
	}
	t := f.Types
	sum := 0.0
	for _, w := range []struct {
		name string
		v    float64
	}{{"number", t.Number}, {"string", t.String}, {"null", t.Null}, {"bool", t.Bool}, {"array", t.Array}, {"object", t.Object}} {
		if !(w.v >= 0) || math.IsInf(w.v, 0) {
			return bad("types."+w.name, "must be a finite weight ≥ 0, got %v", w.v)
		}
		sum += w.v
	}
	if !(sum > 0) || math.IsInf(sum, 0) {
		return bad("types", "needs a positive weight and a finite sum, got sum %v", sum)
	}
	if f.Depth == 0 && t.Number+t.String+t.Null+t.Bool == 0 {
		return bad("depth", "0 allows scalars only, but types gives them no weight")
	}
	if !slices.Contains(alphabets, f.String.Alphabet) {
		return bad("string.alphabet", "must be one of %s, got %q", strings.Join(alphabets, ", "), f.String.Alphabet)
	}
	if err := f.String.Length.validate(path + ".string.length"); err != nil {
		return err
	}
	n := f.Number
	if math.IsNaN(n.Min) || math.IsInf(n.Min, 0) || math.IsNaN(n.Max) || math.IsInf(n.Max, 0) || n.Min > n.Max {
		return bad("number", "min and max must be finite with min ≤ max, got min %v, max %v", n.Min, n.Max)
	}
	if n.Integer && math.Ceil(n.Min) > math.Floor(n.Max) {
		return bad("number", "no integer lies between min %v and max %v", n.Min, n.Max)
	}
	if !(n.Extremes >= 0 && n.Extremes <= 1) {
		return bad("number.extremes", "must be in [0,1], got %v", n.Extremes)
	}
	if f.Depth < 0 || f.Depth > 64 {
		return bad("depth", "must be in 0..64, got %d", f.Depth)
	}
	if f.Items < 0 || f.Items > 1000 {
		return bad("items", "must be in 0..1000, got %d", f.Items)
	}
	return nil
}

// explicitZeros names an extra field's setting written as 0 where 0 is out
// of range (its types block, say); entries start from the defaults, so a
// zero there was written in the file.
func (f *FieldGen) explicitZero() (field, want string) {
	switch {
	case f.Types == (TypeMix{}):
		return "types", "a positive weight"
	case f.String.Length == (SizeDist{}):
		return "string.length", "a distribution"
	}
	return "", ""
}

// validateExtra checks the extra fields together: no path is another's or
// lies under another's, since one document cannot hold both.
func validateExtra(extra []FieldGen) error {
	for i := range extra {
		p := fmt.Sprintf("fields.extra[%d]", i)
		if err := extra[i].validate(p); err != nil {
			return err
		}
		for j := range i {
			a, b := extra[j].Path, extra[i].Path
			if a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(b, a+".") {
				return fmt.Errorf("workload.%s.path: %q overlaps fields.extra[%d] (%q)", p, b, j, a)
			}
		}
	}
	return nil
}

// extraNode is one object of the tree the extra fields' paths make: the
// document's top level, or an intermediate object. A leaf has gen set.
type extraNode struct {
	name     string
	gen      *FieldGen
	cum      [6]float64 // gen's cumulative type weights, normalised
	children []*extraNode
}

func newExtraTree(extra []FieldGen) *extraNode {
	root := &extraNode{}
	for i := range extra {
		n := root
		for _, name := range strings.Split(extra[i].Path, ".") {
			var next *extraNode
			for _, c := range n.children {
				if c.name == name {
					next = c
				}
			}
			if next == nil {
				next = &extraNode{name: name}
				n.children = append(n.children, next)
			}
			n = next
		}
		n.gen = &extra[i]
		t := extra[i].Types
		w := [6]float64{t.Number, t.String, t.Null, t.Bool, t.Array, t.Object}
		sum := t.Number + t.String + t.Null + t.Bool + t.Array + t.Object
		acc := 0.0
		for k, v := range w {
			acc += v
			n.cum[k] = acc / sum
		}
	}
	return root
}

// appendExtra appends the extra fields under node n (the top level's
// children) as members of an object being written in buf, each preceded
// by a comma unless it is the object's first member (first).
func appendExtra(buf []byte, r *rand.Rand, n *extraNode, first bool) ([]byte, bool) {
	for _, c := range n.children {
		if c.gen != nil && c.gen.Missing > 0 && r.Float64() < c.gen.Missing {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendJSONString(buf, r, c.name)
		buf = append(buf, ':')
		if c.gen == nil {
			buf = append(buf, '{')
			buf, _ = appendExtra(buf, r, c, true)
			buf = append(buf, '}')
			continue
		}
		buf = appendValue(buf, r, c, 0)
	}
	return buf, first
}

// Kinds of a generated value, in TypeMix order.
const (
	genNumber = iota
	genString
	genNull
	genBool
	genArray
	genObject
)

// appendValue appends one value of leaf n's content at nesting depth d.
func appendValue(buf []byte, r *rand.Rand, n *extraNode, d int) []byte {
	g := n.gen
	u := r.Float64()
	kind := genNumber
	for kind < genObject && u >= n.cum[kind] {
		kind++
	}
	if d >= g.Depth && kind >= genArray {
		// Containers are out at the deepest level: redraw among the
		// scalars by their weights.
		scalars := n.cum[genBool]
		u = r.Float64() * scalars
		kind = genNumber
		for kind < genBool && u >= n.cum[kind] {
			kind++
		}
	}
	switch kind {
	case genNumber:
		return appendNumber(buf, r, &g.Number)
	case genString:
		return appendString(buf, r, &g.String, drawSize(r, &g.String.Length))
	case genNull:
		return append(buf, "null"...)
	case genBool:
		return strconv.AppendBool(buf, r.IntN(2) == 0)
	case genArray:
		buf = append(buf, '[')
		for i, k := 0, r.IntN(g.Items+1); i < k; i++ {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendValue(buf, r, n, d+1)
		}
		return append(buf, ']')
	}
	buf = append(buf, '{')
	for i, k := 0, r.IntN(g.Items+1); i < k; i++ {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, r, &g.String, min(drawSize(r, &g.String.Length), 8))
		buf = append(buf, ':')
		buf = appendValue(buf, r, n, d+1)
	}
	return append(buf, '}')
}

// drawSize draws from a size distribution (validated).
func drawSize(r *rand.Rand, d *SizeDist) int {
	switch d.Dist {
	case "uniform":
		return d.Min + r.IntN(d.Max-d.Min+1)
	case "normal":
		v := int(float64(d.Mean) + r.NormFloat64()*float64(d.Stddev))
		v = max(v, d.Min, 0)
		if d.Max > 0 {
			v = min(v, d.Max)
		}
		return v
	}
	return d.Mean
}

// extremeNumbers are the hard numbers, as JSON texts.
var extremeNumbers = []string{
	"1e308", "-1e308", "1.7976931348623157e308", "-1.7976931348623157E+308",
	"0", "-0", "-0.0", "0e0", "5e-324", "-5e-324", "2.2250738585072014e-308",
	"1e-400", "-1e-400", // underflow to ±0
	"9007199254740991", "9007199254740992", "9007199254740993", "-9007199254740993",
	"-9223372036854775808", "9223372036854775807", "9223372036854775808",
	"18446744073709551615", "0.1", "100000000000000000000000",
}

// appendNumber appends a JSON number drawn from g.
func appendNumber(buf []byte, r *rand.Rand, g *NumberGen) []byte {
	if g.Extremes > 0 && r.Float64() < g.Extremes {
		return append(buf, extremeNumbers[r.IntN(len(extremeNumbers))]...)
	}
	u := r.Float64()
	// min·(1-u) + max·u cannot overflow where min + u·(max-min) can
	// (-1e308..1e308), and stays in [min, max].
	v := g.Min*(1-u) + g.Max*u
	v = max(min(v, g.Max), g.Min)
	if g.Integer {
		v = math.Round(v)
		if v > g.Max {
			v = math.Floor(g.Max)
		} else if v < g.Min {
			v = math.Ceil(g.Min)
		}
		if math.Abs(v) < 1<<63 {
			return strconv.AppendInt(buf, int64(v), 10)
		}
	}
	// Spell it one of three ways; 'f' only where it stays short.
	switch k := r.IntN(3); {
	case k == 0 && math.Abs(v) < 1e21:
		return strconv.AppendFloat(buf, v, 'f', -1, 64)
	case k == 1:
		return strconv.AppendFloat(buf, v, 'e', -1, 64)
	}
	return strconv.AppendFloat(buf, v, 'g', -1, 64)
}

// hostileRunes are the hostile alphabet; -1 stands for a lone surrogate
// escape.
var hostileRunes = []rune{
	0, 1, 0x1f, '"', '\\', '/', 0x7f, 'a', 'A', 0x80,
	0x300, 0x301, 0x36f, 0xe9, 0x2028, 0x2029, 0xfeff, 0xfffd, 0xffff,
	0x10000, 0x1f600, 0x10ffff, -1,
}

// appendString appends a JSON string of n code points from g's alphabet.
func appendString(buf []byte, r *rand.Rand, g *StringGen, n int) []byte {
	buf = append(buf, '"')
	for range n {
		var c rune
		switch g.Alphabet {
		case AlphabetASCII:
			c = rune(0x20 + r.IntN(0x7f-0x20))
		case AlphabetSmall:
			c = rune("ab\x00"[r.IntN(3)])
		case AlphabetHostile:
			c = hostileRunes[r.IntN(len(hostileRunes))]
		default:
			c = randomScalar(r)
		}
		buf = appendJSONRune(buf, r, c)
	}
	return append(buf, '"')
}

// randomScalar draws a Unicode scalar value evenly from the 1-, 2-, 3- and
// 4-byte UTF-8 ranges.
func randomScalar(r *rand.Rand) rune {
	switch r.IntN(4) {
	case 0:
		return rune(r.IntN(0x80))
	case 1:
		return rune(0x80 + r.IntN(0x800-0x80))
	case 2:
		c := rune(0x800 + r.IntN(0x10000-0x800-0x800))
		if c >= 0xd800 {
			c += 0x800 // past the surrogates
		}
		return c
	}
	return rune(0x10000 + r.IntN(utf8.MaxRune+1-0x10000))
}

// appendJSONString appends s as a JSON string, escaping at random where
// JSON allows it.
func appendJSONString(buf []byte, r *rand.Rand, s string) []byte {
	buf = append(buf, '"')
	for _, c := range s {
		buf = appendJSONRune(buf, r, c)
	}
	return append(buf, '"')
}

// appendJSONRune appends code point c inside a JSON string: escaped where
// JSON requires it, and otherwise escaped one time in four. c = -1 is a
// lone surrogate escape.
func appendJSONRune(buf []byte, r *rand.Rand, c rune) []byte {
	if c < 0 {
		return append(buf, `\udc00`...)
	}
	escape := r.IntN(4) == 0
	switch c {
	case '"', '\\':
		if escape {
			return appendUEscape(buf, c)
		}
		return append(buf, '\\', byte(c))
	case '/':
		if escape {
			return append(buf, '\\', '/')
		}
	case '\n', '\t', '\r', '\b', '\f':
		if !escape {
			return append(buf, '\\', "ntrbf"[strings.IndexRune("\n\t\r\b\f", c)])
		}
		return appendUEscape(buf, c)
	}
	if c < 0x20 || escape {
		return appendUEscape(buf, c)
	}
	return utf8.AppendRune(buf, c)
}

// appendUEscape appends c as \uXXXX, or as a surrogate pair of them above
// the BMP.
func appendUEscape(buf []byte, c rune) []byte {
	const hex = "0123456789abcdef"
	one := func(buf []byte, u rune) []byte {
		return append(buf, '\\', 'u', hex[u>>12&15], hex[u>>8&15], hex[u>>4&15], hex[u&15])
	}
	if c < 0x10000 {
		return one(buf, c)
	}
	c -= 0x10000
	return one(one(buf, 0xd800+(c>>10)), 0xdc00+(c&0x3ff))
}
