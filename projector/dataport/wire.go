package dataport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/upr"
)

// The wire format; doc.go draws it.
const (
	protocolVersion = 1

	helloFixedLen  = 6 // magic, version
	replyFixedLen  = 12
	frameHeaderLen = 8 // payload length, payload checksum

	kindBatch = 1
	kindEnd   = 2

	cmdMask     = 0x07
	flagSameMut = 0x08 // Vb, Vbuuid, Seqno, EmitNanos as the previous key version
	flagSameDoc = 0x10 // DocID as the previous key version

	// minKVLen is the fewest bytes a key version takes (head, InstID,
	// Partition, key length), which bounds the count a payload can claim.
	minKVLen = 4
)

var (
	magic      = [4]byte{'I', 'X', 'D', 'P'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	// endFrame is the end-of-stream frame, the same on every connection.
	endFrame = sealFrame([]byte{frameHeaderLen: kindEnd}, 0)
)

var (
	// ErrRefused is returned by Dial when the receiver refused the
	// handshake; the error text carries the receiver's reason.
	ErrRefused = errors.New("handshake refused")
	// ErrProtocol means the peer sent bytes that are not the protocol: a
	// bad magic, an oversized or undecodable frame, a checksum mismatch.
	// Nothing of the bad frame is delivered.
	ErrProtocol = errors.New("protocol error")
	// ErrFrameTooLarge is returned by Send for a batch whose frame would
	// pass the frame size limit (nothing is sent, the Sender stays
	// usable), and joined with ErrProtocol by Recv for a frame header
	// announcing such a frame.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrCut is returned by Recv when the connection ended without the
	// end-of-stream frame: closed between frames or inside one, or reset.
	// The batches delivered before it are whole.
	ErrCut = errors.New("session cut")
	// ErrSuperseded is returned by Recv after the Listener accepted a newer
	// session of the same stream from the same sender and closed this one.
	ErrSuperseded = errors.New("session superseded by a newer one")
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("closed")
)

// protocolErrorf returns an error wrapping ErrProtocol.
func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// hello opens a session: what the sender sends first.
type hello struct {
	version uint16
	stream  string
	sender  string
}

func appendHello(dst []byte, h hello) []byte {
	dst = append(dst, magic[:]...)
	dst = binary.BigEndian.AppendUint16(dst, h.version)
	dst = append(dst, byte(len(h.stream)))
	dst = append(dst, h.stream...)
	dst = append(dst, byte(len(h.sender)))
	return append(dst, h.sender...)
}

// readHello reads a hello. One of another protocol version is returned
// with only its version set, since its layout past the version is not
// this version's to read.
func readHello(r io.Reader) (hello, error) {
	var fixed [helloFixedLen]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return hello{}, fmt.Errorf("read hello: %w", err)
	}
	if [4]byte(fixed[:4]) != magic {
		return hello{}, protocolErrorf("bad magic %q in hello: not a dataport sender", fixed[:4])
	}
	h := hello{version: binary.BigEndian.Uint16(fixed[4:])}
	if h.version != protocolVersion {
		return h, nil
	}
	var err error
	if h.stream, err = readName(r, "stream name"); err != nil {
		return hello{}, err
	}
	if h.stream == "" {
		return hello{}, protocolErrorf("empty stream name in hello")
	}
	if h.sender, err = readName(r, "sender id"); err != nil {
		return hello{}, err
	}
	return h, nil
}

// readName reads a one-byte length and that many bytes.
func readName(r io.Reader, what string) (string, error) {
	var buf [1 + maxNameLen]byte
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	name := buf[1 : 1+int(buf[0])]
	if _, err := io.ReadFull(r, name); err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	return string(name), nil
}

// reply answers a hello.
type reply struct {
	version  uint16 // the receiver's
	accepted bool
	maxFrame uint32 // the receiver's frame size limit; 0 in a refusal
	reason   string // why the hello was refused, at most 255 bytes
}

func appendReply(dst []byte, r reply) []byte {
	dst = append(dst, magic[:]...)
	dst = binary.BigEndian.AppendUint16(dst, r.version)
	status := byte(1)
	if r.accepted {
		status = 0
	}
	dst = append(dst, status)
	dst = binary.BigEndian.AppendUint32(dst, r.maxFrame)
	reason := r.reason[:min(len(r.reason), maxNameLen)]
	dst = append(dst, byte(len(reason)))
	return append(dst, reason...)
}

// readReply reads a reply. Its layout is the same in every protocol
// version, so a sender learns why a receiver of another version refused.
func readReply(r io.Reader) (reply, error) {
	var fixed [replyFixedLen]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return reply{}, fmt.Errorf("read handshake reply: %w", err)
	}
	if [4]byte(fixed[:4]) != magic {
		return reply{}, protocolErrorf("bad magic %q in handshake reply: not a dataport receiver", fixed[:4])
	}
	rp := reply{version: binary.BigEndian.Uint16(fixed[4:]), maxFrame: binary.BigEndian.Uint32(fixed[7:])}
	switch fixed[6] {
	case 0:
		rp.accepted = true
	case 1:
	default:
		return reply{}, protocolErrorf("unknown handshake status %d", fixed[6])
	}
	reason := make([]byte, fixed[11])
	if _, err := io.ReadFull(r, reason); err != nil {
		return reply{}, fmt.Errorf("read handshake refusal reason: %w", err)
	}
	rp.reason = string(reason)
	return rp, nil
}

