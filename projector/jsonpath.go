package projector

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/idxbench/idxbench/workload/defn"
)

// This file is the projector's JSON reader. It does not unmarshal whole
// documents: a fieldTree holds every dotted field path the instances need,
// and one pass over the document validates it and decodes only the values
// at those paths, skipping everything else without allocating.
//
// Its answers are those of encoding/json decoding into an any and walking
// the path (FuzzExtract checks this): the document must be valid JSON as a
// whole; a repeated key's last occurrence wins; strings unescape the same way
// (invalid UTF-8 and lone surrogates become U+FFFD); numbers are float64 and
// one that overflows float64 is an error; nesting deeper than maxJSONDepth is
// an error. A path through a non-object, or into an array, is missing.

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

// jkind is the kind of an extracted value.
type jkind uint8

const (
	jMissing jkind = iota // the zero jval is missing
	jNull
	jFalse
	jTrue
	jNumber
	jString
	jOther // an array or object, decoded into v
)

// jval is an extracted field value. Scalars are held unboxed so extraction
// does not allocate for them; str may alias the document, so a jval is only
// valid while the document is (the projector encodes keys from it and
// clears it within Handle).
type jval struct {
	kind jkind
	num  float64
	str  string
	v    any // jOther: []any or map[string]any
}

// toAny returns the value as the defn value types.
func (j *jval) toAny() any {
	switch j.kind {
	case jNull:
		return nil
	case jFalse:
		return false
	case jTrue:
		return true
	case jNumber:
		return j.num
	case jString:
		return j.str
	case jOther:
		return j.v
	}
	return defn.Missing
}

// jvalOf converts a decoded value (from inside a container) to a jval.
func jvalOf(v any) jval {
	switch v := v.(type) {
	case nil:
		return jval{kind: jNull}
	case bool:
		if v {
			return jval{kind: jTrue}
		}
		return jval{kind: jFalse}
	case float64:
		return jval{kind: jNumber, num: v}
	case string:
		return jval{kind: jString, str: v}
	case defn.MissingValue:
		return jval{}
	}
	return jval{kind: jOther, v: v}
}

// fieldTree is a compiled set of dotted field paths. Each distinct path owns
// a slot in the values slice extract fills.
type fieldTree struct {
	root   fieldNode
	nslots int
}

type fieldNode struct {
	name     string
	slot     int // -1 when no path ends here
	children []*fieldNode
	// subtree lists every slot at or below this node, so a repeated key can
	// reset what an earlier occurrence set.
	subtree []int
}

// newFieldTree compiles paths (already validated by defn.ValidPath) and
// returns the tree and the slot of each path; equal paths share a slot.
func newFieldTree(paths []string) (*fieldTree, []int) {
	t := &fieldTree{root: fieldNode{slot: -1}}
	slots := make([]int, len(paths))
	for i, p := range paths {
		n := &t.root
		for _, name := range strings.Split(p, ".") {
			n = n.child(name)
		}
		if n.slot < 0 {
			n.slot = t.nslots
			t.nslots++
		}
		slots[i] = n.slot
	}
	t.root.collect()
	return t, slots
}

func (n *fieldNode) child(name string) *fieldNode {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	c := &fieldNode{name: name, slot: -1}
	n.children = append(n.children, c)
	return c
}

func (n *fieldNode) collect() []int {
	n.subtree = n.subtree[:0]
	if n.slot >= 0 {
		n.subtree = append(n.subtree, n.slot)
	}
	for _, c := range n.children {
		n.subtree = append(n.subtree, c.collect()...)
	}
	return n.subtree
}

// noFields is the node of an object no path enters. It is never modified.
var noFields = &fieldNode{slot: -1}

func (n *fieldNode) lookup(name []byte) *fieldNode {
	for _, c := range n.children {
		if c.name == string(name) {
			return c
		}
	}
	return nil
}

// jsonReader holds the state of one extraction; the projector keeps one and
// reuses its scratch space.
type jsonReader struct {
	data    []byte
	pos     int
	depth   int
	vals    []jval
	scratch []byte
}

// extract validates doc and sets vals[slot] (len(vals) ≥ t.nslots) to the
// value at each path, missing where there is none. On error the values are
// unspecified. String values may alias doc.
func (r *jsonReader) extract(t *fieldTree, doc []byte, vals []jval) error {
	clear(vals[:t.nslots])
	r.data, r.pos, r.depth, r.vals = doc, 0, 0, vals
	defer func() { r.data, r.vals = nil, nil }()
	r.ws()
	var err error
	if r.pos < len(r.data) && r.data[r.pos] == '{' && len(t.root.children) > 0 {
		err = r.object(&t.root)
	} else {
		err = r.skip()
	}
	if err != nil {
		return err
	}
	r.ws()
	if r.pos != len(r.data) {
		return r.errorf("invalid character %q after top-level value", r.data[r.pos])
	}
	return nil
}

