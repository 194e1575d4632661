package queryport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/workload/defn"
)

// scannerFunc is a fake Scanner.
type scannerFunc func(ctx context.Context, req indexer.ScanRequest) (*indexer.ScanResult, error)

func (f scannerFunc) Scan(ctx context.Context, req indexer.ScanRequest) (*indexer.ScanResult, error) {
	return f(ctx, req)
}

// serve serves s on a loopback port; the server stops when the test ends,
// and Serve must then have returned ErrServerClosed.
func serve(t testing.TB, s Scanner, opts ServerOptions) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(s, opts)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return srv, l.Addr().String()
}

// dial returns a client of addr, closed when the test ends.
func dial(t testing.TB, addr string, opts ClientOptions) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	})
	return c
}

// numConns is how many connections c has open.
func numConns(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

// recv waits for ch, failing the test rather than hanging when what never
// happens.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("gave up waiting for %s", what)
		panic("unreachable")
	}
}

// TestScanRoundTrip: every sample request reaches the Scanner unchanged,
// and every sample result reaches the client unchanged.
func TestScanRoundTrip(t *testing.T) {
	reqs, results := sampleRequests(), sampleResults()
	got := make(chan indexer.ScanRequest, 1)
	_, addr := serve(t, scannerFunc(func(_ context.Context, req indexer.ScanRequest) (*indexer.ScanResult, error) {
		got <- req
		return results[len(req.Index)%len(results)], nil
	}), ServerOptions{})
	c := dial(t, addr, ClientOptions{})
	for i, req := range reqs {
		res, err := c.Scan(context.Background(), req)
		if err != nil {
			t.Fatalf("scan %d (%s): %v", i, req.Index, err)
		}
		if sr := recv(t, got, "the scanner's request"); !reflect.DeepEqual(sr, req) {
			t.Fatalf("scan %d: sent\n%#v\nscanner got\n%#v", i, req, sr)
		}
		if want := results[len(req.Index)%len(results)]; !reflect.DeepEqual(res, want) {
			t.Fatalf("scan %d (%s): scanner answered\n%#v\nclient got\n%#v", i, req.Index, want, res)
		}
	}
	if n := numConns(c); n != 1 {
		t.Fatalf("sequential scans used %d connections, want 1", n)
	}
}

// TestTypedErrors: each sentinel the server's error wraps is matched by
// errors.Is on the client, with the server's message text; other errors
// match none; a remote error leaves the connection usable.
func TestTypedErrors(t *testing.T) {
	sentinels := []error{
		indexer.ErrScanTimeout, indexer.ErrIndexRollback, indexer.ErrNoSuchIndex,
		indexer.ErrClosed, indexer.ErrRecovering, context.Canceled, context.DeadlineExceeded,
	}
	errs := map[string]error{"generic": errors.New("disk on fire: ünïcode")}
	for i, s := range sentinels {
		errs[fmt.Sprint(i)] = fmt.Errorf("scan %q: %w", "idx", s)
	}
	_, addr := serve(t, scannerFunc(func(_ context.Context, req indexer.ScanRequest) (*indexer.ScanResult, error) {
		return nil, errs[req.Index]
	}), ServerOptions{})
	c := dial(t, addr, ClientOptions{})
	for name, serverErr := range errs {
		_, err := c.Scan(context.Background(), indexer.ScanRequest{Index: name})
		var re *RemoteError
		if !errors.As(err, &re) || err.Error() != serverErr.Error() {
			t.Fatalf("server error %q: client got %v (%T)", serverErr, err, err)
		}
		for _, s := range sentinels {
			if want := errors.Is(serverErr, s); errors.Is(err, s) != want {
				t.Errorf("server error %q: errors.Is(client error, %q) = %v", serverErr, s, !want)
			}
		}
	}
	if n := numConns(c); n != 1 {
		t.Fatalf("remote errors left %d connections, want the one reused", n)
	}
}

// blockingScanner's scans wait for their ctx, then report its error.
type blockingScanner struct {
	started chan struct{}
	ended   chan error
}

func newBlockingScanner() *blockingScanner {
	return &blockingScanner{started: make(chan struct{}, 16), ended: make(chan error, 16)}
}