// appendBatchFrame appends b's frame to dst. Once the payload passes
// maxPayload it stops and fails with ErrFrameTooLarge; the bytes past
// len(dst) are then garbage.
func appendBatchFrame(dst []byte, b *projector.Batch, maxPayload int) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeaderLen)...)
	dst = append(dst, kindBatch)
	dst = binary.AppendUvarint(dst, uint64(len(b.KVs)))
	prev := &projector.KeyVersion{}
	for i := range b.KVs {
		kv := &b.KVs[i]
		if kv.Cmd < projector.Upsert || kv.Cmd > projector.Snapshot {
			return dst, fmt.Errorf("key version %d: unknown command %d", i, kv.Cmd)
		}
		dst = appendKV(dst, kv, prev)
		prev = kv
		if n := len(dst) - start - frameHeaderLen; n > maxPayload {
			return dst, fmt.Errorf("%w: batch of %d key versions passes the %d-byte limit at key version %d",
				ErrFrameTooLarge, len(b.KVs), maxPayload, i)
		}
	}
	return sealFrame(dst, start), nil
}

// appendKV appends kv, leaving out what it shares with prev.
func appendKV(dst []byte, kv, prev *projector.KeyVersion) []byte {
	head := byte(kv.Cmd)
	sameMut := kv.Vb == prev.Vb && kv.Vbuuid == prev.Vbuuid && kv.Seqno == prev.Seqno && kv.EmitNanos == prev.EmitNanos
	sameDoc := bytes.Equal(kv.DocID, prev.DocID)
	if sameMut {
		head |= flagSameMut
	}
	if sameDoc {
		head |= flagSameDoc
	}
	dst = append(dst, head)
	dst = binary.AppendUvarint(dst, kv.InstID)
	dst = binary.AppendVarint(dst, int64(kv.Partition))
	if !sameMut {
		dst = binary.AppendUvarint(dst, uint64(kv.Vb))
		dst = binary.AppendUvarint(dst, uint64(kv.Vbuuid))
		dst = binary.AppendUvarint(dst, uint64(kv.Seqno))
		dst = binary.AppendVarint(dst, kv.EmitNanos)
	}
	if !sameDoc {
		dst = binary.AppendUvarint(dst, uint64(len(kv.DocID)))
		dst = append(dst, kv.DocID...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(kv.Key)))
	dst = append(dst, kv.Key...)
	if kv.Cmd == projector.Snapshot {
		dst = binary.AppendUvarint(dst, uint64(kv.SnapStart))
		dst = binary.AppendUvarint(dst, uint64(kv.SnapEnd))
	}
	return dst
}

// sealFrame fills in the header of the frame that starts at dst[start].
func sealFrame(dst []byte, start int) []byte {
	payload := dst[start+frameHeaderLen:]
	binary.BigEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, castagnoli))
	return dst
}

// parseHeader returns the payload length and checksum a frame header
// announces.
func parseHeader(hdr []byte, maxPayload int) (n int, sum uint32, err error) {
	length := binary.BigEndian.Uint32(hdr)
	switch {
	case length == 0:
		return 0, 0, protocolErrorf("empty frame")
	case uint64(length) > uint64(maxPayload):
		return 0, 0, fmt.Errorf("%w: %w: frame of %d bytes is over the %d-byte limit", ErrProtocol, ErrFrameTooLarge, length, maxPayload)
	}
	return int(length), binary.BigEndian.Uint32(hdr[4:]), nil
}

// decodePayload checks a frame's payload against its checksum and decodes
// it: a batch, or io.EOF for the end-of-stream frame. The batch's DocID and
// Key slices point into payload.
func decodePayload(payload []byte, sum uint32, pool *projector.BatchPool) (*projector.Batch, error) {
	if got := crc32.Checksum(payload, castagnoli); got != sum {
		return nil, protocolErrorf("checksum mismatch: header says %08x, %d-byte payload has %08x", sum, len(payload), got)
	}
	switch payload[0] {
	case kindEnd:
		if len(payload) != 1 {
			return nil, protocolErrorf("end-of-stream frame has %d trailing bytes", len(payload)-1)
		}
		return nil, io.EOF
	case kindBatch:
		return decodeBatch(payload[1:], pool)
	default:
		return nil, protocolErrorf("unknown frame kind %d", payload[0])
	}
}

