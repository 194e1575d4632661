package queryport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// everyValue is one of each kind of key value, nested ones included.
func everyValue() []any {
	return []any{
		defn.Missing, nil, false, true,
		0.0, -1.5, 42.0, 1e300, -math.MaxFloat64, math.SmallestNonzeroFloat64,
		"", "plain", "héllo wörld ✓ 日本語 🎉", "nul\x00inside\x00", "\xff\xfe not utf-8",
		[]any{}, []any{1.0, "a", []any{nil, []any{true, defn.Missing}}},
		map[string]any{},
		map[string]any{"a": 1.0, "": nil, "ünï": map[string]any{"x": []any{"y", map[string]any{}}}},
	}
}

// tsOf is a vector over n vbuckets with distinct, large and zero entries.
func tsOf(n int) *upr.TsVbuuid {
	ts := upr.NewTsVbuuid(n)
	for vb := range n {
		if vb%7 == 3 {
			continue // a vbucket that saw nothing
		}
		ts.Seqnos[vb] = upr.Seqno(vb*1000 + 1)
		ts.Vbuuids[vb] = upr.Vbuuid(math.MaxUint64 - uint64(vb))
		ts.Snapshots[vb] = [2]upr.Seqno{upr.Seqno(vb * 1000), upr.Seqno(vb*1000 + 1)}
	}
	return ts
}

// sampleRequests covers every kind, consistency and inclusion, bounds of
// every value type, nil and empty keys, limits, vectors and timeouts.
func sampleRequests() []indexer.ScanRequest {
	var qs []indexer.ScanRequest
	for kind := indexer.ScanRange; kind <= indexer.ScanAll; kind++ {
		for cons := indexer.AnyConsistency; cons <= indexer.AtPlus; cons++ {
			q := indexer.ScanRequest{
				Index: fmt.Sprintf("%v-%v", kind, cons), Kind: kind, Consistency: cons,
				Inclusion: indexer.Inclusion((int(kind) + int(cons)) % 4),
				Low:       []any{float64(kind)}, High: []any{"zz", float64(cons)},
				Limit: int(kind) * 10, Timeout: time.Duration(cons) * time.Second,
			}
			if kind == indexer.ScanLookup || kind == indexer.ScanCount {
				q.Equal = []any{"k", float64(kind)}
			}
			if cons == indexer.AtPlus {
				q.TS = tsOf(1024)
			}
			qs = append(qs, q)
		}
	}
	for _, v := range everyValue() {
		qs = append(qs, indexer.ScanRequest{Index: "values", Low: []any{v}, High: []any{v, v}, Equal: []any{v}})
	}
	return append(qs,
		indexer.ScanRequest{},
		indexer.ScanRequest{InstID: math.MaxUint64, Index: "日本語 index", Kind: indexer.ScanAll},
		indexer.ScanRequest{Index: "empty keys", Low: []any{}, High: []any{}, Equal: []any{}},
		indexer.ScanRequest{Index: "every value", Low: everyValue(), Inclusion: indexer.IncludeBoth},
		indexer.ScanRequest{Index: "negative limit", Limit: -1, Timeout: -time.Second},
		indexer.ScanRequest{Index: "empty vector", Consistency: indexer.AtPlus, TS: upr.NewTsVbuuid(0)},
		indexer.ScanRequest{Index: "odd enums", Kind: 200, Inclusion: 9, Consistency: 77},
	)
}