func (b *blockingScanner) Scan(ctx context.Context, _ indexer.ScanRequest) (*indexer.ScanResult, error) {
	b.started <- struct{}{}
	<-ctx.Done()
	b.ended <- ctx.Err()
	return nil, ctx.Err()
}

// TestCancelCancelsServerScan: a client's ended ctx returns its error at
// once and cancels the scan on the server.
func TestCancelCancelsServerScan(t *testing.T) {
	b := newBlockingScanner()
	_, addr := serve(t, b, ServerOptions{})
	c := dial(t, addr, ClientOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Scan(ctx, indexer.ScanRequest{Index: "i"})
		done <- err
	}()
	recv(t, b.started, "the scan to start")
	cancel()
	if err := recv(t, done, "Scan to return"); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("canceled scan: %v, want context.Canceled naming %s", err, addr)
	}
	if err := recv(t, b.ended, "the server-side scan to end"); !errors.Is(err, context.Canceled) {
		t.Fatalf("server-side scan ended with %v, want context.Canceled", err)
	}
	if n := numConns(c); n != 0 {
		t.Fatalf("the canceled scan's connection was kept (%d open)", n)
	}
}

// TestDeadlineTravels: the client's ctx deadline bounds the server-side
// scan, and either side's expiry reads as context.DeadlineExceeded.
func TestDeadlineTravels(t *testing.T) {
	deadlines := make(chan bool, 1)
	_, addr := serve(t, scannerFunc(func(ctx context.Context, _ indexer.ScanRequest) (*indexer.ScanResult, error) {
		_, ok := ctx.Deadline()
		deadlines <- ok
		<-ctx.Done()
		return nil, ctx.Err()
	}), ServerOptions{})
	c := dial(t, addr, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := c.Scan(ctx, indexer.ScanRequest{Index: "i"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("scan past its deadline: %v, want context.DeadlineExceeded", err)
	}
	// As in process, a scan that failed on its deadline returns with ctx
	// done, whichever side's copy of the deadline ran out first: a caller
	// that checks ctx.Err() after the scan must see it.
	if ctx.Err() == nil {
		t.Error("the scan returned DeadlineExceeded while its ctx was still live")
	}
	if !recv(t, deadlines, "the server-side scan") {
		t.Fatal("the server-side scan had no deadline")
	}
}

// TestNoBudgetLeft: a ctx whose deadline has passed but whose timer has
// not fired yet still ends the scan with ctx done.
func TestNoBudgetLeft(t *testing.T) {
	_, addr := serve(t, scannerFunc(func(ctx context.Context, _ indexer.ScanRequest) (*indexer.ScanResult, error) {
		return &indexer.ScanResult{}, nil
	}), ServerOptions{})
	c := dial(t, addr, ClientOptions{})
	for range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(200))*time.Microsecond)
		_, err := c.Scan(ctx, indexer.ScanRequest{Index: "i"})
		if err != nil && ctx.Err() == nil {
			t.Fatalf("scan failed with %v while its ctx was live", err)
		}
		cancel()
	}
}

// TestClientCloseCancelsScan: Close interrupts a scan in flight, which
// fails with ErrClientClosed and is canceled on the server.
func TestClientCloseCancelsScan(t *testing.T) {
	b := newBlockingScanner()
	_, addr := serve(t, b, ServerOptions{})
	c, err := Dial(context.Background(), addr, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Scan(context.Background(), indexer.ScanRequest{})
		done <- err
	}()
	recv(t, b.started, "the scan to start")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done, "Scan to return"); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("scan interrupted by Close: %v, want ErrClientClosed", err)
	}
	if err := recv(t, b.ended, "the server-side scan to end"); !errors.Is(err, context.Canceled) {
		t.Fatalf("server-side scan ended with %v", err)
	}
	if _, err := c.Scan(context.Background(), indexer.ScanRequest{}); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("scan after Close: %v", err)
	}
}

