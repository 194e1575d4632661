package dataport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/projector"
)

// TestRoundTrip encodes random batches of every command and reads them
// back through a Conn's read path.
func TestRoundTrip(t *testing.T) {
	r := testRand(t)
	var batches []*projector.Batch
	var stream []byte
	for range 200 {
		b := randBatch(r, r.IntN(50))
		batches = append(batches, b)
		stream = append(stream, frameOf(t, b)...)
	}
	stream = append(stream, endFrame...)

	c := readerConn(bytes.NewReader(stream), DefaultMaxFrameSize)
	var seen [projector.Snapshot + 1]int
	for i, want := range batches {
		got, err := c.Recv(context.Background())
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		equalBatch(t, fmt.Sprintf("batch %d", i), got, want)
		for _, kv := range got.KVs {
			seen[kv.Cmd]++
		}
	}
	for _, cmd := range commands {
		if seen[cmd] == 0 {
			t.Errorf("no %v key version made the round trip", cmd)
		}
	}
	for range 2 {
		if _, err := c.Recv(context.Background()); err != io.EOF {
			t.Fatalf("after the end-of-stream frame: got %v, want io.EOF", err)
		}
	}
}

// TestMutationCompaction pins the flags: the key versions of one mutation
// carry its vbucket, seqno and document id once.
func TestMutationCompaction(t *testing.T) {
	doc := []byte("doc-0000000000001")
	kvs := []projector.KeyVersion{{Cmd: projector.Upsert, InstID: 1, Vb: 512, Vbuuid: 1 << 60, Seqno: 100000, DocID: doc, Key: []byte("k1"), EmitNanos: 1 << 62}}
	for i := range 4 {
		kv := kvs[0]
		kv.InstID, kv.Key = uint64(i+2), []byte("k"+string(rune('2'+i)))
		kvs = append(kvs, kv)
	}
	frame := frameOf(t, &projector.Batch{KVs: kvs})
	// Header, kind, count; the first key version in full (head, instid,
	// partition, vb 2, vbuuid 9, seqno 3, emit 10, doc 1+17, key 1+2);
	// the others head, instid, partition, key 1+2.
	if want := frameHeaderLen + 2 + (3 + 2 + 9 + 3 + 10 + 18 + 3) + 4*6; len(frame) != want {
		t.Fatalf("frame of one mutation for 5 indexes is %d bytes, want %d", len(frame), want)
	}
}

// TestDecodeErrors feeds a good frame then a bad one: the good batch is
// delivered, the bad one fails naming the problem, and the failure sticks.
func TestDecodeErrors(t *testing.T) {
	good := seqBatch(1, 3, 8)
	goodFrame := frameOf(t, good)
	oneKV := frameOf(t, seqBatch(10, 1, 4))

	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 0x40
		return b
	}
	withLength := func(n uint32) []byte {
		b := bytes.Clone(oneKV)
		b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		return b
	}
	for _, tc := range []struct {
		name string
		bad  []byte
		want error
		msg  string
	}{
		{"closed without end", nil, ErrCut, "without the end-of-stream frame"},
		{"torn header", oneKV[:5], ErrCut, "inside a frame header (5 of 8 bytes): torn frame"},
		{"torn payload", oneKV[:len(oneKV)-3], ErrCut, "torn frame"},
		{"bad checksum", flip(oneKV, len(oneKV)-1), ErrProtocol, "checksum mismatch"},
		{"bad checksum field", flip(oneKV, 5), ErrProtocol, "checksum mismatch"},
		{"over the limit", withLength(4097), ErrFrameTooLarge, "frame of 4097 bytes is over the 4096-byte limit"},
		{"empty frame", withLength(0), ErrProtocol, "empty frame"},
		{"unknown kind", rawFrame(9), ErrProtocol, "unknown frame kind 9"},
		{"end with trailing bytes", rawFrame(kindEnd, 0), ErrProtocol, "end-of-stream frame has 1 trailing bytes"},
		{"no count", rawFrame(kindBatch), ErrProtocol, "key version count: truncated"},
		{"count over payload", rawFrame(kindBatch, 2, 1, 0, 0, 0), ErrProtocol, "batch claims 2 key versions in 4 bytes"},
		{"command 0", rawFrame(kindBatch, 1, 0, 0, 0, 0), ErrProtocol, "unknown command byte 0x00"},
		{"command 8 bits", rawFrame(kindBatch, 1, 0x21, 0, 0, 0), ErrProtocol, "unknown command byte 0x21"},
		{"truncated key", rawFrame(kindBatch, 1, 0x18|1, 0, 0, 5, 'a'), ErrProtocol, "key: 5 bytes announced, 1 left: truncated"},
		{"truncated partition", rawFrame(kindBatch, 1, 0x18|1, 0, 0x80, 0x80), ErrProtocol, "partition: truncated"},
		{"non-minimal varint", rawFrame(kindBatch, 1, 0x18|1, 0x80, 0, 0, 0), ErrProtocol, "instance id: varint is not minimally encoded"},
		{"varint overflow", rawFrame(kindBatch, 1, 0x18|1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0), ErrProtocol, "instance id: varint overflows 64 bits"},
		{"vbucket out of range", rawFrame(kindBatch, 1, 0x10|1, 0, 0, 0x80, 0x80, 0x04, 0, 0, 0, 0), ErrProtocol, "vbucket 65536 is out of range"},
		{"mutation flag missing", rawFrame(kindBatch, 1, 0x10|1, 0, 0, 0, 0, 0, 0, 0), ErrProtocol, "mutation fields repeat"},
		{"document flag missing", rawFrame(kindBatch, 1, 0x08|1, 0, 0, 0, 0), ErrProtocol, "document id repeats"},
		{"trailing bytes", rawFrame(kindBatch, 1, 0x18|1, 0, 0, 0, 0), ErrProtocol, "1 bytes after the last key version"},
		{"snapshot truncated", rawFrame(kindBatch, 1, 0x18|7, 0, 0, 0, 1), ErrProtocol, "snapshot end: truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := readerConn(bytes.NewReader(append(bytes.Clone(goodFrame), tc.bad...)), 4096)
			got, err := c.Recv(context.Background())
			if err != nil {
				t.Fatalf("good frame: %v", err)
			}
			equalBatch(t, "good frame", got, good)
			for range 2 {
				b, err := c.Recv(context.Background())
				if b != nil || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("bad frame: got %v, %v; want an error wrapping %q and saying %q", b, err, tc.want, tc.msg)
				}
				if errors.Is(err, io.EOF) {
					t.Fatalf("bad frame: %v is io.EOF", err)
				}
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	big := seqBatch(1, 100, 100)
	if _, err := appendBatchFrame(nil, big, 4096); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("batch of ~10 KB under a 4 KiB limit: got %v, want ErrFrameTooLarge", err)
	}
	bad := &projector.Batch{KVs: []projector.KeyVersion{{Cmd: projector.Upsert}, {Cmd: 8}}}
	if _, err := appendBatchFrame(nil, bad, 4096); err == nil || !strings.Contains(err.Error(), "key version 1: unknown command 8") {
		t.Errorf("unknown command: got %v", err)
	}
}

