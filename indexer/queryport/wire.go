package queryport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/projector/collate"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// ErrProtocol is wrapped by every error about bytes that break the
// protocol: a bad hello, a torn, oversized or corrupt frame, an answer to
// another request.
var ErrProtocol = errors.New("queryport: protocol error")

const (
	magic = "IXQP"
	// Version is the protocol version both sides must speak.
	Version uint16 = 1

	helloLen  = len(magic) + 2 + 4
	headerLen = 4

	// maxVbuckets bounds a vector's length, as indexer.Config does, so a
	// corrupt count cannot make the decoder allocate much.
	maxVbuckets = 1 << 16
	// maxPrealloc bounds the capacity allocated up front for a decoded
	// count; larger lists grow as their elements are actually read.
	maxPrealloc = 1 << 12
)

// frameType is the first byte of a frame's body.
type frameType byte

const (
	frameRequest frameType = 1 // client → server: a request
	frameResult  frameType = 2 // server → client: a scan's result
	frameError   frameType = 3 // server → client: a scan's error
)

// hello is what each side sends first: the protocol version it speaks and
// the largest frame it accepts.
type hello struct {
	version  uint16
	maxFrame uint32
}

func appendHello(dst []byte, h hello) []byte {
	dst = append(dst, magic...)
	dst = binary.BigEndian.AppendUint16(dst, h.version)
	return binary.BigEndian.AppendUint32(dst, h.maxFrame)
}

// decodeHello decodes a hello of any version; the caller compares
// versions, so that it can name both in its error.
func decodeHello(b []byte) (hello, error) {
	if len(b) != helloLen {
		return hello{}, fmt.Errorf("%w: hello of %d bytes, want %d", ErrProtocol, len(b), helloLen)
	}
	if string(b[:len(magic)]) != magic {
		return hello{}, fmt.Errorf("%w: bad magic %q, want %q (not a query port?)", ErrProtocol, b[:len(magic)], magic)
	}
	h := hello{
		version:  binary.BigEndian.Uint16(b[len(magic):]),
		maxFrame: binary.BigEndian.Uint32(b[len(magic)+2:]),
	}
	if h.maxFrame < MinFrameLimit || h.maxFrame > MaxFrameLimit {
		return hello{}, fmt.Errorf("%w: frame limit %d in hello is out of range [%d,%d]", ErrProtocol, h.maxFrame, MinFrameLimit, MaxFrameLimit)
	}
	return h, nil
}

// readHello reads and decodes the peer's hello.
func readHello(r io.Reader) (hello, error) {
	var b [helloLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return hello{}, fmt.Errorf("read hello: %w", err)
	}
	return decodeHello(b[:])
}

// startFrame appends a frame header whose length finishFrame fills in.
func startFrame(dst []byte, t frameType) []byte {
	return append(dst, 0, 0, 0, 0, byte(t))
}

// finishFrame sets the length of the frame that starts b.
func finishFrame(b []byte) []byte {
	binary.BigEndian.PutUint32(b, uint32(len(b)-headerLen))
	return b
}

// frameReader reads frames of at most limit bytes, reusing one buffer.
type frameReader struct {
	r     io.Reader
	limit int
	buf   []byte
}

// next reads a frame; its payload is valid until the following call. At a
// clean end of the stream (no byte of a new frame) it returns io.EOF.
func (fr *frameReader) next() (frameType, []byte, error) {
	var hdr [headerLen]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		if err == io.EOF {
			return 0, nil, io.EOF
		}
		return 0, nil, fmt.Errorf("%w: torn frame header: %w", ErrProtocol, err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	switch {
	case n == 0:
		return 0, nil, fmt.Errorf("%w: empty frame", ErrProtocol)
	case uint64(n) > uint64(fr.limit):
		return 0, nil, fmt.Errorf("%w: frame of %d bytes exceeds the limit of %d", ErrProtocol, n, fr.limit)
	}
	// Grow as bytes arrive, so a lying header costs no more memory than
	// the bytes actually sent.
	b := fr.buf[:0]
	for len(b) < int(n) {
		chunk := min(int(n)-len(b), 1<<20)
		b = slices.Grow(b, chunk)
		m, err := io.ReadFull(fr.r, b[len(b):len(b)+chunk])
		b = b[:len(b)+m]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, fmt.Errorf("%w: torn frame: %d of %d bytes: %w", ErrProtocol, len(b), n, err)
		}
	}
	fr.buf = b
	return frameType(b[0]), b[1:], nil
}

// request is a request frame's contents.
type request struct {
	id uint64
	// budget is what remained of the client's ctx deadline when it sent
	// the request; 0 is none.
	budget time.Duration
	scan   indexer.ScanRequest
}