// sampleResults covers entries of every value type, unicode, empty and
// nil keys, nil and empty entry lists, and vectors.
func sampleResults() []*indexer.ScanResult {
	var es []defn.Entry
	for i, v := range everyValue() {
		es = append(es, defn.Entry{Key: []any{v, float64(i)}, DocID: fmt.Sprintf("doc-%d-ü", i)})
	}
	es = append(es,
		defn.Entry{Key: nil, DocID: "nil key"},
		defn.Entry{Key: []any{}, DocID: "empty key"},
		defn.Entry{Key: everyValue(), DocID: ""},
		defn.Entry{Key: []any{"k"}, DocID: "doc\x00with nul"},
	)
	return []*indexer.ScanResult{
		{},
		{Count: 7, TS: tsOf(4)},
		{Entries: []defn.Entry{}, TS: upr.NewTsVbuuid(1024)},
		{Entries: es, Count: len(es), TS: tsOf(1024)},
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for i, q := range sampleRequests() {
		r := request{id: uint64(i) << 40, budget: time.Duration(i) * time.Millisecond, scan: q}
		b, err := appendRequest(nil, &r)
		if err != nil {
			t.Fatalf("request %d (%s): %v", i, q.Index, err)
		}
		got, err := decodeRequest(b)
		if err != nil {
			t.Fatalf("request %d (%s): %v", i, q.Index, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("request %d (%s): sent\n%#v\ngot\n%#v", i, q.Index, r, got)
		}
	}
}

func TestResultRoundTrip(t *testing.T) {
	for i, res := range sampleResults() {
		b, err := appendResult(nil, uint64(i), res)
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
		id, got, err := decodeResult(b)
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
		if id != uint64(i) || !reflect.DeepEqual(got, res) {
			t.Fatalf("result %d: sent\n%#v\ngot id %d\n%#v", i, res, id, got)
		}
	}
}

// TestEncodeRejects: values collate cannot encode fail in the encoder,
// naming the field.
func TestEncodeRejects(t *testing.T) {
	for _, tc := range []struct {
		q    indexer.ScanRequest
		want string
	}{
		{indexer.ScanRequest{Low: []any{math.NaN()}}, "low bound: key component 0"},
		{indexer.ScanRequest{High: []any{"a", math.Inf(1)}}, "high bound: key component 1"},
		{indexer.ScanRequest{Equal: []any{1}}, "equal key: key component 0: collate: cannot encode a value of type int"},
	} {
		_, err := appendRequest(nil, &request{scan: tc.q})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("encode %v: %v, want an error with %q", tc.q, err, tc.want)
		}
	}
	_, err := appendResult(nil, 1, &indexer.ScanResult{Entries: []defn.Entry{{Key: []any{int64(1)}, DocID: "d"}}})
	if err == nil || !strings.Contains(err.Error(), `entry 0 (document "d")`) {
		t.Errorf("encode a result with an int64 key: %v", err)
	}
}

// TestDecodeRejects: malformed payloads fail with ErrProtocol, naming the
// field.
func TestDecodeRejects(t *testing.T) {
	good, err := appendRequest(nil, &request{id: 1, scan: sampleRequests()[0]})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "request id: truncated"},
		{"truncated", good[:len(good)-1], "request timeout: truncated"},
		{"trailing", append(bytes.Clone(good), 0), "1 trailing bytes"},
		{"long name", []byte{1, 0, 0, 100, 'a'}, "request index name: 100 bytes, 1 left"},
		{"bad vector flag", append(bytes.Clone(good[:len(good)-2]), 2, 0), "request vector: bad presence byte"},
		{"huge key", []byte{1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x03}, "request low bound: 65534 elements in 0 bytes"},
		{"corrupt value", []byte{1, 0, 0, 0, 0, 0, 0, 2, 0x99}, "request low bound: component 0: collate: corrupt encoding"},
	} {
		_, err := decodeRequest(tc.b)
		if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrProtocol with %q", tc.name, err, tc.want)
		}
	}
	if _, _, err := decodeResult([]byte{1, 0, 1, 0xff, 0xff, 0xff, 0x7f}); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "result vector") {
		t.Errorf("result with a vector of 2^28 vbuckets: %v", err)
	}
}

func TestHello(t *testing.T) {
	b := appendHello(nil, hello{version: Version, maxFrame: 1 << 20})
	if h, err := decodeHello(b); err != nil || h != (hello{Version, 1 << 20}) {
		t.Fatalf("hello round trip: %v %v", h, err)
	}
	for _, tc := range []struct {
		b    []byte
		want string
	}{
		{b[:9], "hello of 9 bytes"},
		{[]byte("HTTP/1.1 4"), `bad magic "HTTP"`},
		{appendHello(nil, hello{version: Version, maxFrame: 10}), "frame limit 10 in hello is out of range"},
		{appendHello(nil, hello{version: Version, maxFrame: math.MaxUint32}), "out of range"},
	} {
		if _, err := decodeHello(tc.b); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("hello %q: %v, want ErrProtocol with %q", tc.b, err, tc.want)
		}
	}
}

// frame is a whole frame with the given body length header and body.
func frame(n uint32, body ...byte) []byte {
	return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

func TestReadFrame(t *testing.T) {
	in := append(frame(3, byte(frameError), 'h', 'i'), frame(1, byte(frameResult))...)
	fr := frameReader{r: bytes.NewReader(in), limit: 8}
	if typ, p, err := fr.next(); err != nil || typ != frameError || string(p) != "hi" {
		t.Fatalf("first frame: %v %q %v", typ, p, err)
	}
	if typ, p, err := fr.next(); err != nil || typ != frameResult || len(p) != 0 {
		t.Fatalf("second frame: %v %q %v", typ, p, err)
	}
	if _, _, err := fr.next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"torn header", []byte{0, 0}, "torn frame header: unexpected EOF"},
		{"empty frame", frame(0), "empty frame"},
		{"oversized", frame(9, make([]byte, 9)...), "frame of 9 bytes exceeds the limit of 8"},
		{"torn body", frame(5, 1, 2), "torn frame: 2 of 5 bytes: unexpected EOF"},
		// A header claiming far more than the limit is refused before
		// anything is allocated.
		{"lying header", frame(math.MaxUint32), "frame of 4294967295 bytes exceeds the limit of 8"},
	} {
		fr := frameReader{r: bytes.NewReader(tc.in), limit: 8}
		if _, _, err := fr.next(); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrProtocol with %q", tc.name, err, tc.want)
		}
	}
}

