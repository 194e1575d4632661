package collate

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idxbench/idxbench/workload/defn"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: time-based)")

func testSeed(t testing.TB) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed: %d (rerun with: go test ./projector/collate -run '%s' -seed %d)", seed, t.Name(), seed)
	return seed
}

// kindRank and compareValues are an independent model of the collation in
// doc.go, written on decoded values rather than bytes.
func kindRank(v any) int {
	switch v := v.(type) {
	case defn.MissingValue:
		return 0
	case nil:
		return 1
	case bool:
		if v {
			return 3
		}
		return 2
	case float64:
		return 4
	case string:
		return 5
	case []any:
		return 6
	case map[string]any:
		return 7
	}
	panic(fmt.Sprintf("kindRank: %T", v))
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareValues(a, b any) int {
	if c := cmpInt(kindRank(a), kindRank(b)); c != 0 {
		return c
	}
	switch a := a.(type) {
	case float64:
		b := b.(float64)
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	case string:
		return strings.Compare(a, b.(string))
	case []any:
		return compareSeq(a, b.([]any))
	case map[string]any:
		bm := b.(map[string]any)
		var ap, bp []any
		for _, k := range sortedKeys(a) {
			ap = append(ap, k, a[k])
		}
		for _, k := range sortedKeys(bm) {
			bp = append(bp, k, bm[k])
		}
		return compareSeq(ap, bp)
	}
	return 0 // missing, null, false, true: the kind decides
}

func compareSeq(a, b []any) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := compareValues(a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmpInt(len(a), len(b))
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func mustEncode(t testing.TB, vs ...any) []byte {
	t.Helper()
	b, err := AppendComposite(nil, vs)
	if err != nil {
		t.Fatalf("encode %v: %v", vs, err)
	}
	return b
}

func TestEncodingBytes(t *testing.T) {
	for _, tc := range []struct {
		v   any
		hex string
	}{
		{defn.Missing, "01"},
		{nil, "02"},
		{false, "03"},
		{true, "04"},
		{0.0, "05" + "8000000000000000"},
		{math.Copysign(0, -1), "05" + "8000000000000000"},
		{1.0, "05" + "bff0000000000000"},
		{-1.0, "05" + "400fffffffffffff"},
		{"", "06" + "0001"},
		{"ab", "06" + "6162" + "0001"},
		{"a\x00b", "06" + "61" + "00ff" + "62" + "0001"},
		{[]any{}, "07" + "00"},
		{[]any{nil, true}, "07" + "0204" + "00"},
		{map[string]any{}, "08" + "00"},
		{map[string]any{"b": nil, "a": false}, "08" + "06610001" + "03" + "06620001" + "02" + "00"},
	} {
		got, err := AppendValue(nil, tc.v)
		if err != nil {
			t.Fatalf("AppendValue(%#v): %v", tc.v, err)
		}
		if s, ok := tc.v.(string); ok {
			if b := AppendStringBytes(nil, []byte(s)); !bytes.Equal(b, got) {
				t.Errorf("AppendStringBytes(%q) = %x, AppendValue gives %x", s, b, got)
			}
		}
		if h := hex.EncodeToString(got); h != tc.hex {
			t.Errorf("AppendValue(%#v) = %s, want %s", tc.v, h, tc.hex)
		}
	}
}

// TestOrderTable lists values in strictly increasing collation order; every
// pair must compare the same way as encodings.
func TestOrderTable(t *testing.T) {
	ordered := []any{
		defn.Missing,
		nil,
		false,
		true,
		-math.MaxFloat64,
		-1e10,
		-1.5,
		-1.0,
		-math.SmallestNonzeroFloat64,
		0.0,
		math.SmallestNonzeroFloat64,
		0.5,
		1.0,
		2.0,
		1e300,
		math.MaxFloat64,
		"",
		"\x00",
		"\x00\x00",
		"\x01",
		"A",
		"a",
		"a\x00",
		"a\x00\x00",
		"a\x00b",
		"a\x01",
		"ab",
		"b",
		"é",
		"\xff",
		[]any{},
		[]any{defn.Missing},
		[]any{nil},
		[]any{nil, nil},
		[]any{false},
		[]any{1.0},
		[]any{1.0, "a"},
		[]any{2.0},
		[]any{""},
		[]any{[]any{}},
		[]any{[]any{}, nil},
		[]any{[]any{nil}},
		[]any{map[string]any{}},
		map[string]any{},
		map[string]any{"": nil},
		map[string]any{"a": nil},
		map[string]any{"a": 1.0},
		map[string]any{"a": 1.0, "b": 0.0},
		map[string]any{"a": 2.0},
		map[string]any{"a\x00": 0.0},
		map[string]any{"b": defn.Missing},
	}
	encs := make([][]byte, len(ordered))
	for i, v := range ordered {
		encs[i] = mustEncode(t, v)
	}
	for i := range ordered {
		for j := range ordered {
			want := cmpInt(i, j)
			if got := bytes.Compare(encs[i], encs[j]); got != want {
				t.Errorf("bytes.Compare(enc(%#v), enc(%#v)) = %d, want %d", ordered[i], ordered[j], got, want)
			}
			if got := compareValues(ordered[i], ordered[j]); got != want {
				t.Errorf("model compare(%#v, %#v) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, v := range []any{
		math.NaN(), math.Inf(1), math.Inf(-1), 3, int64(1), []byte("x"),
		[]any{1.0, math.NaN()}, map[string]any{"a": []any{struct{}{}}},
	} {
		if b, err := AppendValue(nil, v); err == nil {
			t.Errorf("AppendValue(%#v) = %x, want an error", v, b)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, h := range []string{
		"09", "00", "05", "0580", "06", "0661", "066100", "066100fe",
		"07", "0702", "08", "0802", "080661000102", "08066200010206610001" + "0200",
		"08066100010206610001" + "0200", // duplicate key
		"05" + "000fffffffffffff",       // -Inf
		"05" + "fff8000000000000",       // NaN
		"05" + "7fffffffffffffff",       // -0
		"05" + "fff0000000000000",       // +Inf
	} {
		b, _ := hex.DecodeString(h)
		if vs, err := Decode(b); err == nil {
			t.Errorf("Decode(%s) = %#v, want an error", h, vs)
		} else if !errors.Is(err, ErrCorrupt) {
			t.Errorf("Decode(%s) error %v does not wrap ErrCorrupt", h, err)
		}
	}
	deep := bytes.Repeat([]byte{tagArray}, maxDepth+10)
	if _, err := Decode(deep); err == nil {
		t.Errorf("Decode of %d nested arrays: want an error", len(deep))
	}
}

func TestCompositeRoundTrip(t *testing.T) {
	key := []any{"Paris", defn.Missing, 42.0, []any{"x", nil}, map[string]any{"k": true}, nil, false}
	b := mustEncode(t, key...)
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, key) {
		t.Fatalf("Decode = %#v, want %#v", got, key)
	}
	// Next splits components without decoding.
	var n int
	for rest := b; len(rest) > 0; n++ {
		l, err := Next(rest)
		if err != nil {
			t.Fatal(err)
		}
		rest = rest[l:]
	}
	if n != len(key) {
		t.Fatalf("Next found %d components, want %d", n, len(key))
	}
	if vs, err := Decode(nil); err != nil || len(vs) != 0 {
		t.Fatalf("Decode(nil) = %v, %v", vs, err)
	}
}

// TestSuffixOrder checks what the indexer relies on: key ++ docid sorts by
// key first, whatever the docids.
func TestSuffixOrder(t *testing.T) {
	keys := [][]any{{"a"}, {"a\x00"}, {"ab"}, {[]any{"a"}}, {[]any{"a", "b"}}, {1.0}, {nil}}
	docids := []string{"", "\x00", "\xff\xff", "doc1", "\x01\x00"}
	for _, ka := range keys {
		for _, kb := range keys {
			want := compareValues(ka[0], kb[0])
			if want == 0 {
				continue
			}
			for _, da := range docids {
				for _, db := range docids {
					a := append(mustEncode(t, ka...), da...)
					b := append(mustEncode(t, kb...), db...)
					if got := bytes.Compare(a, b); got != want {
						t.Errorf("enc(%q)++%q vs enc(%q)++%q: %d, want %d", ka, da, kb, db, got, want)
					}
				}
			}
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"ff", ""},
		{"ffff", ""},
		{"01", "02"},
		{"01ff", "02"},
		{"0100", "0101"},
		{"06610001", "06610002"},
		{"06fe", "06ff"},
	} {
		in, _ := hex.DecodeString(tc.in)
		orig := slices.Clone(in)
		got := PrefixEnd(in)
		if h := hex.EncodeToString(got); h != tc.want {
			t.Errorf("PrefixEnd(%s) = %s, want %s", tc.in, h, tc.want)
		}
		if !bytes.Equal(in, orig) {
			t.Errorf("PrefixEnd modified its input")
		}
	}
	// Every key with the leading component "a" lies in [enc("a"), PrefixEnd),
	// every other key outside.
	lo := mustEncode(t, "a")
	hi := PrefixEnd(lo)
	for _, k := range [][]any{{"a", 1.0}, {"a", defn.Missing}, {"a", map[string]any{"z": "\xff"}}} {
		e := mustEncode(t, k...)
		if bytes.Compare(e, lo) < 0 || bytes.Compare(e, hi) >= 0 {
			t.Errorf("%q outside the prefix range of \"a\"", k)
		}
	}
	for _, k := range [][]any{{"a\x00", 1.0}, {"ab"}, {"`", 1.0}, {[]any{"a"}}} {
		e := mustEncode(t, k...)
		if bytes.Compare(e, lo) >= 0 && bytes.Compare(e, hi) < 0 {
			t.Errorf("%q inside the prefix range of \"a\"", k)
		}
	}
}

// randValue returns a random value biased toward collisions (small
// alphabets, few distinct numbers) so that equal prefixes are common.
func randValue(r *rand.Rand, depth int) any {
	n := 8
	if depth > 2 {
		n = 6 // no deeper containers
	}
	switch r.IntN(n) {
	case 0:
		return defn.Missing
	case 1:
		return nil
	case 2:
		return r.IntN(2) == 0
	case 3:
		switch r.IntN(4) {
		case 0:
			return float64(r.IntN(5) - 2)
		case 1:
			return math.Copysign(0, -1)
		case 2:
			return r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))
		default:
			return math.Float64frombits(r.Uint64()&^(0x7ff<<52) | uint64(r.IntN(0x7ff))<<52)
		}
	case 4, 5:
		return randString(r)
	case 6:
		a := make([]any, r.IntN(4))
		for i := range a {
			a[i] = randValue(r, depth+1)
		}
		return a
	default:
		m := map[string]any{}
		for range r.IntN(4) {
			m[randString(r)] = randValue(r, depth+1)
		}
		return m
	}
}

func randString(r *rand.Rand) string {
	const alphabet = "\x00\x01a\xff"
	b := make([]byte, r.IntN(4))
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func TestPropertyOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 1))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for i := 0; i < n; i++ {
		a := []any{randValue(r, 0), randValue(r, 0)}
		b := []any{randValue(r, 0), randValue(r, 0)}
		if r.IntN(3) == 0 {
			b[0] = a[0]
		}
		ea, eb := mustEncode(t, a...), mustEncode(t, b...)
		want := compareSeq(a, b)
		if got := bytes.Compare(ea, eb); got != want {
			t.Fatalf("bytes.Compare(enc(%#v), enc(%#v)) = %d, model says %d", a, b, got, want)
		}
		da, err := Decode(ea)
		if err != nil {
			t.Fatalf("Decode(enc(%#v)): %v", a, err)
		}
		if compareSeq(da, a) != 0 {
			t.Fatalf("Decode(enc(%#v)) = %#v", a, da)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, v := range []any{nil, "a\x00b", []any{1.0, map[string]any{"x": []any{}}}, -2.5} {
		f.Add(mustEncode(f, v, defn.Missing))
	}
	f.Add([]byte{0x08, 0x06, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := Decode(b)
		if err != nil {
			return
		}
		// Decode accepts only canonical encodings: re-encoding gives the
		// same bytes.
		re, err := AppendComposite(nil, vs)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", vs, err)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("Decode(%x) = %#v re-encodes as %x", b, vs, re)
		}
	})
}

// FuzzOrder decodes two arbitrary byte strings as composites and checks that
// whenever both are valid their byte order is the model's value order.
func FuzzOrder(f *testing.F) {
	f.Add(mustEncode(f, "a", 1.0), mustEncode(f, "a", -1.0))
	f.Add(mustEncode(f, []any{nil}), mustEncode(f, map[string]any{"a": nil}))
	f.Add(mustEncode(f, "a\x00"), mustEncode(f, "a"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		va, err := Decode(a)
		if err != nil {
			return
		}
		vb, err := Decode(b)
		if err != nil {
			return
		}
		if got, want := bytes.Compare(a, b), compareSeq(va, vb); got != want {
			t.Fatalf("bytes.Compare(%x, %x) = %d, model compare(%#v, %#v) = %d", a, b, got, va, vb, want)
		}
	})
}

func BenchmarkAppendValue(b *testing.B) {
	for _, bc := range []struct {
		name string
		v    []any
	}{
		{"string", []any{"San Francisco"}},
		{"number", []any{42.0}},
		{"composite", []any{37.0, "Lisbon"}},
		{"array", []any{[]any{"red", "green", "blue"}}},
		{"object", []any{map[string]any{"city": "Oslo", "zip": 150.0}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = AppendComposite(buf[:0], bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	enc := mustEncode(b, 37.0, "Lisbon")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
