package dataport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/idxbench/idxbench/projector"
)

// TestReconnect cuts a session's connection after a given number of bytes
// (between frames, inside a header, inside a payload) and opens a second
// session of the stream. The receiver gets an exact prefix of whole
// batches from the first session, an error (not io.EOF), then every batch
// of the second, which resumes where the receiver stopped, as the index
// node's restarted streams would.
func TestReconnect(t *testing.T) {
	const n = 6
	batches := make([]*projector.Batch, n)
	var frames [][]byte
	for i := range batches {
		batches[i] = seqBatch(i*20, 20, 16)
		frames = append(frames, frameOf(t, batches[i]))
	}
	opts := SenderOptions{Stream: "MAINT", SenderID: "proj-1"}
	helloLen := len(appendHello(nil, hello{version: protocolVersion, stream: opts.Stream, sender: opts.SenderID}))
	upTo := func(k int) int {
		total := helloLen
		for _, f := range frames[:k] {
			total += len(f)
		}
		return total
	}
	for _, tc := range []struct {
		name  string
		limit int // bytes the sender gets through
		whole int // batches the receiver gets
	}{
		{"after one frame", upTo(1), 1},
		{"between frames", upTo(3), 3},
		{"inside a header", upTo(3) + 5, 3},
		{"inside a payload", upTo(3) + frameHeaderLen + 10, 3},
		{"one byte short", upTo(n) - 1, n - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t, ReceiverOptions{})
			proxy := cutProxy(t, l.Addr().String(), tc.limit)

			// Session 1, through the proxy.
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				s, err := Dial(context.Background(), proxy, opts)
				if err != nil {
					t.Error(err)
					return
				}
				for _, b := range batches {
					if s.Send(context.Background(), b) != nil {
						break // the proxy cut the connection
					}
				}
				_ = s.Close()
			}()
			c1, err := l.Accept(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var got []*projector.Batch
			for {
				b, err := c1.Recv(context.Background())
				if err != nil {
					if err == io.EOF || !errors.Is(err, ErrCut) {
						t.Fatalf("session 1 ended with %v, want ErrCut", err)
					}
					break
				}
				got = append(got, b)
			}
			<-sent
			_ = c1.Close()
			if len(got) != tc.whole {
				t.Fatalf("session 1 delivered %d batches, want %d", len(got), tc.whole)
			}

			// Session 2, direct, from the first batch not delivered.
			s2, c2 := connect(t, l, opts)
			go func() {
				for _, b := range batches[len(got):] {
					if err := s2.Send(context.Background(), b); err != nil {
						t.Error(err)
						return
					}
				}
				_ = s2.Close()
			}()
			for {
				b, err := c2.Recv(context.Background())
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("session 2: %v", err)
				}
				got = append(got, b)
			}
			if len(got) != n {
				t.Fatalf("got %d batches over both sessions, want %d", len(got), n)
			}
			for i := range got {
				equalBatch(t, fmt.Sprintf("batch %d", i), got[i], batches[i])
			}
		})
	}
}

// cutProxy forwards one connection to target, passing the first limit
// bytes the client sends, then cutting both sides.
func cutProxy(t *testing.T, target string, limit int) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer ln.Close()
		cli, err := ln.Accept()
		if err != nil {
			return
		}
		defer cli.Close()
		srv, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		wg.Go(func() { _, _ = io.Copy(cli, srv) })
		_, _ = io.CopyN(srv, cli, int64(limit))
		_ = srv.Close()
	})
	t.Cleanup(wg.Wait)
	return ln.Addr().String()
}
