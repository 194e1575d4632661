package queryport

import (
	"fmt"
	"log/slog"
	"time"
)

// Frame size limits every option must stay within: a frame must hold at
// least a request with a modest consistency vector, and its length must
// fit the 32-bit header on every platform.
const (
	MinFrameLimit = 4 << 10
	MaxFrameLimit = 1<<31 - 1
)

// ServerOptions configure a Server. The zero value works: EnsureDefaults
// fills in each field's documented default.
type ServerOptions struct {
	// MaxRequestBytes caps a request frame; a client sending a larger one
	// is disconnected. Requests carry bounds and at most one vector, so
	// they are small. Default 1 MiB.
	MaxRequestBytes int
	// HandshakeTimeout bounds how long a new connection may take to send
	// its hello. Default 10 s.
	HandshakeTimeout time.Duration
	// Logger receives connection-level failures (bad handshakes, corrupt
	// frames). Default: discards them.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults and returns o.
func (o *ServerOptions) EnsureDefaults() *ServerOptions {
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = 1 << 20
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
func (o *ServerOptions) Validate() error {
	switch {
	case o.MaxRequestBytes < MinFrameLimit || o.MaxRequestBytes > MaxFrameLimit:
		return fmt.Errorf("queryport: max request size %d is out of range [%d,%d]", o.MaxRequestBytes, MinFrameLimit, MaxFrameLimit)
	case o.HandshakeTimeout < 0:
		return fmt.Errorf("queryport: handshake timeout %v is negative", o.HandshakeTimeout)
	}
	return nil
}

// String is a stable one-line rendering of the settings (not the logger).
func (o ServerOptions) String() string {
	return fmt.Sprintf("max_request_bytes=%d handshake_timeout=%v", o.MaxRequestBytes, o.HandshakeTimeout)
}

// ClientOptions configure a Client. The zero value works: EnsureDefaults
// fills in each field's documented default.
type ClientOptions struct {
	// MaxResultBytes caps a result frame. The client announces it in its
	// hello, and the server answers a scan whose result would not fit with
	// an error instead. A ScanAll of a large index needs a large limit.
	// Default 64 MiB.
	MaxResultBytes int
	// MaxIdleConns is how many idle connections the client keeps for
	// later scans; one scan uses one connection at a time, so this is the
	// concurrency the client serves without dialing. Default 16.
	MaxIdleConns int
	// DialTimeout bounds dialing and the handshake of each new connection
	// (the scan's ctx may end it sooner). Default 5 s.
	DialTimeout time.Duration
}

// EnsureDefaults fills zero fields with their defaults and returns o.
func (o *ClientOptions) EnsureDefaults() *ClientOptions {
	if o.MaxResultBytes == 0 {
		o.MaxResultBytes = 64 << 20
	}
	if o.MaxIdleConns == 0 {
		o.MaxIdleConns = 16
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	return o
}

// Validate reports the first out-of-range field. It expects EnsureDefaults
// to have run.
func (o *ClientOptions) Validate() error {
	switch {
	case o.MaxResultBytes < MinFrameLimit || o.MaxResultBytes > MaxFrameLimit:
		return fmt.Errorf("queryport: max result size %d is out of range [%d,%d]", o.MaxResultBytes, MinFrameLimit, MaxFrameLimit)
	case o.MaxIdleConns < 0:
		return fmt.Errorf("queryport: max idle connections %d is negative", o.MaxIdleConns)
	case o.DialTimeout < 0:
		return fmt.Errorf("queryport: dial timeout %v is negative", o.DialTimeout)
	}
	return nil
}

// String is a stable one-line rendering of the settings.
func (o ClientOptions) String() string {
	return fmt.Sprintf("max_result_bytes=%d max_idle_conns=%d dial_timeout=%v", o.MaxResultBytes, o.MaxIdleConns, o.DialTimeout)
}