// Request payload: id uvarint | budget uvarint ns | InstID uvarint | Index
// string | Kind, Inclusion, Consistency bytes | Low, High, Equal keys |
// Limit varint | TS vector | Timeout varint ns.
func appendRequest(dst []byte, r *request) ([]byte, error) {
	q := &r.scan
	dst = binary.AppendUvarint(dst, r.id)
	dst = binary.AppendUvarint(dst, uint64(max(r.budget, 0)))
	dst = binary.AppendUvarint(dst, q.InstID)
	dst = appendString(dst, q.Index)
	dst = append(dst, byte(q.Kind), byte(q.Inclusion), byte(q.Consistency))
	var err error
	if dst, err = appendKey(dst, q.Low); err != nil {
		return nil, fmt.Errorf("queryport: encode request: low bound: %w", err)
	}
	if dst, err = appendKey(dst, q.High); err != nil {
		return nil, fmt.Errorf("queryport: encode request: high bound: %w", err)
	}
	if dst, err = appendKey(dst, q.Equal); err != nil {
		return nil, fmt.Errorf("queryport: encode request: equal key: %w", err)
	}
	dst = binary.AppendVarint(dst, int64(q.Limit))
	dst = appendTS(dst, q.TS)
	return binary.AppendVarint(dst, int64(q.Timeout)), nil
}

func decodeRequest(b []byte) (request, error) {
	d := decoder{msg: "request", b: b}
	var r request
	q := &r.scan
	r.id = d.uvarint("id")
	r.budget = time.Duration(d.uvarint("budget"))
	if r.budget < 0 {
		d.fail("budget", "out of range")
	}
	q.InstID = d.uvarint("instance id")
	q.Index = d.string("index name")
	q.Kind = indexer.ScanKind(d.byte("kind"))
	q.Inclusion = indexer.Inclusion(d.byte("inclusion"))
	q.Consistency = indexer.Consistency(d.byte("consistency"))
	q.Low = d.key("low bound")
	q.High = d.key("high bound")
	q.Equal = d.key("equal key")
	q.Limit = d.int("limit")
	q.TS = d.ts("vector")
	q.Timeout = time.Duration(d.varint("timeout"))
	if err := d.finish(); err != nil {
		return request{}, err
	}
	return r, nil
}

// Result payload: id uvarint | Count varint | TS vector | entries: 0 for
// nil, else n+1 uvarint then n × (key, DocID string).
func appendResult(dst []byte, id uint64, res *indexer.ScanResult) ([]byte, error) {
	dst = binary.AppendUvarint(dst, id)
	dst = binary.AppendVarint(dst, int64(res.Count))
	dst = appendTS(dst, res.TS)
	if res.Entries == nil {
		return append(dst, 0), nil
	}
	dst = binary.AppendUvarint(dst, uint64(len(res.Entries))+1)
	for i, e := range res.Entries {
		var err error
		if dst, err = appendKey(dst, e.Key); err != nil {
			return nil, fmt.Errorf("queryport: encode result: entry %d (document %q): %w", i, e.DocID, err)
		}
		dst = appendString(dst, e.DocID)
	}
	return dst, nil
}

func decodeResult(b []byte) (uint64, *indexer.ScanResult, error) {
	d := decoder{msg: "result", b: b}
	id := d.uvarint("id")
	res := &indexer.ScanResult{}
	res.Count = d.int("count")
	res.TS = d.ts("vector")
	if n, ok := d.count("entries"); ok {
		res.Entries = make([]defn.Entry, 0, min(n, maxPrealloc))
		for i := 0; i < n && d.err == nil; i++ {
			key := d.key("entry key")
			res.Entries = append(res.Entries, defn.Entry{Key: key, DocID: d.string("entry document id")})
		}
	}
	if err := d.finish(); err != nil {
		return 0, nil, err
	}
	return id, res, nil
}

// Error codes: what a scan's error matched on the server, so that the
// client's error matches it too.
const (
	codeOther byte = iota
	codeScanTimeout
	codeIndexRollback
	codeNoSuchIndex
	codeClosed
	codeRecovering
	codeCanceled
	codeDeadlineExceeded
)

// codeTargets maps each code to the error it stands for; codeOther has
// none. It is read-only.
var codeTargets = [...]error{
	codeScanTimeout:      indexer.ErrScanTimeout,
	codeIndexRollback:    indexer.ErrIndexRollback,
	codeNoSuchIndex:      indexer.ErrNoSuchIndex,
	codeClosed:           indexer.ErrClosed,
	codeRecovering:       indexer.ErrRecovering,
	codeCanceled:         context.Canceled,
	codeDeadlineExceeded: context.DeadlineExceeded,
}

// errorCode is the code of the first sentinel err matches.
func errorCode(err error) byte {
	for c, target := range codeTargets {
		if target != nil && errors.Is(err, target) {
			return byte(c)
		}
	}
	return codeOther
}