func (r *jsonReader) errorf(format string, args ...any) error {
	return fmt.Errorf("json: offset %d: %s", r.pos, fmt.Sprintf(format, args...))
}

func (r *jsonReader) errEOF() error {
	return fmt.Errorf("json: unexpected end of input at offset %d", r.pos)
}

func (r *jsonReader) ws() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// field handles the value at r.pos for node n (nil: a value no path needs).
func (r *jsonReader) field(n *fieldNode) error {
	if n == nil {
		return r.skip()
	}
	for _, s := range n.subtree {
		r.vals[s] = jval{} // a repeated key replaces the earlier value
	}
	if n.slot >= 0 {
		if err := r.leaf(&r.vals[n.slot]); err != nil {
			return err
		}
		if m, ok := r.vals[n.slot].v.(map[string]any); ok {
			for _, c := range n.children {
				r.fillFrom(c, m)
			}
		}
		return nil
	}
	if r.pos < len(r.data) && r.data[r.pos] == '{' {
		return r.object(n)
	}
	return r.skip()
}

// fillFrom sets the slots below n from an already decoded object.
func (r *jsonReader) fillFrom(n *fieldNode, m map[string]any) {
	v, ok := m[n.name]
	if !ok {
		return
	}
	if n.slot >= 0 {
		r.vals[n.slot] = jvalOf(v)
	}
	if m, ok := v.(map[string]any); ok {
		for _, c := range n.children {
			r.fillFrom(c, m)
		}
	}
}

// object walks the object at r.pos, handing the values of n's children to
// field and skipping the rest.
func (r *jsonReader) object(n *fieldNode) error {
	if r.depth++; r.depth > maxJSONDepth {
		return r.errorf("exceeded max depth")
	}
	r.pos++ // '{'
	r.ws()
	if r.pos < len(r.data) && r.data[r.pos] == '}' {
		r.pos++
		r.depth--
		return nil
	}
	for {
		if r.pos >= len(r.data) {
			return r.errEOF()
		}
		if r.data[r.pos] != '"' {
			return r.errorf("invalid character %q looking for beginning of object key string", r.data[r.pos])
		}
		key, err := r.key()
		if err != nil {
			return err
		}
		r.ws()
		if r.pos >= len(r.data) {
			return r.errEOF()
		}
		if r.data[r.pos] != ':' {
			return r.errorf("invalid character %q after object key", r.data[r.pos])
		}
		r.pos++
		r.ws()
		if err := r.field(n.lookup(key)); err != nil {
			return err
		}
		r.ws()
		if r.pos >= len(r.data) {
			return r.errEOF()
		}
		switch r.data[r.pos] {
		case ',':
			r.pos++
			r.ws()
		case '}':
			r.pos++
			r.depth--
			return nil
		default:
			return r.errorf("invalid character %q after object key:value pair", r.data[r.pos])
		}
	}
}

// key scans the object key at r.pos and returns it unescaped. The result is
// valid until the next call.
func (r *jsonReader) key() ([]byte, error) {
	start := r.pos + 1
	esc, err := r.scanString()
	if err != nil {
		return nil, err
	}
	raw := r.data[start : r.pos-1]
	if !esc {
		return raw, nil
	}
	r.scratch = appendUnquoted(r.scratch[:0], raw)
	return r.scratch, nil
}

