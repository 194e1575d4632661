package queryport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idxbench/idxbench/indexer"
)

// ErrClientClosed is returned (wrapped) by Scan after Close, and by a
// scan that Close interrupted.
var ErrClientClosed = errors.New("queryport: client closed")

// RemoteError is a scan's failure on the server, carried over the wire.
// Error returns the server's message unchanged; errors.Is matches the
// indexer sentinel (ErrScanTimeout, ErrIndexRollback, ErrNoSuchIndex,
// ErrClosed, ErrRecovering) or context error the server's error matched,
// and nothing for any other error.
type RemoteError struct {
	Msg  string
	code byte
}

func (e *RemoteError) Error() string { return e.Msg }

// Unwrap returns the sentinel the server's error matched, or nil.
func (e *RemoteError) Unwrap() error {
	if int(e.code) < len(codeTargets) {
		return codeTargets[e.code]
	}
	return nil // a code from a newer server
}

// Client scans through one server's query port. It keeps a pool of
// connections, each carrying one scan at a time; it is safe for concurrent
// use.
type Client struct {
	addr   string
	opts   ClientOptions
	nextID atomic.Uint64

	mu     sync.Mutex
	closed bool
	idle   []*conn            // most recently used last
	conns  map[*conn]struct{} // every open connection, idle or busy
}

// conn is one connection; a scan owns it while it runs.
type conn struct {
	nc     net.Conn
	fr     frameReader
	out    []byte
	maxReq int // the server's frame limit
	// broken is set when the connection's stream is in an unknown state
	// (an I/O or protocol failure, or the scan's ctx ended mid-exchange).
	broken bool
}

// Dial returns a client of the query port at addr, having dialed one
// connection to check that a server of this protocol version is there.
// opts is copied and completed with EnsureDefaults.
func Dial(ctx context.Context, addr string, opts ClientOptions) (*Client, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	c := &Client{addr: addr, opts: opts, conns: map[*conn]struct{}{}}
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.put(cn)
	return c, nil
}

// Addr is the server's address.
func (c *Client) Addr() string { return c.addr }

// Close closes every connection, interrupting the scans in flight.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	for cn := range c.conns {
		if err := cn.nc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("queryport: close connection to %s: %w", c.addr, err))
		}
	}
	c.conns, c.idle = nil, nil
	return errors.Join(errs...)
}

// Scan runs req on the server. ctx bounds the whole call, and its deadline
// travels with the request to bound the server-side scan; when ctx ends
// first, the connection is closed, which cancels the server-side scan.
// A scan that failed on the server returns a *RemoteError.
func (c *Client) Scan(ctx context.Context, req indexer.ScanRequest) (*indexer.ScanResult, error) {
	res, err := c.scan(ctx, req)
	if err != nil && ctx.Err() == nil && deadlinePassed(ctx) {
		// ctx's deadline has passed — the server's copy of it ran out,
		// no budget was left to send, a dial timed out on it — but ctx's
		// timer has not fired yet: the caller sees its own ctx end, as
		// in process.
		<-ctx.Done()
		return nil, fmt.Errorf("queryport: scan via %s: %w", c.addr, ctx.Err())
	}
	return res, err
}

func (c *Client) scan(ctx context.Context, req indexer.ScanRequest) (*indexer.ScanResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("queryport: scan via %s: %w", c.addr, err)
	}
	cn, err := c.get(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.roundTrip(ctx, cn, req)
	if cn.broken {
		c.discard(cn)
	} else {
		c.put(cn)
	}
	if err == nil {
		return res, nil
	}
	var re *RemoteError
	switch {
	case errors.As(err, &re):
		return nil, err
	case ctx.Err() != nil:
		return nil, fmt.Errorf("queryport: scan via %s: %w", c.addr, ctx.Err())
	case c.isClosed():
		return nil, fmt.Errorf("queryport: scan via %s: %w", c.addr, ErrClientClosed)
	}
	return nil, fmt.Errorf("queryport: scan via %s: %w", c.addr, err)
}

