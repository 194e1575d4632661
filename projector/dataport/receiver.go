package dataport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idxbench/idxbench/projector"
)

// Listener accepts dataport sessions: one Conn per connection that passed
// the handshake.
type Listener struct {
	ln   *net.TCPListener
	opts ReceiverOptions

	mu   sync.Mutex
	live map[session]*Conn // the latest session of each stream and sender
}

// session names what a connection carries: a newer connection with the
// same name replaces the older.
type session struct{ stream, sender string }

// Listen listens for senders on the TCP address addr ("127.0.0.1:0" picks
// a free port; see Addr).
func Listen(addr string, opts ReceiverOptions) (*Listener, error) {
	if err := opts.EnsureDefaults().Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dataport: listen %s: %w", addr, err)
	}
	return &Listener{ln: ln.(*net.TCPListener), opts: opts, live: make(map[session]*Conn)}, nil
}

// Addr is the address the listener listens on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Accept waits for a sender, runs the handshake and returns the session's
// Conn. A connection whose handshake fails is refused (with the reason
// sent back when the peer can take it), logged and skipped; Accept goes on
// waiting. A new session of a stream and sender that already has a live
// Conn closes the older Conn, whose Recv then fails with ErrSuperseded.
//
// The handshake of one connection holds up the next Accept for at most
// ReceiverOptions.HandshakeTimeout. Call Accept from one goroutine at a
// time; ctx's end interrupts it.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		stop := interruptOnDone(ctx, l.ln.SetDeadline)
		nc, err := l.ln.Accept()
		stop()
		switch {
		case err == nil:
		case ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded):
			return nil, ctx.Err()
		case errors.Is(err, net.ErrClosed):
			return nil, fmt.Errorf("dataport: accept on %s: %w", l.Addr(), ErrClosed)
		default:
			return nil, fmt.Errorf("dataport: accept on %s: %w", l.Addr(), err)
		}
		c, err := l.handshake(ctx, nc)
		if err != nil {
			_ = nc.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			l.opts.Logger.Warn("dataport: handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
			continue
		}
		l.mu.Lock()
		old := l.live[c.session]
		l.live[c.session] = c
		l.mu.Unlock()
		if old != nil {
			_ = old.close(ErrSuperseded)
		}
		return c, nil
	}
}

// handshake reads nc's hello and answers it.
func (l *Listener) handshake(ctx context.Context, nc net.Conn) (*Conn, error) {
	if l.opts.SocketReceiveBuffer > 0 {
		if err := nc.(*net.TCPConn).SetReadBuffer(l.opts.SocketReceiveBuffer); err != nil {
			return nil, fmt.Errorf("set socket receive buffer: %w", err)
		}
	}
	if l.opts.HandshakeTimeout > 0 {
		_ = nc.SetDeadline(time.Now().Add(l.opts.HandshakeTimeout))
	}
	stop := interruptOnDone(ctx, nc.SetDeadline)
	defer stop()
	br := bufio.NewReaderSize(nc, l.opts.ReadBufferSize)
	h, err := readHello(br)
	if err != nil {
		if errors.Is(err, ErrProtocol) {
			l.refuse(nc, err.Error())
		}
		return nil, err
	}
	var reason string
	switch {
	case h.version != protocolVersion:
		reason = fmt.Sprintf("protocol version %d is not supported: this receiver speaks version %d", h.version, protocolVersion)
	case len(l.opts.Streams) > 0 && !slices.Contains(l.opts.Streams, h.stream):
		reason = fmt.Sprintf("stream %q is not served here (serving %q)", h.stream, l.opts.Streams)
	}
	if reason != "" {
		l.refuse(nc, reason)
		return nil, fmt.Errorf("refused sender %q: %s", h.sender, reason)
	}
	rp := reply{version: protocolVersion, accepted: true, maxFrame: uint32(l.opts.MaxFrameSize)}
	if _, err := nc.Write(appendReply(nil, rp)); err != nil {
		return nil, fmt.Errorf("write handshake reply: %w", err)
	}
	_ = nc.SetDeadline(time.Time{})
	return &Conn{
		nc:       nc,
		br:       br,
		session:  session{stream: h.stream, sender: h.sender},
		maxFrame: l.opts.MaxFrameSize,
		pool:     l.opts.Pool,
		ln:       l,
	}, nil
}

// refuse tells the peer why its hello was refused, if it can take it.
func (l *Listener) refuse(nc net.Conn, reason string) {
	_, _ = nc.Write(appendReply(nil, reply{version: protocolVersion, reason: reason}))
}

// Close stops listening. Conns already accepted stay open.
func (l *Listener) Close() error {
	if err := l.ln.Close(); err != nil {
		return fmt.Errorf("dataport: close listener %s: %w", l.Addr(), err)
	}
	return nil
}

// forget drops c from the live sessions unless a newer one replaced it.
func (l *Listener) forget(c *Conn) {
	l.mu.Lock()
	if l.live[c.session] == c {
		delete(l.live, c.session)
	}
	l.mu.Unlock()
}

