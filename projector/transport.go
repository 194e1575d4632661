package projector

import (
	"context"
	"errors"
	"sync"
)

// Transport carries batches to one indexer endpoint.
type Transport interface {
	// Send delivers b, blocking while the receiver is not ready (that is
	// the pipeline's backpressure) until ctx is done. The receiver owns b
	// once Send returns nil; the projector never touches it again. The
	// DocID and Key bytes are read-only: key versions of one event share
	// one copy of the document id, possibly across batches.
	Send(ctx context.Context, b *Batch) error
}

// Router chooses the endpoint (an index into the projector's transports)
// that receives the key versions of an instance partition. It must be a
// pure function: the projector asks once per partition when an instance is
// added.
type Router interface {
	Endpoint(instID uint64, partition int) int
}

// ModRouter routes partition p to endpoint p mod N, whatever the instance:
// the natural layout of N indexers each holding one share of every index.
type ModRouter struct{ N int }

// Endpoint implements Router.
func (r ModRouter) Endpoint(_ uint64, partition int) int {
	if r.N <= 1 {
		return 0
	}
	return partition % r.N
}

// BatchPool recycles Batches between a projector and its receivers. A
// receiver done with a batch may Put it back; the projector then reuses its
// KVs array. The DocID and Key bytes a batch pointed to are never reused,
// so a receiver may keep those slices after Put (they are carved from
// append-only arenas the garbage collector frees).
type BatchPool struct{ p sync.Pool }

// Get returns an empty batch with room for at least n key versions.
func (bp *BatchPool) Get(n int) *Batch {
	if b, ok := bp.p.Get().(*Batch); ok && cap(b.KVs) >= n {
		return b
	}
	return &Batch{KVs: make([]KeyVersion, 0, n)}
}

// Put returns b to the pool. The caller must not use b afterwards.
func (bp *BatchPool) Put(b *Batch) {
	clear(b.KVs) // drop references to arenas
	b.KVs = b.KVs[:0]
	bp.p.Put(b)
}

// ErrTransportClosed is returned by a ChanTransport's Send and Recv after
// Close.
var ErrTransportClosed = errors.New("projector: transport closed")

// ChanTransport is the in-process transport: a bounded channel of batches
// between one projector endpoint and one indexer. A full channel blocks
// Send, which is how a slow indexer slows the projector.
type ChanTransport struct {
	ch     chan *Batch
	closed chan struct{}
	once   sync.Once
}

// NewChanTransport returns a transport that buffers up to capacity batches
// (0: Send waits for Recv).
func NewChanTransport(capacity int) *ChanTransport {
	return &ChanTransport{ch: make(chan *Batch, max(capacity, 0)), closed: make(chan struct{})}
}

// Send implements Transport.
func (t *ChanTransport) Send(ctx context.Context, b *Batch) error {
	select {
	case <-t.closed:
		return ErrTransportClosed
	default:
	}
	select {
	case t.ch <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.closed:
		return ErrTransportClosed
	}
}

// Recv returns the next batch, waiting until one is sent, ctx is done or
// the transport is closed. Batches sent before Close are still delivered.
func (t *ChanTransport) Recv(ctx context.Context) (*Batch, error) {
	select {
	case b := <-t.ch:
		return b, nil
	default:
	}
	select {
	case b := <-t.ch:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.closed:
		select {
		case b := <-t.ch:
			return b, nil
		default:
			return nil, ErrTransportClosed
		}
	}
}

// C is the channel batches arrive on, for receivers that select over
// several sources. It is never closed; use Done to learn of Close.
func (t *ChanTransport) C() <-chan *Batch { return t.ch }

// Done is closed by Close.
func (t *ChanTransport) Done() <-chan struct{} { return t.closed }

// Close makes further Sends fail and Recv fail once the buffered batches
// are drained. It is safe to call more than once.
func (t *ChanTransport) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}
