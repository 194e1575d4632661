package dataport

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/idxbench/idxbench/projector"
)

// DefaultMaxFrameSize is the default bound on a frame's payload.
const DefaultMaxFrameSize = 16 << 20

// Bounds on the frame size limit either side may set. The upper bound
// keeps a payload length comfortably inside its uint32 field.
const (
	minFrameSize = 1 << 10
	maxFrameSize = 1 << 30
)

// maxNameLen bounds a stream name and a sender id (a one-byte length in
// the hello).
const maxNameLen = 255

// SenderOptions configure Dial. The zero value works.
type SenderOptions struct {
	// Stream names the stream the connection carries ("MAINT", "INIT",
	// ...), 1 to 255 bytes. Default "MAINT".
	Stream string
	// SenderID identifies the sender, such as the projector's node name,
	// up to 255 bytes. A receiver closes the older of two sessions with
	// the same stream and sender id. Default "".
	SenderID string
	// MaxFrameSize bounds a frame's payload in bytes; Send refuses a batch
	// that encodes to more. The bound in force is the smaller of this and
	// the receiver's, which the handshake reports. Default 16 MiB, within
	// [1 KiB, 1 GiB].
	MaxFrameSize int
	// CloseTimeout bounds how long Close waits to write the end-of-stream
	// frame to a receiver that has stopped reading. Default 5 s.
	CloseTimeout time.Duration
	// SocketSendBuffer sets the socket's send buffer (SO_SNDBUF) in bytes.
	// Default 0: the operating system's size, which it tunes.
	SocketSendBuffer int
	// Pool, when set, gets back every batch once Send has written it (give
	// it the projector's Options.Pool). Default: written batches are left
	// to the garbage collector.
	Pool *projector.BatchPool
}

// EnsureDefaults fills zero fields with their defaults and returns o.
func (o *SenderOptions) EnsureDefaults() *SenderOptions {
	if o.Stream == "" {
		o.Stream = "MAINT"
	}
	if o.MaxFrameSize == 0 {
		o.MaxFrameSize = DefaultMaxFrameSize
	}
	if o.CloseTimeout == 0 {
		o.CloseTimeout = 5 * time.Second
	}
	return o
}

// Validate reports the first out-of-range field. It expects EnsureDefaults
// to have run.
func (o *SenderOptions) Validate() error {
	switch {
	case len(o.Stream) < 1 || len(o.Stream) > maxNameLen:
		return fmt.Errorf("dataport: sender options: stream name %q is not 1 to %d bytes", o.Stream, maxNameLen)
	case len(o.SenderID) > maxNameLen:
		return fmt.Errorf("dataport: sender options: sender id of %d bytes is over %d", len(o.SenderID), maxNameLen)
	case o.MaxFrameSize < minFrameSize || o.MaxFrameSize > maxFrameSize:
		return fmt.Errorf("dataport: sender options: max frame size %d is out of range [%d,%d]", o.MaxFrameSize, minFrameSize, maxFrameSize)
	case o.CloseTimeout < 0:
		return fmt.Errorf("dataport: sender options: close timeout %v is negative", o.CloseTimeout)
	case o.SocketSendBuffer < 0:
		return fmt.Errorf("dataport: sender options: socket send buffer %d is negative", o.SocketSendBuffer)
	}
	return nil
}

// String is a stable one-line form for results files.
func (o SenderOptions) String() string {
	return fmt.Sprintf("stream=%s sender=%q max_frame=%d close_timeout=%v sndbuf=%d pooled=%t",
		o.Stream, o.SenderID, o.MaxFrameSize, o.CloseTimeout, o.SocketSendBuffer, o.Pool != nil)
}

// ReceiverOptions configure Listen. The zero value works.
type ReceiverOptions struct {
	// Streams lists the stream names this receiver serves; a hello for any
	// other is refused. Default: every name.
	Streams []string
	// MaxFrameSize bounds a frame's payload in bytes; a longer frame is a
	// protocol error. Senders learn it in the handshake. Default 16 MiB,
	// within [1 KiB, 1 GiB].
	MaxFrameSize int
	// ReadBufferSize is the size of a Conn's read buffer: the most it reads
	// from the socket ahead of the frame Recv is decoding. Default 64 KiB,
	// at least 16.
	ReadBufferSize int
	// HandshakeTimeout bounds how long Accept waits for a connected
	// sender's hello. Default 10 s.
	HandshakeTimeout time.Duration
	// SocketReceiveBuffer sets each accepted socket's receive buffer
	// (SO_RCVBUF) in bytes. Default 0: the operating system's size, which
	// it tunes.
	SocketReceiveBuffer int
	// Pool, when set, supplies the batches Recv returns, so a receiver that
	// puts them back reuses their KVs arrays. Default: every batch is
	// freshly allocated.
	Pool *projector.BatchPool
	// Logger receives a line for every refused or failed handshake.
	// Default: discards them.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults and returns o.
func (o *ReceiverOptions) EnsureDefaults() *ReceiverOptions {
	if o.MaxFrameSize == 0 {
		o.MaxFrameSize = DefaultMaxFrameSize
	}
	if o.ReadBufferSize == 0 {
		o.ReadBufferSize = 64 << 10
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports the first out-of-range field. It expects EnsureDefaults
// to have run.
func (o *ReceiverOptions) Validate() error {
	for _, s := range o.Streams {
		if len(s) < 1 || len(s) > maxNameLen {
			return fmt.Errorf("dataport: receiver options: stream name %q is not 1 to %d bytes", s, maxNameLen)
		}
	}
	switch {
	case o.MaxFrameSize < minFrameSize || o.MaxFrameSize > maxFrameSize:
		return fmt.Errorf("dataport: receiver options: max frame size %d is out of range [%d,%d]", o.MaxFrameSize, minFrameSize, maxFrameSize)
	case o.ReadBufferSize < 16:
		return fmt.Errorf("dataport: receiver options: read buffer size %d is below 16", o.ReadBufferSize)
	case o.HandshakeTimeout < 0:
		return fmt.Errorf("dataport: receiver options: handshake timeout %v is negative", o.HandshakeTimeout)
	case o.SocketReceiveBuffer < 0:
		return fmt.Errorf("dataport: receiver options: socket receive buffer %d is negative", o.SocketReceiveBuffer)
	}
	return nil
}

// String is a stable one-line form for results files.
func (o ReceiverOptions) String() string {
	return fmt.Sprintf("streams=%q max_frame=%d read_buffer=%d handshake_timeout=%v rcvbuf=%d pooled=%t",
		o.Streams, o.MaxFrameSize, o.ReadBufferSize, o.HandshakeTimeout, o.SocketReceiveBuffer, o.Pool != nil)
}