// TestServerCloseInFlight: closing the server fails the scans in flight
// (none hangs), and later scans fail naming the address.
func TestServerCloseInFlight(t *testing.T) {
	b := newBlockingScanner()
	srv, addr := serve(t, b, ServerOptions{})
	c := dial(t, addr, ClientOptions{})
	const n = 4
	done := make(chan error, n)
	for range n {
		go func() {
			_, err := c.Scan(context.Background(), indexer.ScanRequest{})
			done <- err
		}()
	}
	for range n {
		recv(t, b.started, "the scans to start")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := recv(t, done, "Scan to return"); err == nil || !strings.Contains(err.Error(), addr) {
			t.Fatalf("scan in flight at server Close: %v, want an error naming %s", err, addr)
		}
	}
	for range n {
		if err := recv(t, b.ended, "the server-side scans to end"); !errors.Is(err, context.Canceled) {
			t.Fatalf("server-side scan ended with %v", err)
		}
	}
	if _, err := c.Scan(context.Background(), indexer.ScanRequest{}); err == nil || !strings.Contains(err.Error(), "dial "+addr) {
		t.Fatalf("scan after server Close: %v", err)
	}
}

// TestConcurrentScans: scans from many goroutines each get their own
// answer, some of them large, over pooled connections.
func TestConcurrentScans(t *testing.T) {
	_, addr := serve(t, scannerFunc(func(_ context.Context, req indexer.ScanRequest) (*indexer.ScanResult, error) {
		es := make([]defn.Entry, req.Limit)
		for i := range es {
			es[i] = defn.Entry{Key: []any{req.Index, float64(i)}, DocID: req.Index}
		}
		return &indexer.ScanResult{Entries: es, Count: req.Limit}, nil
	}), ServerOptions{})
	c := dial(t, addr, ClientOptions{MaxIdleConns: 4})
	const goroutines, scans = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range scans {
				name, limit := fmt.Sprintf("g%d-%d", g, i), (g*scans+i)%7*300
				res, err := c.Scan(context.Background(), indexer.ScanRequest{Index: name, Limit: limit})
				if err != nil {
					errs <- err
					return
				}
				if res.Count != limit || len(res.Entries) != limit || (limit > 0 && res.Entries[limit-1].DocID != name) {
					errs <- fmt.Errorf("scan %s of %d entries got %d, count %d", name, limit, len(res.Entries), res.Count)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := numConns(c); n > 4 {
		t.Fatalf("%d connections kept, MaxIdleConns is 4", n)
	}
}

// TestFrameLimits: a result too large for the client and a request too
// large for the server fail with an error saying so, and the connection
// stays usable.
func TestFrameLimits(t *testing.T) {
	_, addr := serve(t, scannerFunc(func(_ context.Context, req indexer.ScanRequest) (*indexer.ScanResult, error) {
		return &indexer.ScanResult{Entries: make([]defn.Entry, req.Limit), Count: req.Limit}, nil
	}), ServerOptions{MaxRequestBytes: MinFrameLimit})
	c := dial(t, addr, ClientOptions{MaxResultBytes: MinFrameLimit})

	_, err := c.Scan(context.Background(), indexer.ScanRequest{Limit: MinFrameLimit})
	var re *RemoteError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "exceeds the client's frame limit of 4096 bytes") {
		t.Fatalf("oversized result: %v", err)
	}
	_, err = c.Scan(context.Background(), indexer.ScanRequest{Equal: []any{strings.Repeat("k", MinFrameLimit)}})
	if err == nil || !strings.Contains(err.Error(), "exceeds the server's frame limit of 4096 bytes") {
		t.Fatalf("oversized request: %v", err)
	}
	_, err = c.Scan(context.Background(), indexer.ScanRequest{Equal: []any{1}})
	if err == nil || !strings.Contains(err.Error(), "cannot encode a value of type int") {
		t.Fatalf("unencodable request: %v", err)
	}
	if res, err := c.Scan(context.Background(), indexer.ScanRequest{Limit: 10}); err != nil || res.Count != 10 {
		t.Fatalf("scan after refused ones: %v %v", res, err)
	}
	if n := numConns(c); n != 1 {
		t.Fatalf("refused scans left %d connections, want the one reused", n)
	}
}

// fakePeer accepts one connection on a loopback port and runs fn on it.
func fakePeer(t *testing.T, fn func(net.Conn)) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		fn(nc)
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// TestHandshake: the client names what is wrong with a server's hello;
// the server answers a client of another version with its own hello and
// hangs up on one that is not speaking this protocol.
func TestHandshake(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply []byte
		want  string
	}{
		{"other version", appendHello(nil, hello{version: 99, maxFrame: 1 << 20}), "server speaks version 99, client 1"},
		{"not a query port", []byte("HTTP/1.1 400 Bad Request\r\n"), `bad magic "HTTP"`},
		{"hangs up", nil, "read hello: EOF"},
	} {
		addr := fakePeer(t, func(nc net.Conn) {
			io.ReadFull(nc, make([]byte, helloLen))
			nc.Write(tc.reply)
		})
		_, err := Dial(context.Background(), addr, ClientOptions{})
		if err == nil || !strings.Contains(err.Error(), "handshake with "+addr) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a handshake error with %q", tc.name, err, tc.want)
		}
	}

	_, addr := serve(t, scannerFunc(nil), ServerOptions{})
	rawHello := func(out []byte) (hello, error) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.Write(out)
		h, err := readHello(nc)
		if err == nil {
			if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("after the hellos: %v, want the server to hang up", err)
			}
		}
		return h, err
	}
	if h, err := rawHello(appendHello(nil, hello{version: 99, maxFrame: 1 << 20})); err != nil || h.version != Version {
		t.Errorf("server's hello to a client of version 99: %+v %v", h, err)
	}
	if _, err := rawHello([]byte("GET / HTTP/1.1\r\n\r\n")); err == nil || !strings.Contains(err.Error(), "EOF") {
		t.Errorf("server's answer to HTTP: %v, want it to hang up", err)
	}
}