// Conn is the receiving end of one session. It implements the indexer's
// Source: Recv returns the session's batches in the order they were sent.
type Conn struct {
	nc       net.Conn
	br       *bufio.Reader
	session  session
	maxFrame int
	pool     *projector.BatchPool
	ln       *Listener

	// Owned by the goroutine calling Recv.
	payload []byte // the frame being read, nil between frames
	got     int    // bytes of payload read
	sum     uint32 // payload's checksum from the header
	err     error  // sticky: io.EOF after the end-of-stream frame, or the failure

	closeOnce sync.Once
	closedBy  atomic.Pointer[error] // why Close closed nc: ErrClosed or ErrSuperseded
}

// Conn has the shape of indexer.Source, which this package cannot import.
var _ interface {
	Recv(context.Context) (*projector.Batch, error)
} = (*Conn)(nil)

// Stream is the stream name the sender gave in the handshake.
func (c *Conn) Stream() string { return c.session.stream }

// SenderID is the sender id the sender gave in the handshake.
func (c *Conn) SenderID() string { return c.session.sender }

// RemoteAddr is the sender's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Recv reads and decodes the next frame, blocking until one has arrived
// whole, ctx is done or the Conn is closed. It returns io.EOF once the
// sender has closed the session cleanly (the end-of-stream frame) and an
// error wrapping ErrCut when the connection ended any other way; a frame
// is delivered whole or not at all. The batch is the caller's: its DocID
// and Key slices point into one allocation of its own (the frame), which
// is never reused, and it may be put back into ReceiverOptions.Pool.
//
// When ctx ends Recv returns ctx.Err() and the Conn stays usable: a frame
// read in part is kept and finished by the next Recv. Any other error is
// final and every later Recv returns it. Recv reads at most one read
// buffer ahead of the frame it returns, so a caller that stops calling it
// soon blocks the sender. Call Recv from one goroutine at a time.
func (c *Conn) Recv(ctx context.Context) (*projector.Batch, error) {
	if c.err != nil {
		return nil, c.err
	}
	if why := c.closedBy.Load(); why != nil {
		c.err = fmt.Errorf("dataport: recv %s from %q: %w", c.session.stream, c.session.sender, *why)
		return nil, c.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stop := interruptOnDone(ctx, c.nc.SetReadDeadline)
	b, err := c.readFrame()
	stop()
	switch {
	case err == nil:
		return b, nil
	case ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded):
		return nil, ctx.Err()
	case err == io.EOF:
		c.err = io.EOF
	case errors.Is(err, net.ErrClosed) && c.closedBy.Load() != nil:
		c.err = fmt.Errorf("dataport: recv %s from %q: %w", c.session.stream, c.session.sender, *c.closedBy.Load())
	default:
		c.err = fmt.Errorf("dataport: recv %s from %q: %w", c.session.stream, c.session.sender, err)
	}
	return nil, c.err
}

// readFrame reads one frame, resuming a frame an interrupted call began.
// It returns a socket's deadline and close errors as they are, so Recv
// can tell them apart.
func (c *Conn) readFrame() (*projector.Batch, error) {
	if c.payload == nil {
		// Peek consumes nothing, so an interrupted wait for the next
		// header loses no bytes.
		hdr, err := c.br.Peek(frameHeaderLen)
		switch {
		case err == io.EOF && len(hdr) == 0:
			return nil, fmt.Errorf("%w: connection closed without the end-of-stream frame", ErrCut)
		case err == io.EOF:
			return nil, fmt.Errorf("%w: connection closed inside a frame header (%d of %d bytes): torn frame", ErrCut, len(hdr), frameHeaderLen)
		case err != nil:
			return nil, ioError(err)
		}
		n, sum, err := parseHeader(hdr, c.maxFrame)
		if err != nil {
			return nil, err
		}
		_, _ = c.br.Discard(frameHeaderLen)
		c.payload, c.got, c.sum = make([]byte, n), 0, sum
	}
	n, err := io.ReadFull(c.br, c.payload[c.got:])
	c.got += n
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return nil, fmt.Errorf("%w: connection closed inside a frame (%d of %d payload bytes): torn frame", ErrCut, c.got, len(c.payload))
	case err != nil:
		return nil, ioError(err)
	}
	payload := c.payload
	c.payload = nil
	return decodePayload(payload, c.sum, c.pool)
}

// ioError wraps a socket error other than a deadline or close as ErrCut:
// a reset ends a session as uncleanly as a torn frame.
func ioError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrCut, err)
}

// Close closes the connection; a Recv blocked on it returns ErrClosed. It
// is safe to call more than once and from any goroutine.
func (c *Conn) Close() error { return c.close(ErrClosed) }

func (c *Conn) close(why error) error {
	var err error
	c.closeOnce.Do(func() {
		c.closedBy.Store(&why)
		c.ln.forget(c)
		if cerr := c.nc.Close(); cerr != nil {
			err = fmt.Errorf("dataport: close %s from %q: %w", c.session.stream, c.session.sender, cerr)
		}
	})
	return err
}
