package collate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/idxbench/idxbench/workload/defn"
)

// Kind tags: the first byte of every encoded value. Their order is the
// collation order of kinds. 0x00 is kept free for terminators.
const (
	tagMissing byte = 0x01
	tagNull    byte = 0x02
	tagFalse   byte = 0x03
	tagTrue    byte = 0x04
	tagNumber  byte = 0x05
	tagString  byte = 0x06
	tagArray   byte = 0x07
	tagObject  byte = 0x08

	// terminator ends arrays and objects; strings end with terminator
	// followed by strEnd, and an 0x00 byte inside a string is written as
	// terminator followed by strEscape.
	terminator byte = 0x00
	strEnd     byte = 0x01
	strEscape  byte = 0xFF
)

// maxDepth bounds the nesting of arrays and objects Decode accepts, so a
// hostile input cannot exhaust the stack. Encoding has no such limit: the
// values it sees come from decoded JSON, which has its own.
const maxDepth = 10000

// ErrCorrupt is returned (wrapped) by the decoders for bytes that are not a
// valid encoding.
var ErrCorrupt = errors.New("collate: corrupt encoding")

// AppendValue appends the encoding of v to dst. v must be nil, bool,
// float64, string, []any, map[string]any or defn.Missing, nested likewise;
// numbers must be finite.
func AppendValue(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, tagNull), nil
	case defn.MissingValue:
		return append(dst, tagMissing), nil
	case bool:
		if v {
			return append(dst, tagTrue), nil
		}
		return append(dst, tagFalse), nil
	case float64:
		return AppendNumber(dst, v)
	case string:
		return AppendString(dst, v), nil
	case []any:
		dst = append(dst, tagArray)
		for i, e := range v {
			var err error
			if dst, err = AppendValue(dst, e); err != nil {
				return dst, fmt.Errorf("array element %d: %w", i, err)
			}
		}
		return append(dst, terminator), nil
	case map[string]any:
		dst = append(dst, tagObject)
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			dst = AppendString(dst, k)
			var err error
			if dst, err = AppendValue(dst, v[k]); err != nil {
				return dst, fmt.Errorf("object field %q: %w", k, err)
			}
		}
		return append(dst, terminator), nil
	}
	return dst, fmt.Errorf("collate: cannot encode a value of type %T", v)
}

// AppendNumber appends the encoding of the number f. It fails for NaN and
// ±Inf, which JSON cannot express.
func AppendNumber(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, fmt.Errorf("collate: %v is not a JSON number", f)
	}
	if f == 0 {
		f = 0 // -0 collates equal to +0, so both encode as +0
	}
	bits := math.Float64bits(f)
	if bits&(1<<63) != 0 {
		bits = ^bits
	} else {
		bits |= 1 << 63
	}
	dst = append(dst, tagNumber)
	return binary.BigEndian.AppendUint64(dst, bits), nil
}

// AppendString appends the encoding of the string s.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, tagString)
	for {
		i := indexZero(s)
		if i < 0 {
			dst = append(dst, s...)
			break
		}
		dst = append(dst, s[:i]...)
		dst = append(dst, terminator, strEscape)
		s = s[i+1:]
	}
	return append(dst, terminator, strEnd)
}

// AppendStringBytes appends the encoding of the string whose bytes are b
// (a document id, say) without converting it to a string first.
func AppendStringBytes(dst []byte, b []byte) []byte {
	dst = append(dst, tagString)
	for {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			dst = append(dst, b...)
			break
		}
		dst = append(dst, b[:i]...)
		dst = append(dst, terminator, strEscape)
		b = b[i+1:]
	}
	return append(dst, terminator, strEnd)
}