// The fuzz tests below check that each decoder either fails with
// ErrProtocol or decodes something that encodes and decodes back to the
// same value, with an encoding that is then stable.

func FuzzDecodeRequest(f *testing.F) {
	for i, q := range sampleRequests() {
		if q.TS != nil {
			q.TS = tsOf(min(q.TS.Len(), 8)) // small seeds mutate faster
		}
		b, err := appendRequest(nil, &request{id: uint64(i), budget: time.Second, scan: q})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRequest(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error without ErrProtocol: %v", err)
			}
			return
		}
		b2, err := appendRequest(nil, &r)
		if err != nil {
			t.Fatalf("encode a decoded request: %v", err)
		}
		r2, err := decodeRequest(b2)
		if err != nil {
			t.Fatalf("decode a re-encoded request: %v", err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip changed the request:\n%#v\n%#v", r, r2)
		}
		if b3, _ := appendRequest(nil, &r2); !bytes.Equal(b2, b3) {
			t.Fatalf("unstable encoding:\n%x\n%x", b2, b3)
		}
	})
}

func FuzzDecodeResult(f *testing.F) {
	for i, res := range sampleResults() {
		if res.TS != nil {
			res.TS = tsOf(min(res.TS.Len(), 8)) // small seeds mutate faster
		}
		b, err := appendResult(nil, uint64(i), res)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 0, 1, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, res, err := decodeResult(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error without ErrProtocol: %v", err)
			}
			return
		}
		b2, err := appendResult(nil, id, res)
		if err != nil {
			t.Fatalf("encode a decoded result: %v", err)
		}
		id2, res2, err := decodeResult(b2)
		if err != nil {
			t.Fatalf("decode a re-encoded result: %v", err)
		}
		if id != id2 || !reflect.DeepEqual(res, res2) {
			t.Fatalf("round trip changed the result:\n%#v\n%#v", res, res2)
		}
		if b3, _ := appendResult(nil, id2, res2); !bytes.Equal(b2, b3) {
			t.Fatalf("unstable encoding:\n%x\n%x", b2, b3)
		}
	})
}

func FuzzDecodeError(f *testing.F) {
	f.Add(appendError(nil, errorFrame{id: 1, code: codeNoSuchIndex, msg: `scan "i": indexer: no such index`}))
	f.Add(appendError(nil, errorFrame{id: math.MaxUint64, code: 250, msg: ""}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeError(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error without ErrProtocol: %v", err)
			}
			return
		}
		b2 := appendError(nil, e)
		if e2, err := decodeError(b2); err != nil || e2 != e {
			t.Fatalf("round trip: %+v → %+v, %v", e, e2, err)
		}
		// Any code maps to an error; unknown ones match no sentinel.
		re := &RemoteError{Msg: e.msg, code: e.code}
		if re.Error() != e.msg || (e.code >= byte(len(codeTargets)) && re.Unwrap() != nil) {
			t.Fatalf("remote error of code %d: %q unwraps to %v", e.code, re.Error(), re.Unwrap())
		}
	})
}

func FuzzDecodeHello(f *testing.F) {
	f.Add(appendHello(nil, hello{version: Version, maxFrame: 64 << 20}))
	f.Add([]byte("HTTP/1.1 400"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHello(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error without ErrProtocol: %v", err)
			}
			return
		}
		if b2 := appendHello(nil, h); !bytes.Equal(b, b2) {
			t.Fatalf("round trip: %x → %+v → %x", b, h, b2)
		}
	})
}

// FuzzReadFrame: the frame reader splits any byte stream into frames
// within the limit that re-encode to the bytes read, then stops with
// io.EOF or ErrProtocol.
func FuzzReadFrame(f *testing.F) {
	f.Add(append(frame(3, 3, 'h', 'i'), frame(1, 2)...), uint16(8))
	f.Add(frame(math.MaxUint32), uint16(100))
	f.Add(frame(5, 1, 2), uint16(100))
	f.Fuzz(func(t *testing.T, in []byte, limit uint16) {
		fr := frameReader{r: bytes.NewReader(in), limit: int(limit)}
		off := 0
		for {
			typ, p, err := fr.next()
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrProtocol) {
					t.Fatalf("error neither io.EOF nor ErrProtocol: %v", err)
				}
				return
			}
			if len(p)+1 > int(limit) {
				t.Fatalf("frame of %d bytes past the limit %d", len(p)+1, limit)
			}
			enc := finishFrame(append(startFrame(nil, typ), p...))
			if off+len(enc) > len(in) || !bytes.Equal(in[off:off+len(enc)], enc) {
				t.Fatalf("frame at offset %d does not re-encode to the input", off)
			}
			off += len(enc)
		}
	})
}