func deadlinePassed(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// roundTrip sends req on cn and reads the answer, marking cn broken when
// its stream can no longer be trusted.
func (c *Client) roundTrip(ctx context.Context, cn *conn, req indexer.ScanRequest) (*indexer.ScanResult, error) {
	r := request{id: c.nextID.Add(1), scan: req}
	if dl, ok := ctx.Deadline(); ok {
		if r.budget = time.Until(dl); r.budget <= 0 {
			return nil, context.DeadlineExceeded
		}
	}
	out, err := appendRequest(startFrame(cn.out[:0], frameRequest), &r)
	if err != nil {
		return nil, err
	}
	cn.out = finishFrame(out)
	defer func() { cn.out, cn.fr.buf = shrink(cn.out), shrink(cn.fr.buf) }()
	if n := len(cn.out) - headerLen; n > cn.maxReq {
		return nil, fmt.Errorf("queryport: request of %d bytes exceeds the server's frame limit of %d bytes", n, cn.maxReq)
	}

	// An ended ctx wakes the blocked Write or Read at once; the
	// connection, its deadline spent, is then dropped.
	stop := context.AfterFunc(ctx, func() { cn.nc.SetDeadline(time.Unix(1, 0)) })
	res, err := cn.exchange(r.id)
	if !stop() {
		cn.broken = true
	}
	return res, err
}

func (cn *conn) exchange(id uint64) (*indexer.ScanResult, error) {
	if _, err := cn.nc.Write(cn.out); err != nil {
		cn.broken = true
		return nil, fmt.Errorf("write request: %w", err)
	}
	t, p, err := cn.fr.next()
	if err != nil {
		cn.broken = true
		return nil, fmt.Errorf("read answer: %w", err)
	}
	var gotID uint64
	var res *indexer.ScanResult
	switch t {
	case frameResult:
		gotID, res, err = decodeResult(p)
	case frameError:
		var e errorFrame
		e, err = decodeError(p)
		gotID, res = e.id, nil
		if err == nil && e.id == id {
			return nil, &RemoteError{Msg: e.msg, code: e.code}
		}
	default:
		err = fmt.Errorf("%w: frame type %d from a server", ErrProtocol, t)
	}
	if err == nil && gotID != id {
		err = fmt.Errorf("%w: answer to request %d, want %d", ErrProtocol, gotID, id)
	}
	if err != nil {
		cn.broken = true
		return nil, err
	}
	return res, nil
}

// get returns an idle connection, or dials one.
func (c *Client) get(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("queryport: scan via %s: %w", c.addr, ErrClientClosed)
	}
	if n := len(c.idle); n > 0 {
		cn := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return cn, nil
	}
	c.mu.Unlock()
	return c.dial(ctx)
}

// put returns cn to the idle pool, or closes it when the pool is full.
func (c *Client) put(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.idle) >= c.opts.MaxIdleConns {
		delete(c.conns, cn)
		cn.nc.Close()
		return
	}
	c.idle = append(c.idle, cn)
}

func (c *Client) discard(cn *conn) {
	c.mu.Lock()
	delete(c.conns, cn)
	c.mu.Unlock()
	cn.nc.Close()
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// dial opens a connection and exchanges hellos.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	if c.opts.DialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.DialTimeout)
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("queryport: dial %s: %w", c.addr, err)
	}
	cn := &conn{nc: nc, fr: frameReader{r: bufio.NewReader(nc), limit: c.opts.MaxResultBytes}}
	if err := cn.handshake(ctx); err != nil {
		nc.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("queryport: handshake with %s: %w", c.addr, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		nc.Close()
		return nil, fmt.Errorf("queryport: scan via %s: %w", c.addr, ErrClientClosed)
	}
	c.conns[cn] = struct{}{}
	return cn, nil
}

func (cn *conn) handshake(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { cn.nc.SetDeadline(time.Unix(1, 0)) })
	h, err := cn.exchangeHellos()
	if !stop() {
		return ctx.Err() // and the deadline it set is spent
	}
	if err != nil {
		return err
	}
	if h.version != Version {
		return fmt.Errorf("%w: server speaks version %d, client %d", ErrProtocol, h.version, Version)
	}
	cn.maxReq = int(h.maxFrame)
	return nil
}

func (cn *conn) exchangeHellos() (hello, error) {
	if _, err := cn.nc.Write(appendHello(nil, hello{version: Version, maxFrame: uint32(cn.fr.limit)})); err != nil {
		return hello{}, fmt.Errorf("write hello: %w", err)
	}
	return readHello(cn.fr.r)
}

// shrink drops a buffer one large frame left behind, so that an idle
// connection does not pin it.
func shrink(b []byte) []byte {
	if cap(b) > 1<<20 {
		return nil
	}
	return b
}
