package queryport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/idxbench/idxbench/indexer"
)

// Scanner serves scans; *indexer.Indexer is one. Scan must return once
// ctx is done: Server.Close waits for it.
type Scanner interface {
	Scan(ctx context.Context, req indexer.ScanRequest) (*indexer.ScanResult, error)
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("queryport: server closed")

// Server serves a Scanner's scans to query-port clients.
type Server struct {
	scanner Scanner
	opts    ServerOptions
	// ctx is the parent of every scan's context; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup // one per connection; Add only under mu, before closed
}

// NewServer returns a server for s. opts is copied and completed with
// EnsureDefaults; Serve reports invalid options.
func NewServer(s Scanner, opts ServerOptions) *Server {
	opts.EnsureDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		scanner:   s,
		opts:      opts,
		ctx:       ctx,
		cancel:    cancel,
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]struct{}{},
	}
}

// Serve accepts connections on l and serves each on its own goroutine
// until Close (it then returns ErrServerClosed) or Accept fails. It closes
// l when it returns. Serve may be called with several listeners.
func (s *Server) Serve(l net.Listener) error {
	if err := s.opts.Validate(); err != nil {
		l.Close()
		return err
	}
	if !s.track(func() { s.listeners[l] = struct{}{} }) {
		l.Close()
		return ErrServerClosed
	}
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			return fmt.Errorf("queryport: accept on %s: %w", l.Addr(), err)
		}
		if !s.track(func() { s.conns[nc] = struct{}{}; s.wg.Add(1) }) {
			nc.Close()
			return ErrServerClosed
		}
		go func() {
			defer s.wg.Done()
			s.serveConn(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
		}()
	}
}

// track runs add under mu unless the server is closed.
func (s *Server) track(add func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	add()
	return true
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops the server: it closes the listeners and connections, cancels
// the scans in flight (their clients see a connection error) and waits for
// every connection's goroutines to end.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel()
	var errs []error
	for l := range s.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("queryport: close listener %s: %w", l.Addr(), err))
		}
	}
	for nc := range s.conns {
		nc.Close() // its goroutine reports nothing more
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}

// serveConn runs one connection: after the handshake, a reader goroutine
// decodes requests and hands them over one at a time while this goroutine
// scans and answers. The reader keeps reading while a scan runs, so a
// client that closes the connection (its ctx ended) cancels its scan.
func (s *Server) serveConn(nc net.Conn) {
	defer nc.Close()
	log := s.opts.Logger.With("remote", nc.RemoteAddr().String())
	br := bufio.NewReader(nc)
	peer, err := s.handshake(nc, br)
	if err != nil {
		log.Info("queryport: handshake failed", "err", err)
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	reqs := make(chan request)
	var wg sync.WaitGroup
	defer func() {
		cancel()   // ends the reader's wait to hand over a request
		nc.Close() // ends its Read
		wg.Wait()
	}()
	wg.Go(func() {
		defer cancel()
		fr := frameReader{r: br, limit: s.opts.MaxRequestBytes}
		for {
			t, p, err := fr.next()
			if err != nil {
				if !errors.Is(err, io.EOF) && ctx.Err() == nil {
					log.Info("queryport: read request", "err", err)
				}
				return
			}
			var r request
			if t == frameRequest {
				r, err = decodeRequest(p)
			} else {
				err = fmt.Errorf("%w: frame type %d from a client", ErrProtocol, t)
			}
			if err != nil {
				log.Info("queryport: bad request, closing the connection", "err", err)
				return
			}
			select {
			case reqs <- r:
			case <-ctx.Done():
				return
			}
		}
	})
	var out []byte
	for {
		select {
		case r := <-reqs:
			out = s.answer(ctx, out[:0], r, int(peer.maxFrame))
			if ctx.Err() != nil {
				// The server is closing or the client hung up: a scan
				// canceled for that is nobody's answer.
				return
			}
			if _, err := nc.Write(out); err != nil {
				if ctx.Err() == nil {
					log.Info("queryport: write answer", "err", err)
				}
				return
			}
			out = shrink(out)
		case <-ctx.Done():
			return
		}
	}
}

// handshake exchanges hellos. The server answers even a client of another
// version, so that it can name both versions, then hangs up.
func (s *Server) handshake(nc net.Conn, br *bufio.Reader) (hello, error) {
	if s.opts.HandshakeTimeout > 0 {
		nc.SetDeadline(time.Now().Add(s.opts.HandshakeTimeout))
		defer nc.SetDeadline(time.Time{})
	}
	peer, err := readHello(br)
	if err != nil {
		return hello{}, err
	}
	if _, err := nc.Write(appendHello(nil, hello{version: Version, maxFrame: uint32(s.opts.MaxRequestBytes)})); err != nil {
		return hello{}, fmt.Errorf("write hello: %w", err)
	}
	if peer.version != Version {
		return hello{}, fmt.Errorf("%w: client speaks version %d, server %d", ErrProtocol, peer.version, Version)
	}
	return peer, nil
}

// answer runs r's scan and appends the frame that answers it: the result,
// or an error frame when the scan fails or its result would exceed the
// client's frame limit.
func (s *Server) answer(ctx context.Context, dst []byte, r request, limit int) []byte {
	if r.budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.budget)
		defer cancel()
	}
	res, err := s.scanner.Scan(ctx, r.scan)
	if err == nil && res == nil {
		err = errors.New("queryport: scanner returned neither a result nor an error")
	}
	if err == nil {
		out, encErr := appendResult(startFrame(dst, frameResult), r.id, res)
		switch {
		case encErr != nil:
			err = encErr
		case len(out)-headerLen > limit:
			err = fmt.Errorf("queryport: result of %d entries (%d bytes) exceeds the client's frame limit of %d bytes (ClientOptions.MaxResultBytes)",
				len(res.Entries), len(out)-headerLen, limit)
		default:
			return finishFrame(out)
		}
	}
	msg := err.Error()
	// Keep even a huge message within the client's limit.
	if over := len(msg) + 32 - limit; over > 0 {
		msg = msg[:len(msg)-over]
	}
	return finishFrame(appendError(startFrame(dst, frameError), errorFrame{id: r.id, code: errorCode(err), msg: msg}))
}