// decodeBatch decodes a batch frame's payload past its kind byte. It
// accepts only what appendBatchFrame produces, so every batch has one
// encoding.
func decodeBatch(p []byte, pool *projector.BatchPool) (*projector.Batch, error) {
	d := decoder{buf: p}
	count := d.uvarint("key version count")
	if d.err == nil && count > uint64(len(p)-d.off)/minKVLen {
		return nil, protocolErrorf("batch claims %d key versions in %d bytes", count, len(p)-d.off)
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, d.err)
	}
	var b *projector.Batch
	if pool != nil {
		b = pool.Get(int(count))
	} else {
		b = &projector.Batch{KVs: make([]projector.KeyVersion, 0, count)}
	}
	prev := &projector.KeyVersion{}
	for i := range int(count) {
		b.KVs = append(b.KVs, projector.KeyVersion{})
		kv := &b.KVs[i]
		d.keyVersion(kv, prev)
		if d.err != nil {
			return nil, fmt.Errorf("%w: key version %d of %d: %w", ErrProtocol, i, count, d.err)
		}
		prev = kv
	}
	if d.off != len(p) {
		return nil, protocolErrorf("%d bytes after the last key version", len(p)-d.off)
	}
	return b, nil
}

// decoder reads fields from a payload; the first failure sticks in err.
type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) keyVersion(kv, prev *projector.KeyVersion) {
	head := d.byte("command")
	kv.Cmd = projector.Command(head & cmdMask)
	if d.err == nil && (head&^(cmdMask|flagSameMut|flagSameDoc) != 0 || kv.Cmd < projector.Upsert || kv.Cmd > projector.Snapshot) {
		d.err = fmt.Errorf("unknown command byte %#02x", head)
		return
	}
	kv.InstID = d.uvarint("instance id")
	kv.Partition = d.int("partition")
	if head&flagSameMut != 0 {
		kv.Vb, kv.Vbuuid, kv.Seqno, kv.EmitNanos = prev.Vb, prev.Vbuuid, prev.Seqno, prev.EmitNanos
	} else {
		vb := d.uvarint("vbucket")
		if d.err == nil && vb > math.MaxUint16 {
			d.err = fmt.Errorf("vbucket %d is out of range", vb)
		}
		kv.Vb = upr.Vbno(vb)
		kv.Vbuuid = upr.Vbuuid(d.uvarint("vbuuid"))
		kv.Seqno = upr.Seqno(d.uvarint("seqno"))
		kv.EmitNanos = d.varint("emit time")
		if d.err == nil && kv.Vb == prev.Vb && kv.Vbuuid == prev.Vbuuid && kv.Seqno == prev.Seqno && kv.EmitNanos == prev.EmitNanos {
			d.err = errors.New("mutation fields repeat the previous key version's without the flag saying so")
		}
	}
	if head&flagSameDoc != 0 {
		kv.DocID = prev.DocID
	} else {
		kv.DocID = d.bytes("document id")
		if d.err == nil && bytes.Equal(kv.DocID, prev.DocID) {
			d.err = errors.New("document id repeats the previous key version's without the flag saying so")
		}
	}
	kv.Key = d.bytes("key")
	if kv.Cmd == projector.Snapshot {
		kv.SnapStart = upr.Seqno(d.uvarint("snapshot start"))
		kv.SnapEnd = upr.Seqno(d.uvarint("snapshot end"))
	}
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if d.off == len(d.buf) {
		d.err = fmt.Errorf("%s: truncated", field)
		return 0
	}
	d.off++
	return d.buf[d.off-1]
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, err := d.readUvarint()
	if err != nil {
		d.err = fmt.Errorf("%s: %w", field, err)
	}
	return v
}

// readUvarint reads a minimally encoded uvarint: a longer encoding of the
// same value would decode too, but would not re-encode to the same bytes.
func (d *decoder) readUvarint() (uint64, error) {
	v, n := binary.Uvarint(d.buf[d.off:])
	switch {
	case n == 0:
		return 0, errors.New("truncated")
	case n < 0:
		return 0, errors.New("varint overflows 64 bits")
	case n > 1 && d.buf[d.off+n-1] == 0:
		return 0, errors.New("varint is not minimally encoded")
	}
	d.off += n
	return v, nil
}

// varint reads a zigzag varint, as binary.AppendVarint writes it.
func (d *decoder) varint(field string) int64 {
	u := d.uvarint(field)
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

func (d *decoder) int(field string) int {
	v := d.varint(field)
	if d.err == nil && int64(int(v)) != v {
		d.err = fmt.Errorf("%s: %d overflows int", field, v)
	}
	return int(v)
}

// bytes reads a length-prefixed byte string as a slice of the payload,
// capped so an append cannot overwrite the next field; empty is nil.
func (d *decoder) bytes(field string) []byte {
	if d.err != nil {
		return nil
	}
	n, err := d.readUvarint()
	if err != nil {
		d.err = fmt.Errorf("%s length: %w", field, err)
		return nil
	}
	if n > uint64(len(d.buf)-d.off) {
		d.err = fmt.Errorf("%s: %d bytes announced, %d left: truncated", field, n, len(d.buf)-d.off)
		return nil
	}
	if n == 0 {
		return nil
	}
	end := d.off + int(n)
	b := d.buf[d.off:end:end]
	d.off = end
	return b
}