// FuzzDecodeFrame reads a byte stream as frames. Whatever it delivers
// must re-encode to exactly the bytes it came from, so no bad frame ever
// yields a batch; it must never panic.
func FuzzDecodeFrame(f *testing.F) {
	const limit = 64 << 10
	r := testRand(f)
	var stream []byte
	for range 3 {
		fr := frameOf(f, randBatch(r, 5))
		f.Add(fr)
		stream = append(stream, fr...)
	}
	f.Add(append(stream, endFrame...))
	f.Add(endFrame)
	f.Add(stream[:len(stream)-1])
	f.Add(rawFrame(kindBatch, 1, 0x18|7, 0, 0, 0, 1, 2))
	f.Add(frameOf(f, randBatch(r, 3))[frameHeaderLen:])
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStream(t, data, limit)
		// Sealed as one frame, the bytes pass the checksum and reach
		// the payload decoder.
		checkStream(t, rawFrame(data...), limit)
	})
}

// checkStream reads data as frames and checks that what was delivered
// re-encodes to the bytes it came from.
func checkStream(t *testing.T, data []byte, limit int) {
	cr := &countReader{r: bytes.NewReader(data)}
	c := readerConn(cr, limit)
	var again []byte
	var err error
	for err == nil {
		var b *projector.Batch
		if b, err = c.Recv(context.Background()); err == nil {
			var eerr error
			if again, eerr = appendBatchFrame(again, b, limit); eerr != nil {
				t.Fatalf("re-encoding a decoded batch: %v", eerr)
			}
		}
	}
	if err == io.EOF {
		again = append(again, endFrame...)
		if consumed := cr.n - c.br.Buffered(); consumed != len(again) {
			t.Fatalf("end of stream after %d bytes, but the frames re-encode to %d", consumed, len(again))
		}
	}
	if !bytes.HasPrefix(data, again) {
		t.Fatalf("delivered frames re-encode to\n%x\nwhich does not start\n%x", again, data)
	}
}

type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzHello reads a hello: one it accepts re-encodes to the bytes it read.
func FuzzHello(f *testing.F) {
	f.Add(appendHello(nil, hello{version: protocolVersion, stream: "MAINT", sender: "proj-1"}))
	f.Add(appendHello(nil, hello{version: protocolVersion, stream: "INIT"}))
	f.Add(appendHello(nil, hello{version: 2, stream: "MAINT"}))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := readHello(r)
		if err != nil {
			return
		}
		read := data[:len(data)-r.Len()]
		again := appendHello(nil, h)
		if h.version != protocolVersion {
			again = again[:helloFixedLen]
		}
		if !bytes.Equal(read, again) {
			t.Fatalf("hello %+v read from %x re-encodes to %x", h, read, again)
		}
	})
}

// FuzzReply reads a handshake reply: one it accepts re-encodes to the
// bytes it read.
func FuzzReply(f *testing.F) {
	f.Add(appendReply(nil, reply{version: protocolVersion, accepted: true, maxFrame: DefaultMaxFrameSize}))
	f.Add(appendReply(nil, reply{version: protocolVersion, reason: "stream \"X\" is not served here"}))
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		rp, err := readReply(r)
		if err != nil {
			return
		}
		read := data[:len(data)-r.Len()]
		if again := appendReply(nil, rp); !bytes.Equal(read, again) {
			t.Fatalf("reply %+v read from %x re-encodes to %x", rp, read, again)
		}
	})
}