// TestServerDropsBadFrames: a client sending an oversized, torn or
// undecodable frame is disconnected.
func TestServerDropsBadFrames(t *testing.T) {
	_, addr := serve(t, scannerFunc(func(context.Context, indexer.ScanRequest) (*indexer.ScanResult, error) {
		return &indexer.ScanResult{}, nil
	}), ServerOptions{})
	for name, bad := range map[string][]byte{
		"oversized":   frame(2<<20, byte(frameRequest)),
		"wrong type":  frame(1, byte(frameResult)),
		"undecodable": frame(3, byte(frameRequest), 0xff, 0xff),
	} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(appendHello(nil, hello{version: Version, maxFrame: 1 << 20}))
		if _, err := readHello(nc); err != nil {
			t.Fatal(err)
		}
		nc.Write(bad)
		if n, err := nc.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s frame: the server answered %d bytes instead of hanging up", name, n)
		}
		nc.Close()
	}
}

func TestDialErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := Dial(context.Background(), addr, ClientOptions{}); err == nil || !strings.Contains(err.Error(), "queryport: dial "+addr) {
		t.Fatalf("dial a closed port: %v, want an error naming %s", err, addr)
	}
	if _, err := Dial(context.Background(), addr, ClientOptions{MaxResultBytes: 10}); err == nil || !strings.Contains(err.Error(), "max result size 10") {
		t.Fatalf("dial with invalid options: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	addr = fakePeer(t, func(nc net.Conn) { io.Copy(io.Discard, nc) })
	if _, err := Dial(ctx, addr, ClientOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("dial with a canceled ctx: %v", err)
	}
}

func TestOptions(t *testing.T) {
	var so ServerOptions
	if err := so.EnsureDefaults().Validate(); err != nil {
		t.Fatalf("default server options: %v", err)
	}
	if got, want := so.String(), "max_request_bytes=1048576 handshake_timeout=10s"; got != want {
		t.Errorf("server options: %q, want %q", got, want)
	}
	var co ClientOptions
	if err := co.EnsureDefaults().Validate(); err != nil {
		t.Fatalf("default client options: %v", err)
	}
	if got, want := co.String(), "max_result_bytes=67108864 max_idle_conns=16 dial_timeout=5s"; got != want {
		t.Errorf("client options: %q, want %q", got, want)
	}
	for _, o := range []ServerOptions{{MaxRequestBytes: 100}, {HandshakeTimeout: -1}} {
		if err := o.EnsureDefaults().Validate(); err == nil {
			t.Errorf("server options %v validated", o)
		}
	}
	for _, o := range []ClientOptions{{MaxResultBytes: MaxFrameLimit + 1}, {MaxIdleConns: -1}, {DialTimeout: -1}} {
		if err := o.EnsureDefaults().Validate(); err == nil {
			t.Errorf("client options %v validated", o)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := NewServer(scannerFunc(nil), ServerOptions{MaxRequestBytes: 1}).Serve(l); err == nil || !strings.Contains(err.Error(), "max request size 1") {
		t.Fatalf("Serve with invalid options: %v", err)
	}
}
