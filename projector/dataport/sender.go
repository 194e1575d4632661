package dataport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/idxbench/idxbench/projector"
)

// Sender is the sending end of one session. It implements
// projector.Transport.
type Sender struct {
	nc       net.Conn
	opts     SenderOptions
	maxFrame int // the smaller of ours and the receiver's limit

	mu  sync.Mutex
	buf []byte // the frame being sent, reused
	err error  // sticky: the connection is closed
}

var _ projector.Transport = (*Sender)(nil)

// Dial connects to the receiver at addr and opens a session of
// opts.Stream. It fails with an error wrapping ErrRefused, and carrying
// the receiver's reason, when the receiver refuses the handshake. ctx
// bounds the dial and the handshake only.
func Dial(ctx context.Context, addr string, opts SenderOptions) (*Sender, error) {
	if err := opts.EnsureDefaults().Validate(); err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dataport: dial %s: %w", addr, err)
	}
	s, err := newSender(ctx, nc, opts)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("dataport: dial %s stream %s: %w", addr, opts.Stream, err)
	}
	return s, nil
}

// newSender runs the handshake on nc.
func newSender(ctx context.Context, nc net.Conn, opts SenderOptions) (*Sender, error) {
	if tc, ok := nc.(*net.TCPConn); ok && opts.SocketSendBuffer > 0 {
		if err := tc.SetWriteBuffer(opts.SocketSendBuffer); err != nil {
			return nil, fmt.Errorf("set socket send buffer: %w", err)
		}
	}
	stop := interruptOnDone(ctx, nc.SetDeadline)
	rp, err := handshake(nc, hello{version: protocolVersion, stream: opts.Stream, sender: opts.SenderID})
	stop()
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, err
	case !rp.accepted:
		return nil, fmt.Errorf("%w: %s", ErrRefused, rp.reason)
	case rp.version != protocolVersion:
		return nil, protocolErrorf("receiver accepted with protocol version %d, not %d", rp.version, protocolVersion)
	case rp.maxFrame < minFrameSize:
		return nil, protocolErrorf("receiver's frame size limit %d is below the minimum %d", rp.maxFrame, minFrameSize)
	}
	return &Sender{nc: nc, opts: opts, maxFrame: min(opts.MaxFrameSize, int(rp.maxFrame))}, nil
}

// handshake sends h and reads the reply.
func handshake(nc net.Conn, h hello) (reply, error) {
	if _, err := nc.Write(appendHello(nil, h)); err != nil {
		return reply{}, fmt.Errorf("write hello: %w", err)
	}
	// Nothing follows the reply, so the buffer cannot swallow frames.
	return readReply(bufio.NewReaderSize(nc, 512))
}

// Send writes b as one frame, blocking while the socket's buffers are full
// (the receiver's backpressure) until ctx is done. A batch that encodes to
// more than the frame size limit is refused with ErrFrameTooLarge: nothing
// is sent and the Sender stays usable. Once Send returns nil the batch is
// handed to SenderOptions.Pool, if set.
//
// A Send that ctx interrupts before any byte of the frame left returns
// ctx.Err() and the Sender stays usable. One interrupted partway closes
// the connection, since a frame cannot be taken back: that Send and every
// later one fail, and the receiver sees the session cut. Any other write
// error is final too. Calls are serialized: a Close waits for a blocked
// Send, so end the Send's ctx first to stop a session stuck on a receiver
// that does not read.
func (s *Sender) Send(ctx context.Context, b *projector.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	buf, err := appendBatchFrame(s.buf[:0], b, s.maxFrame)
	if err != nil {
		if cap(buf) <= 2*s.maxFrame {
			s.buf = buf
		}
		return fmt.Errorf("dataport: send %s: %w", s.opts.Stream, err)
	}
	s.buf = buf
	stop := interruptOnDone(ctx, s.nc.SetWriteDeadline)
	n, err := s.nc.Write(buf)
	stop()
	if err != nil {
		if n == 0 && ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			return ctx.Err()
		}
		if ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			err = ctx.Err()
		}
		s.err = fmt.Errorf("dataport: send %s: write stopped after %d of %d frame bytes, connection closed: %w", s.opts.Stream, n, len(buf), err)
		_ = s.nc.Close()
		return s.err
	}
	if s.opts.Pool != nil {
		s.opts.Pool.Put(b)
	}
	return nil
}

// Close ends the session cleanly: it writes the end-of-stream frame,
// waiting at most SenderOptions.CloseTimeout for the receiver to make room
// for it, and closes the connection. After a Send failed it only releases
// the connection. It is safe to call more than once.
func (s *Sender) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		if errors.Is(s.err, ErrClosed) {
			return nil
		}
		s.err = fmt.Errorf("dataport: send %s: %w", s.opts.Stream, ErrClosed)
		return nil
	}
	s.err = fmt.Errorf("dataport: send %s: %w", s.opts.Stream, ErrClosed)
	var werr error
	_ = s.nc.SetWriteDeadline(time.Now().Add(s.opts.CloseTimeout))
	if _, err := s.nc.Write(endFrame); err != nil {
		werr = fmt.Errorf("dataport: close %s: write end-of-stream frame: %w", s.opts.Stream, err)
	}
	if err := s.nc.Close(); err != nil {
		return errors.Join(werr, fmt.Errorf("dataport: close %s: %w", s.opts.Stream, err))
	}
	return werr
}
