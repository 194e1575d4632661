package dataport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/upr"
)

// TestSession sends many random batches over loopback: they arrive whole,
// in order, then io.EOF.
func TestSession(t *testing.T) {
	r := testRand(t)
	var pool projector.BatchPool
	l := listen(t, ReceiverOptions{Pool: &pool})
	s, c := connect(t, l, SenderOptions{Stream: "INIT", SenderID: "proj-1"})
	if c.Stream() != "INIT" || c.SenderID() != "proj-1" {
		t.Fatalf("session announced as %q from %q, want INIT from proj-1", c.Stream(), c.SenderID())
	}
	batches := make([]*projector.Batch, 500)
	for i := range batches {
		batches[i] = randBatch(r, r.IntN(300))
	}
	errc := make(chan error, 1)
	go func() {
		for _, b := range batches {
			if err := s.Send(context.Background(), b); err != nil {
				errc <- err
				return
			}
		}
		errc <- s.Close()
	}()
	for i, want := range batches {
		got, err := c.Recv(context.Background())
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		equalBatch(t, fmt.Sprintf("batch %d", i), got, want)
		pool.Put(got)
	}
	if _, err := c.Recv(context.Background()); err != io.EOF {
		t.Fatalf("after the last batch: got %v, want io.EOF", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestSenderPool: a batch Send has written goes back to the pool.
func TestSenderPool(t *testing.T) {
	var pool projector.BatchPool
	l := listen(t, ReceiverOptions{})
	s, c := connect(t, l, SenderOptions{Pool: &pool})
	b := seqBatch(1, 10, 8)
	want := seqBatch(1, 10, 8)
	if err := s.Send(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if len(b.KVs) != 0 {
		t.Fatalf("a sent batch still holds %d key versions: it was not put back", len(b.KVs))
	}
	got, err := c.Recv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	equalBatch(t, "pooled batch", got, want)
}

// TestFrameTooLarge: the sender refuses a batch over the smaller of the
// two limits and stays usable; a frame header over the receiver's limit
// is a protocol error.
func TestFrameTooLarge(t *testing.T) {
	for _, tc := range []struct {
		name         string
		send, recv   int
		batchKeySize int
	}{
		{"sender's limit", 4096, 0, 100},
		{"receiver's limit", 0, 4096, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t, ReceiverOptions{MaxFrameSize: tc.recv})
			s, c := connect(t, l, SenderOptions{MaxFrameSize: tc.send})
			err := s.Send(context.Background(), seqBatch(1, 100, tc.batchKeySize))
			if !errors.Is(err, ErrFrameTooLarge) || !strings.Contains(err.Error(), "4096-byte limit") {
				t.Fatalf("got %v, want ErrFrameTooLarge naming the 4096-byte limit", err)
			}
			small := seqBatch(1, 10, tc.batchKeySize)
			if err := s.Send(context.Background(), small); err != nil {
				t.Fatalf("after a refused batch: %v", err)
			}
			got, err := c.Recv(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			equalBatch(t, "batch after the refused one", got, small)
		})
	}

	t.Run("receiver", func(t *testing.T) {
		l := listen(t, ReceiverOptions{MaxFrameSize: 4096})
		raw, c := rawConnect(t, l, hello{version: protocolVersion, stream: "MAINT"})
		header := []byte{0, 0, 0x10, 0x01, 0, 0, 0, 0} // 4097 bytes
		if _, err := raw.Write(header); err != nil {
			t.Fatal(err)
		}
		_, err := c.Recv(context.Background())
		if !errors.Is(err, ErrProtocol) || !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("got %v, want a protocol error wrapping ErrFrameTooLarge", err)
		}
	})
}

// rawConnect opens a session with a hand-made hello, for tests that write
// bytes the Sender would not.
func rawConnect(t *testing.T, l *Listener, h hello) (net.Conn, *Conn) {
	t.Helper()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	if _, err := raw.Write(appendHello(nil, h)); err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	rp, err := readReply(raw)
	if err != nil || !rp.accepted {
		t.Fatalf("handshake: %+v, %v", rp, err)
	}
	return raw, c
}

// TestHandshakeRefused: a bad hello is refused with its reason, and the
// listener goes on to accept the next sender.
func TestHandshakeRefused(t *testing.T) {
	l := listen(t, ReceiverOptions{Streams: []string{"MAINT", "INIT"}})
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := l.Accept(context.Background())
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()

	for _, tc := range []struct {
		name   string
		hello  []byte
		reason string
	}{
		{"bad magic", []byte("GET / HTTP/1.1\r\n\r\n"), `bad magic "GET " in hello: not a dataport sender`},
		{"wrong version", appendHello(nil, hello{version: 2, stream: "MAINT"}), "protocol version 2 is not supported: this receiver speaks version 1"},
	} {
		raw, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Write(tc.hello); err != nil {
			t.Fatal(err)
		}
		rp, err := readReply(raw)
		_ = raw.Close()
		if err != nil || rp.accepted || !strings.Contains(rp.reason, tc.reason) {
			t.Errorf("%s: got %+v, %v; want a refusal saying %q", tc.name, rp, err, tc.reason)
		}
	}

	_, err := Dial(context.Background(), l.Addr().String(), SenderOptions{Stream: "BACKFILL"})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `stream "BACKFILL" is not served here`) {
		t.Errorf("unserved stream: got %v, want ErrRefused naming the stream", err)
	}

	s, err := Dial(context.Background(), l.Addr().String(), SenderOptions{Stream: "INIT"})
	if err != nil {
		t.Fatal(err)
	}
	c := <-accepted
	if c.Stream() != "INIT" {
		t.Errorf("accepted stream %q, want INIT", c.Stream())
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if _, err := c.Recv(context.Background()); err != io.EOF {
		t.Errorf("got %v, want io.EOF", err)
	}
	_ = c.Close()
}

// TestDialNotADataport: Dial names a peer that does not speak the
// protocol.
func TestDialNotADataport(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = nc.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		_ = nc.Close()
	}()
	_, err = Dial(context.Background(), ln.Addr().String(), SenderOptions{})
	<-done
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "not a dataport receiver") {
		t.Fatalf("got %v, want a protocol error saying the peer is not a dataport receiver", err)
	}
}

