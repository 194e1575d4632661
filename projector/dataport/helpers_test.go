package dataport

import (
	"bufio"
	"context"
	"flag"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/upr"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: pick one and print it)")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testRand returns the test's random source, logging the seed and the
// command that replays it (shown when the test fails).
func testRand(t testing.TB) *rand.Rand {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed: %d (rerun with: go test ./projector/dataport -run '^%s$' -seed=%d)", seed, t.Name(), seed)
	return rand.New(rand.NewPCG(seed, seed))
}

var commands = []projector.Command{
	projector.Upsert, projector.Deletion, projector.UpsertDeletion, projector.Sync,
	projector.StreamBegin, projector.StreamEnd, projector.Snapshot,
}

// randU64 favours the values at varint length boundaries.
func randU64(r *rand.Rand) uint64 {
	switch r.IntN(5) {
	case 0:
		return 0
	case 1:
		return r.Uint64N(1 << 7)
	case 2:
		return 1<<(7*(1+r.IntN(9))) - 1 + r.Uint64N(2)
	case 3:
		return math.MaxUint64
	default:
		return r.Uint64()
	}
}

// randBytes returns nil for length 0, as the decoder does.
func randBytes(r *rand.Rand, maxLen int) []byte {
	n := r.IntN(maxLen + 1)
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// randBatch returns n key versions of random commands and contents. About
// half repeat the previous key version's mutation fields or document id,
// as the key versions of one mutation do.
func randBatch(r *rand.Rand, n int) *projector.Batch {
	b := &projector.Batch{KVs: make([]projector.KeyVersion, n)}
	var prev projector.KeyVersion
	for i := range b.KVs {
		kv := projector.KeyVersion{
			Cmd:       commands[r.IntN(len(commands))],
			InstID:    randU64(r),
			Partition: int(int64(randU64(r))),
			Key:       randBytes(r, 48),
		}
		if r.IntN(2) == 0 {
			kv.Vb, kv.Vbuuid, kv.Seqno, kv.EmitNanos = prev.Vb, prev.Vbuuid, prev.Seqno, prev.EmitNanos
		} else {
			kv.Vb, kv.Vbuuid, kv.Seqno, kv.EmitNanos = upr.Vbno(randU64(r)), upr.Vbuuid(randU64(r)), upr.Seqno(randU64(r)), int64(randU64(r))
		}
		if r.IntN(2) == 0 {
			kv.DocID = prev.DocID
		} else {
			kv.DocID = randBytes(r, 24)
		}
		if kv.Cmd == projector.Snapshot {
			kv.SnapStart, kv.SnapEnd = upr.Seqno(randU64(r)), upr.Seqno(randU64(r))
		}
		b.KVs[i] = kv
		prev = kv
	}
	return b
}

// seqBatch returns a batch of n Upserts whose seqnos start at first, so a
// receiver can tell which batch it got.
func seqBatch(first, n, keyLen int) *projector.Batch {
	b := &projector.Batch{KVs: make([]projector.KeyVersion, n)}
	for i := range b.KVs {
		key := make([]byte, keyLen)
		for j := range key {
			key[j] = byte(first + i + j)
		}
		b.KVs[i] = projector.KeyVersion{Cmd: projector.Upsert, InstID: 7, Vb: upr.Vbno(i % 1024), Vbuuid: 0xfeedface,
			Seqno: upr.Seqno(first + i), DocID: []byte("doc"), Key: key}
	}
	return b
}

// frameOf encodes b as one frame.
func frameOf(t testing.TB, b *projector.Batch) []byte {
	t.Helper()
	f, err := appendBatchFrame(nil, b, maxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// rawFrame seals payload into a frame with a correct header.
func rawFrame(payload ...byte) []byte {
	return sealFrame(append(make([]byte, frameHeaderLen), payload...), 0)
}

// readerConn is a Conn reading frames from r, as if past the handshake.
func readerConn(r io.Reader, maxFrame int) *Conn {
	return &Conn{nc: readerNetConn{r: r}, br: bufio.NewReaderSize(r, 4096), maxFrame: maxFrame,
		session: session{stream: "MAINT", sender: "test"}}
}

// readerNetConn is the net.Conn of a readerConn: only deadlines are
// called on it, and they do nothing.
type readerNetConn struct {
	net.Conn
	r io.Reader
}

func (c readerNetConn) Read(p []byte) (int, error)    { return c.r.Read(p) }
func (readerNetConn) SetReadDeadline(time.Time) error { return nil }

func equalBatch(t testing.TB, what string, got, want *projector.Batch) {
	t.Helper()
	if len(got.KVs) != len(want.KVs) {
		t.Fatalf("%s: got %d key versions, want %d", what, len(got.KVs), len(want.KVs))
	}
	for i := range want.KVs {
		if !reflect.DeepEqual(got.KVs[i], want.KVs[i]) {
			t.Fatalf("%s: key version %d:\n got %+v\nwant %+v", what, i, got.KVs[i], want.KVs[i])
		}
	}
}

// listen starts a receiver on loopback, closed when the test ends.
func listen(t testing.TB, opts ReceiverOptions) *Listener {
	t.Helper()
	l, err := Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// connect dials l and accepts the session, closing both when the test ends.
func connect(t testing.TB, l *Listener, opts SenderOptions) (*Sender, *Conn) {
	t.Helper()
	type dialed struct {
		s   *Sender
		err error
	}
	ch := make(chan dialed, 1)
	go func() {
		s, err := Dial(context.Background(), l.Addr().String(), opts)
		ch <- dialed{s, err}
	}()
	c, aerr := l.Accept(context.Background())
	d := <-ch
	if d.err != nil {
		t.Fatal(d.err)
	}
	if aerr != nil {
		t.Fatal(aerr)
	}
	t.Cleanup(func() { _ = d.s.Close(); _ = c.Close() })
	return d.s, c
}

// pipeConnect opens a session over net.Pipe, whose writes block until
// read: no socket buffers, so what the sender gets out is exactly what the
// Conn has read.
func pipeConnect(t testing.TB, sopts SenderOptions, ropts ReceiverOptions) (*Sender, *Conn, *countConn) {
	t.Helper()
	cli, srv := net.Pipe()
	cs := &countConn{Conn: srv}
	l := &Listener{opts: *ropts.EnsureDefaults(), live: make(map[session]*Conn)}
	type accepted struct {
		c   *Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := l.handshake(context.Background(), cs)
		ch <- accepted{c, err}
	}()
	s, err := newSender(context.Background(), cli, *sopts.EnsureDefaults())
	a := <-ch
	if err != nil {
		t.Fatal(err)
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	t.Cleanup(func() { _ = cli.Close(); _ = srv.Close() })
	return s, a.c, cs
}

// countConn counts the bytes read from a connection.
type countConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}
