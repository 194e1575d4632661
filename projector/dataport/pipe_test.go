package dataport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

// These tests run a session over net.Pipe inside a synctest bubble: a pipe
// write blocks until it is read, so what the sender got out is exactly
// what the Conn read, and synctest.Wait tells when every goroutine is
// blocked, without timing.

// TestBackpressurePipe: the Conn reads no more than one read buffer ahead
// of the frames Recv returned, so a receiver that stops calling Recv
// blocks the sender there; it resumes when Recv does.
func TestBackpressurePipe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const readBuf, n = 4096, 40
		s, c, counted := pipeConnect(t, SenderOptions{}, ReceiverOptions{ReadBufferSize: readBuf})
		hello := counted.n.Load()
		frameLen := int64(len(frameOf(t, seqBatch(0, 10, 40))))
		var sent atomic.Int64
		done := make(chan error, 1)
		go func() {
			for i := range n {
				if err := s.Send(context.Background(), seqBatch(i*10, 10, 40)); err != nil {
					done <- err
					return
				}
				sent.Add(1)
			}
			done <- s.Close()
		}()
		for k := range int64(3) {
			synctest.Wait()
			read := counted.n.Load() - hello
			if max := k*frameLen + readBuf; read > max {
				t.Fatalf("after %d Recvs the Conn read %d bytes, more than %d frames of %d and a read buffer", k, read, k, frameLen)
			}
			if sent.Load()*frameLen > read {
				t.Fatalf("sender finished %d frames, the Conn read only %d bytes", sent.Load(), read)
			}
			select {
			case err := <-done:
				t.Fatalf("sender finished (%v) while the receiver had called Recv %d times", err, k)
			default:
			}
			if _, err := c.Recv(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		for i := 3; i < n; i++ {
			b, err := c.Recv(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			equalBatch(t, fmt.Sprintf("batch %d", i), b, seqBatch(i*10, 10, 40))
		}
		if _, err := c.Recv(context.Background()); err != io.EOF {
			t.Fatalf("got %v, want io.EOF", err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestCancelSendPipe: a Send blocked before any byte of its frame left
// returns ctx.Err() and leaves the Sender usable.
func TestCancelSendPipe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, c, _ := pipeConnect(t, SenderOptions{}, ReceiverOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- s.Send(ctx, seqBatch(1, 5, 5)) }()
		synctest.Wait() // the Send is blocked: nobody reads
		cancel()
		if err := <-errc; err != context.Canceled {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		want := seqBatch(100, 5, 5)
		go func() { errc <- s.Send(context.Background(), want) }()
		got, err := c.Recv(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		equalBatch(t, "batch after a cancelled Send", got, want)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
}

// TestCancelRecvPipe: a Recv interrupted in the middle of a frame returns
// ctx.Err(); the next Recv finishes that frame.
func TestCancelRecvPipe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, c, _ := pipeConnect(t, SenderOptions{}, ReceiverOptions{})
		want := seqBatch(1, 50, 10)
		frame := frameOf(t, want)
		half := len(frame) / 2
		go func() { _, _ = s.nc.Write(frame[:half]) }()
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := c.Recv(ctx)
			errc <- err
		}()
		synctest.Wait() // Recv has the first half and waits for the rest
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if c.payload == nil || c.got != half-frameHeaderLen {
			t.Fatalf("the interrupted Recv kept %d payload bytes, want %d", c.got, half-frameHeaderLen)
		}
		go func() { _, _ = s.nc.Write(frame[half:]) }()
		got, err := c.Recv(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		equalBatch(t, "frame finished after a cancelled Recv", got, want)
	})
}