// TestSupersede: a new session of a stream from the same sender closes the
// old one; another sender's session of the stream is left alone.
func TestSupersede(t *testing.T) {
	l := listen(t, ReceiverOptions{})
	_, old := connect(t, l, SenderOptions{SenderID: "proj-1"})
	_, other := connect(t, l, SenderOptions{SenderID: "proj-2"})
	s, c := connect(t, l, SenderOptions{SenderID: "proj-1"})
	if _, err := old.Recv(context.Background()); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("old session: got %v, want ErrSuperseded", err)
	}
	if err := s.Send(context.Background(), seqBatch(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recv(context.Background()); err != nil {
		t.Fatalf("new session: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := other.Recv(ctx); err != context.Canceled {
		t.Fatalf("another sender's session: got %v, want it open (context.Canceled)", err)
	}
}

// TestAcceptCancel: ctx's end interrupts Accept; Close makes it fail.
func TestAcceptCancel(t *testing.T) {
	l := listen(t, ReceiverOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept(ctx)
		errc <- err
	}()
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	_ = l.Close()
	if _, err := l.Accept(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: got %v, want ErrClosed", err)
	}
}

// TestCancelSend: a Send stuck on a receiver that does not read returns
// when its ctx ends. The frame is larger than every buffer on the way, so
// the Send cannot finish; the receiver sees its first bytes arrive before
// the test cancels, so the Send is inside its write. A frame cut partway
// closes the session, and the receiver sees it torn.
func TestCancelSend(t *testing.T) {
	l := listen(t, ReceiverOptions{SocketReceiveBuffer: 64 << 10, ReadBufferSize: 4096})
	s, c := connect(t, l, SenderOptions{SocketSendBuffer: 64 << 10})
	big := seqBatch(1, 3000, 4000) // 12 MB, more than the largest tuned socket buffers
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Send(ctx, big) }()
	if _, err := c.br.Peek(1); err != nil {
		t.Fatal(err)
	}
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if err := s.Send(context.Background(), seqBatch(1, 1, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send after a frame was cut: got %v, want the cut's error", err)
	}
	if _, err := c.Recv(context.Background()); !errors.Is(err, ErrCut) || !strings.Contains(err.Error(), "torn frame") {
		t.Fatalf("receiver: got %v, want a torn frame", err)
	}
}

// TestCancelRecv: ctx's end interrupts a Recv; the Conn stays usable and
// finishes the frame it had begun.
func TestCancelRecv(t *testing.T) {
	l := listen(t, ReceiverOptions{})
	raw, c := rawConnect(t, l, hello{version: protocolVersion, stream: "MAINT"})
	b := seqBatch(1, 50, 10)
	frame := frameOf(t, b)
	if _, err := raw.Write(frame[:len(frame)/2]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Recv(ctx)
		errc <- err
	}()
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if _, err := raw.Write(frame[len(frame)/2:]); err != nil {
		t.Fatal(err)
	}
	got, err := c.Recv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	equalBatch(t, "frame finished after a cancelled Recv", got, b)
}

// TestCloseUnblocksRecv: Close from another goroutine ends a blocked Recv.
func TestCloseUnblocksRecv(t *testing.T) {
	l := listen(t, ReceiverOptions{})
	_, c := connect(t, l, SenderOptions{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Recv(context.Background())
		errc <- err
	}()
	_ = c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}

// TestBackpressure: while the receiver reads nothing, the sender gets out
// no more than the socket buffers and the read buffer hold, then blocks;
// when reading resumes, every batch arrives in order.
func TestBackpressure(t *testing.T) {
	const (
		sockBuf  = 64 << 10
		readBuf  = 16 << 10
		perBatch = 100
	)
	l := listen(t, ReceiverOptions{SocketReceiveBuffer: sockBuf, ReadBufferSize: readBuf})
	s, c := connect(t, l, SenderOptions{SocketSendBuffer: sockBuf})
	frameLen := len(frameOf(t, seqBatch(0, perBatch, 40)))
	// Linux doubles a requested socket buffer size (half of it is for
	// its bookkeeping); the read buffer and the hello come on top.
	bound := 2*(sockBuf+sockBuf) + readBuf + 512
	n := 4 * bound / frameLen // far more than can be in flight
	var sent atomic.Int64
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			if err := s.Send(context.Background(), seqBatch(i*perBatch, perBatch, 40)); err != nil {
				errc <- err
				return
			}
			sent.Add(int64(frameLen))
		}
		errc <- s.Close()
	}()

	// Wait until the sender has stopped making progress, or finished
	// (which backpressure should have made impossible). The wait only
	// paces the test: a slow machine may stop it early, so the check
	// below sees less, never more, than a blocked sender got out.
	for still := 0; still < 10; {
		before := sent.Load()
		select {
		case err := <-errc:
			t.Fatalf("the sender sent all %d bytes (%v) while the receiver read nothing; bound %d", n*frameLen, err, bound)
		case <-time.After(20 * time.Millisecond):
		}
		if sent.Load() == before {
			still++
		} else {
			still = 0
		}
	}
	got := sent.Load()
	t.Logf("sender blocked after %d bytes (%d frames of %d); bound %d", got, got/int64(frameLen), frameLen, bound)
	if got > int64(bound) {
		t.Fatalf("sender got %d bytes out while the receiver read nothing; bound %d", got, bound)
	}

	for i := range n {
		b, err := c.Recv(context.Background())
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if b.KVs[0].Seqno != upr.Seqno(i*perBatch) {
			t.Fatalf("batch %d starts at seqno %d, want %d", i, b.KVs[0].Seqno, i*perBatch)
		}
	}
	if _, err := c.Recv(context.Background()); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