// errorFrame is an error frame's contents.
type errorFrame struct {
	id   uint64
	code byte
	msg  string
}

// Error payload: id uvarint | code byte | message string.
func appendError(dst []byte, e errorFrame) []byte {
	dst = binary.AppendUvarint(dst, e.id)
	dst = append(dst, e.code)
	return appendString(dst, e.msg)
}

func decodeError(b []byte) (errorFrame, error) {
	d := decoder{msg: "error", b: b}
	e := errorFrame{id: d.uvarint("id"), code: d.byte("code"), msg: d.string("message")}
	if err := d.finish(); err != nil {
		return errorFrame{}, err
	}
	return e, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendKey appends a key (a bound, a lookup key or an entry's key): 0 for
// nil, else the component count plus one and the components' collate
// encodings, which delimit themselves.
func appendKey(dst []byte, vs []any) ([]byte, error) {
	if vs == nil {
		return append(dst, 0), nil
	}
	dst = binary.AppendUvarint(dst, uint64(len(vs))+1)
	return collate.AppendComposite(dst, vs)
}

// appendTS appends a vector: 0 for nil, else 1, the vbucket count and per
// vbucket seqno, vbuuid, snapshot start and end.
func appendTS(dst []byte, ts *upr.TsVbuuid) []byte {
	if ts == nil {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(ts.Len()))
	for vb := range ts.Seqnos {
		dst = binary.AppendUvarint(dst, uint64(ts.Seqnos[vb]))
		dst = binary.AppendUvarint(dst, uint64(ts.Vbuuids[vb]))
		dst = binary.AppendUvarint(dst, uint64(ts.Snapshots[vb][0]))
		dst = binary.AppendUvarint(dst, uint64(ts.Snapshots[vb][1]))
	}
	return dst
}

// decoder reads a payload's fields in order. The first failure sticks:
// later reads return zero values and finish reports it.
type decoder struct {
	msg string // what is being decoded, for errors
	b   []byte
	err error
}

func (d *decoder) fail(field, problem string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s %s: %s", ErrProtocol, d.msg, field, problem)
	}
}

// finish reports the first failure, or bytes left over.
func (d *decoder) finish() error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("", fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	return d.err
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(field, "truncated or overlong varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(field, "truncated or overlong varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int(field string) int {
	v := d.varint(field)
	if v < math.MinInt || v > math.MaxInt {
		d.fail(field, fmt.Sprintf("%d overflows an int", v))
		return 0
	}
	return int(v)
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(field, "truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) string(field string) string {
	n := d.uvarint(field)
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail(field, fmt.Sprintf("%d bytes, %d left", n, len(d.b)))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a list length written as 0 for nil, else n+1; ok is false
// for nil (or a failure). Each element takes at least one byte, which
// bounds n by the bytes left.
func (d *decoder) count(field string) (n int, ok bool) {
	v := d.uvarint(field)
	if d.err != nil || v == 0 {
		return 0, false
	}
	if v-1 > uint64(len(d.b)) {
		d.fail(field, fmt.Sprintf("%d elements in %d bytes", v-1, len(d.b)))
		return 0, false
	}
	return int(v - 1), true
}

func (d *decoder) key(field string) []any {
	n, ok := d.count(field)
	if !ok {
		return nil
	}
	vs := make([]any, 0, min(n, maxPrealloc))
	for i := range n {
		v, rest, err := collate.DecodeValue(d.b)
		if err != nil {
			if d.err == nil {
				d.err = fmt.Errorf("%w: %s %s: component %d: %w", ErrProtocol, d.msg, field, i, err)
			}
			return nil
		}
		vs = append(vs, v)
		d.b = rest
	}
	return vs
}

func (d *decoder) ts(field string) *upr.TsVbuuid {
	switch d.byte(field) {
	case 0:
		return nil
	case 1:
	default:
		d.fail(field, "bad presence byte")
		return nil
	}
	n := d.uvarint(field)
	if d.err != nil {
		return nil
	}
	// Four varints of at least a byte each per vbucket.
	if n > maxVbuckets || n > uint64(len(d.b))/4 {
		d.fail(field, fmt.Sprintf("%d vbuckets in %d bytes", n, len(d.b)))
		return nil
	}
	ts := upr.NewTsVbuuid(int(n))
	for vb := range ts.Seqnos {
		ts.Seqnos[vb] = upr.Seqno(d.uvarint(field))
		ts.Vbuuids[vb] = upr.Vbuuid(d.uvarint(field))
		ts.Snapshots[vb] = [2]upr.Seqno{upr.Seqno(d.uvarint(field)), upr.Seqno(d.uvarint(field))}
	}
	if d.err != nil {
		return nil
	}
	return ts
}