// strByte marks the bytes a string may hold without a closer look: not
// '"', not '\\', not a control character.
var strByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString validates the string at r.pos (on its opening quote), moves
// past it and reports whether it holds escapes or bytes that unquoting
// changes (invalid UTF-8 is replaced, so it counts).
func (r *jsonReader) scanString() (changed bool, err error) {
	d := r.data
	start := r.pos + 1
	i := start
	nonASCII := false
	for {
		// Eight bytes at a time while none is special: below 0x20, '"',
		// '\\' or non-ASCII (the exact checks are left to the byte loop).
		for i+8 <= len(d) {
			w := binary.LittleEndian.Uint64(d[i:])
			if (hasLess(w, 0x20)|hasZero(w^(lsb*'"'))|hasZero(w^(lsb*'\\')))|w&msb != 0 {
				break
			}
			i += 8
		}
		for i < len(d) && strByte[d[i]] {
			if d[i] >= utf8.RuneSelf {
				nonASCII = true
			}
			i++
		}
		if i >= len(d) {
			r.pos = i
			return false, r.errEOF()
		}
		switch c := d[i]; {
		case c == '"':
			r.pos = i + 1
			if !changed && nonASCII && !utf8.Valid(d[start:i]) {
				changed = true // invalid UTF-8 becomes U+FFFD
			}
			return changed, nil
		case c == '\\':
			changed = true
			if i+1 >= len(d) {
				r.pos = i + 1
				return false, r.errEOF()
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := 0; k < 4; k++ {
					if i+2+k >= len(d) {
						r.pos = len(d)
						return false, r.errEOF()
					}
					if !isHex(d[i+2+k]) {
						r.pos = i + 2 + k
						return false, r.errorf("invalid character %q in \\u hexadecimal character escape", d[i+2+k])
					}
				}
				i += 6
			default:
				r.pos = i + 1
				return false, r.errorf("invalid character %q in string escape code", d[i+1])
			}
		default:
			r.pos = i
			return false, r.errorf("invalid character %q in string literal", c)
		}
	}
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasZero is nonzero when some byte of w is zero, hasLess when some byte is
// below n (n ≤ 128); both are exact as to whether, not which.
func hasZero(w uint64) uint64    { return (w - lsb) & ^w & msb }
func hasLess(w, n uint64) uint64 { return (w - lsb*n) & ^w & msb }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// appendUnquoted appends the unescaped form of raw, a validated string body,
// the way encoding/json does.
func appendUnquoted(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			switch raw[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := hex4(raw[i+2:])
				i += 6
				if utf16.IsSurrogate(rr) {
					rr1 := rune(-1)
					if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						rr1 = hex4(raw[i+2:])
					}
					if dec := utf16.DecodeRune(rr, rr1); dec != unicode.ReplacementChar {
						dst = utf8.AppendRune(dst, dec)
						i += 6
						continue
					}
					rr = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, raw[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			rr, size := utf8.DecodeRune(raw[i:])
			if rr == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, raw[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

// hex4 decodes four validated hex digits.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// skip validates and moves past the value at r.pos.
func (r *jsonReader) skip() error {
	if r.pos >= len(r.data) {
		return r.errEOF()
	}
	switch c := r.data[r.pos]; c {
	case '"':
		_, err := r.scanString()
		return err
	case '{':
		return r.object(noFields)
	case '[':
		return r.array(nil)
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			_, err := r.number(false)
			return err
		}
		return r.errorf("invalid character %q looking for beginning of value", c)
	}
}

func (r *jsonReader) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		if r.pos >= len(r.data) {
			return r.errEOF()
		}
		if r.data[r.pos] != lit[i] {
			return r.errorf("invalid character %q in literal %s", r.data[r.pos], lit)
		}
		r.pos++
	}
	return nil
}

// array walks the array at r.pos; with out non-nil it decodes the elements
// and appends them to *out.
func (r *jsonReader) array(out *[]any) error {
	if r.depth++; r.depth > maxJSONDepth {
		return r.errorf("exceeded max depth")
	}
	r.pos++ // '['
	r.ws()
	if r.pos < len(r.data) && r.data[r.pos] == ']' {
		r.pos++
		r.depth--
		return nil
	}
	for {
		if out != nil {
			v, err := r.decode()
			if err != nil {
				return err
			}
			*out = append(*out, v)
		} else if err := r.skip(); err != nil {
			return err
		}
		r.ws()
		if r.pos >= len(r.data) {
			return r.errEOF()
		}
		switch r.data[r.pos] {
		case ',':
			r.pos++
			r.ws()
		case ']':
			r.pos++
			r.depth--
			return nil
		default:
			return r.errorf("invalid character %q after array element", r.data[r.pos])
		}
	}
}

// number scans the number at r.pos; with decode it returns its value.
// Without, it still fails for numbers that overflow float64, as
// encoding/json does.
func (r *jsonReader) number(decode bool) (float64, error) {
	d := r.data
	start, i := r.pos, r.pos
	neg := false
	if d[i] == '-' {
		neg = true
		i++
	}
	intStart := i
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	case i >= len(d):
		r.pos = i
		return 0, r.errEOF()
	default:
		r.pos = i
		return 0, r.errorf("invalid character %q in numeric literal", d[i])
	}
	intDigits := i - intStart
	simple := true
	if i < len(d) && d[i] == '.' {
		simple = false
		i++
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			r.pos = i
			if i >= len(d) {
				return 0, r.errEOF()
			}
			return 0, r.errorf("invalid character %q after decimal point in numeric literal", d[i])
		}
	}
	exp := false
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		simple, exp = false, true
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			r.pos = i
			if i >= len(d) {
				return 0, r.errEOF()
			}
			return 0, r.errorf("invalid character %q in exponent of numeric literal", d[i])
		}
	}
	r.pos = i
	if simple && intDigits <= 15 {
		// Exact in a float64: no need for strconv.
		var n int64
		for _, c := range d[intStart:i] {
			n = n*10 + int64(c-'0')
		}
		f := float64(n)
		if neg {
			f = -f
			if n == 0 {
				f = math.Copysign(0, -1)
			}
		}
		return f, nil
	}
	if !decode && !exp && intDigits < 300 {
		return 0, nil // cannot overflow
	}
	// strconv clones the string into any error it returns, so the unsafe
	// view of d does not escape.
	f, err := strconv.ParseFloat(unsafe.String(&d[start], i-start), 64)
	if err != nil {
		return 0, fmt.Errorf("json: number %s at offset %d: %w", d[start:i], start, err)
	}
	return f, nil
}