func indexZero(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// AppendComposite appends the encoding of a composite key: the
// concatenation of the encodings of vs.
func AppendComposite(dst []byte, vs []any) ([]byte, error) {
	for i, v := range vs {
		var err error
		if dst, err = AppendValue(dst, v); err != nil {
			return dst, fmt.Errorf("key component %d: %w", i, err)
		}
	}
	return dst, nil
}

// Decode splits b into its components and decodes each. An empty b is the
// empty composite.
func Decode(b []byte) ([]any, error) {
	var vs []any
	for len(b) > 0 {
		v, rest, err := DecodeValue(b)
		if err != nil {
			return nil, fmt.Errorf("key component %d: %w", len(vs), err)
		}
		vs = append(vs, v)
		b = rest
	}
	return vs, nil
}

// DecodeValue decodes the value at the start of b and returns it with the
// bytes that follow it.
func DecodeValue(b []byte) (v any, rest []byte, err error) {
	return decodeValue(b, 0)
}

// Next returns the length of the encoded value at the start of b, so a
// caller can split a composite key without decoding it.
func Next(b []byte) (int, error) {
	_, rest, err := decodeValue(b, 0)
	if err != nil {
		return 0, err
	}
	return len(b) - len(rest), nil
}

func decodeValue(b []byte, depth int) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: value expected, input ends", ErrCorrupt)
	}
	if depth > maxDepth {
		return nil, nil, fmt.Errorf("%w: nested deeper than %d", ErrCorrupt, maxDepth)
	}
	switch tag := b[0]; tag {
	case tagMissing:
		return defn.Missing, b[1:], nil
	case tagNull:
		return nil, b[1:], nil
	case tagFalse:
		return false, b[1:], nil
	case tagTrue:
		return true, b[1:], nil
	case tagNumber:
		if len(b) < 9 {
			return nil, nil, fmt.Errorf("%w: truncated number", ErrCorrupt)
		}
		bits := binary.BigEndian.Uint64(b[1:9])
		if bits&(1<<63) != 0 {
			bits &^= 1 << 63
		} else {
			bits = ^bits
		}
		f := math.Float64frombits(bits)
		if math.IsNaN(f) || math.IsInf(f, 0) || (f == 0 && math.Signbit(f)) {
			// Never produced by AppendNumber; accepting it would give two
			// encodings of one value.
			return nil, nil, fmt.Errorf("%w: non-canonical number", ErrCorrupt)
		}
		return f, b[9:], nil
	case tagString:
		return decodeString(b[1:])
	case tagArray:
		arr := []any{}
		b = b[1:]
		for {
			if len(b) == 0 {
				return nil, nil, fmt.Errorf("%w: unterminated array", ErrCorrupt)
			}
			if b[0] == terminator {
				return arr, b[1:], nil
			}
			v, rest, err := decodeValue(b, depth+1)
			if err != nil {
				return nil, nil, err
			}
			arr = append(arr, v)
			b = rest
		}
	case tagObject:
		obj := map[string]any{}
		b = b[1:]
		prev, first := "", true
		for {
			if len(b) == 0 {
				return nil, nil, fmt.Errorf("%w: unterminated object", ErrCorrupt)
			}
			if b[0] == terminator {
				return obj, b[1:], nil
			}
			if b[0] != tagString {
				return nil, nil, fmt.Errorf("%w: object key is not a string", ErrCorrupt)
			}
			k, rest, err := decodeString(b[1:])
			if err != nil {
				return nil, nil, err
			}
			key := k.(string)
			if !first && key <= prev {
				return nil, nil, fmt.Errorf("%w: object keys out of order", ErrCorrupt)
			}
			prev, first = key, false
			v, rest, err := decodeValue(rest, depth+1)
			if err != nil {
				return nil, nil, err
			}
			obj[key] = v
			b = rest
		}
	default:
		return nil, nil, fmt.Errorf("%w: unknown tag %#x", ErrCorrupt, tag)
	}
}

// decodeString decodes a string body (after its tag).
func decodeString(b []byte) (any, []byte, error) {
	i := bytes.IndexByte(b, terminator)
	if i < 0 {
		return nil, nil, fmt.Errorf("%w: unterminated string", ErrCorrupt)
	}
	if i+1 < len(b) && b[i+1] == strEnd {
		// The common case: no 0x00 inside the string.
		return string(b[:i]), b[i+2:], nil
	}
	var s []byte
	for {
		i := bytes.IndexByte(b, terminator)
		if i < 0 || i+1 >= len(b) {
			return nil, nil, fmt.Errorf("%w: unterminated string", ErrCorrupt)
		}
		s = append(s, b[:i]...)
		switch b[i+1] {
		case strEnd:
			return string(s), b[i+2:], nil
		case strEscape:
			s = append(s, 0)
			b = b[i+2:]
		default:
			return nil, nil, fmt.Errorf("%w: bad string escape %#x", ErrCorrupt, b[i+1])
		}
	}
}

// PrefixEnd returns the smallest byte string greater than every string that
// has prefix b: b with trailing 0xFF bytes dropped and its last byte
// incremented. It returns nil when there is none (b is empty or all 0xFF),
// meaning "no upper bound". b is not modified.
//
// For an encoded key k, [k, PrefixEnd(k)) holds exactly the main-index
// entries k ++ suffix, so PrefixEnd(k) is the exclusive bound for "key ≤ k"
// and the inclusive start for "key > k". For a prefix of a composite key's
// components it bounds every key with those leading components.
func PrefixEnd(b []byte) []byte {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0xFF {
			end := make([]byte, i+1)
			copy(end, b)
			end[i]++
			return end
		}
	}
	return nil
}