// leaf decodes the value at r.pos into j, scalars without allocating
// (a string without escapes aliases the document).
func (r *jsonReader) leaf(j *jval) error {
	if r.pos >= len(r.data) {
		return r.errEOF()
	}
	switch c := r.data[r.pos]; c {
	case '"':
		start := r.pos + 1
		changed, err := r.scanString()
		if err != nil {
			return err
		}
		raw := r.data[start : r.pos-1]
		j.kind = jString
		switch {
		case changed:
			j.str = string(appendUnquoted(make([]byte, 0, len(raw)), raw))
		case len(raw) > 0:
			j.str = unsafe.String(&raw[0], len(raw))
		default:
			j.str = ""
		}
		return nil
	case 't':
		j.kind = jTrue
		return r.literal("true")
	case 'f':
		j.kind = jFalse
		return r.literal("false")
	case 'n':
		j.kind = jNull
		return r.literal("null")
	case '{', '[':
		v, err := r.decode()
		j.kind, j.v = jOther, v
		return err
	default:
		if c == '-' || c >= '0' && c <= '9' {
			f, err := r.number(true)
			j.kind, j.num = jNumber, f
			return err
		}
		return r.errorf("invalid character %q looking for beginning of value", c)
	}
}

// decode decodes the value at r.pos to the defn value types.
func (r *jsonReader) decode() (any, error) {
	if r.pos >= len(r.data) {
		return nil, r.errEOF()
	}
	switch c := r.data[r.pos]; c {
	case '"':
		start := r.pos + 1
		changed, err := r.scanString()
		if err != nil {
			return nil, err
		}
		raw := r.data[start : r.pos-1]
		if !changed {
			return string(raw), nil
		}
		return string(appendUnquoted(make([]byte, 0, len(raw)), raw)), nil
	case '{':
		return r.decodeObject()
	case '[':
		out := []any{}
		if err := r.array(&out); err != nil {
			return nil, err
		}
		return out, nil
	case 't':
		return true, r.literal("true")
	case 'f':
		return false, r.literal("false")
	case 'n':
		return nil, r.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return r.number(true)
		}
		return nil, r.errorf("invalid character %q looking for beginning of value", c)
	}
}

func (r *jsonReader) decodeObject() (any, error) {
	if r.depth++; r.depth > maxJSONDepth {
		return nil, r.errorf("exceeded max depth")
	}
	m := map[string]any{}
	r.pos++ // '{'
	r.ws()
	if r.pos < len(r.data) && r.data[r.pos] == '}' {
		r.pos++
		r.depth--
		return m, nil
	}
	for {
		if r.pos >= len(r.data) {
			return nil, r.errEOF()
		}
		if r.data[r.pos] != '"' {
			return nil, r.errorf("invalid character %q looking for beginning of object key string", r.data[r.pos])
		}
		key, err := r.key()
		if err != nil {
			return nil, err
		}
		k := string(key)
		r.ws()
		if r.pos >= len(r.data) {
			return nil, r.errEOF()
		}
		if r.data[r.pos] != ':' {
			return nil, r.errorf("invalid character %q after object key", r.data[r.pos])
		}
		r.pos++
		r.ws()
		v, err := r.decode()
		if err != nil {
			return nil, err
		}
		m[k] = v
		r.ws()
		if r.pos >= len(r.data) {
			return nil, r.errEOF()
		}
		switch r.data[r.pos] {
		case ',':
			r.pos++
			r.ws()
		case '}':
			r.pos++
			r.depth--
			return m, nil
		default:
			return nil, r.errorf("invalid character %q after object key:value pair", r.data[r.pos])
		}
	}
}
