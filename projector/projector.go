package projector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idxbench/idxbench/workload/upr"
)

// Options configure a Projector. The zero value works.
type Options struct {
	// BufferSize is the number of key versions per batch: a batch is sent
	// once it is full, at the end of the event that filled it, so the key
	// versions of one mutation always travel together (a batch may pass
	// the size by one event's key versions). Default 2000.
	BufferSize int
	// FlushInterval bounds how long a partial batch waits in Run before it
	// is sent. Default 5 ms.
	FlushInterval time.Duration
	// Router maps instance partitions to endpoints. Default
	// ModRouter{N: number of endpoints}.
	Router Router
	// Pool, when set, supplies the batches; receivers may return them with
	// Pool.Put. Default: every batch is freshly allocated.
	Pool *BatchPool
	// OnRollback is called (from Handle) with every OpRollback event: the
	// stream request of that vbucket was refused and the requester must
	// roll back. No KeyVersion carries rollbacks. Default: ignored (they
	// are still counted in Stats).
	OnRollback func(ev *upr.Event)
	// EventBuffer is the number of events Run asks its Feed for at once.
	// Default 256.
	EventBuffer int
}

// EnsureDefaults fills unset fields with their defaults; nEndpoints sizes
// the default router.
func (o *Options) EnsureDefaults(nEndpoints int) {
	if o.BufferSize <= 0 {
		o.BufferSize = 2000
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 5 * time.Millisecond
	}
	if o.Router == nil {
		o.Router = ModRouter{N: nEndpoints}
	}
	if o.EventBuffer <= 0 {
		o.EventBuffer = 256
	}
}

// Validate rejects negative sizes and intervals (zero means the default).
func (o *Options) Validate() error {
	switch {
	case o.BufferSize < 0:
		return fmt.Errorf("projector options: buffer_size %d is negative", o.BufferSize)
	case o.FlushInterval < 0:
		return fmt.Errorf("projector options: flush_interval %s is negative", o.FlushInterval)
	case o.EventBuffer < 0:
		return fmt.Errorf("projector options: event_buffer %d is negative", o.EventBuffer)
	}
	return nil
}

// String is a stable one-line form for results files.
func (o Options) String() string {
	return fmt.Sprintf("buffer_size=%d flush_interval=%s event_buffer=%d pooled=%t",
		o.BufferSize, o.FlushInterval, o.EventBuffer, o.Pool != nil)
}

// Feed is a source of stream events; the workload's *Feed is one.
type Feed interface {
	// Next fills buf with at least one event, blocking until there is one,
	// ctx is done or the feed ends, and returns how many it wrote.
	Next(ctx context.Context, buf []upr.Event) (int, error)
}

// Projector turns stream events into KeyVersions for its instances and
// sends them, batched per endpoint, to its transports.
//
// Handle and Flush make up the deterministic core and must be called from
// one goroutine at a time; Run calls them itself, so do not mix the two.
// AddInstance, DropInstance, Instances and Stats may be called from any
// goroutine at any time.
type Projector struct {
	opts      Options
	endpoints []*endpoint

	mu    sync.Mutex // serializes instance set changes
	insts atomic.Pointer[instanceSet]

	// Core state, owned by the goroutine calling Handle.
	vbuuids []upr.Vbuuid // per vbucket, from StreamBegin
	reader  jsonReader
	eval    evaluator
	vals    []jval
	keyBuf  []byte
	gen     uint64 // number of document events handled, for endpoint.touched

	stats stats
}

// endpoint is the batching state of one transport.
type endpoint struct {
	t      Transport
	batch  *Batch
	arena  []byte
	counts [Snapshot + 1]uint64 // per command in batch, published on send
	// touched is the number of the last event that gave this endpoint a key
	// version, for the Sync rule.
	touched uint64
	// docGen and doc are the number of the event whose document id was
	// last copied into the arena and that copy: the key versions one event
	// sends to one endpoint share it.
	docGen uint64
	doc    []byte
}

// arenaChunk is the size of the byte arenas DocID and Key are copied into.
const arenaChunk = 64 << 10

// instanceSet is an immutable snapshot of the instances and the field tree
// compiled over all of them; AddInstance and DropInstance replace it.
type instanceSet struct {
	insts []*compiledInstance
	tree  *fieldTree
}

// New returns a projector sending to endpoints (at least one).
func New(endpoints []Transport, opts Options) (*Projector, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("projector: no endpoints")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.EnsureDefaults(len(endpoints))
	p := &Projector{opts: opts}
	for i, t := range endpoints {
		if t == nil {
			return nil, fmt.Errorf("projector: endpoint %d is nil", i)
		}
		p.endpoints = append(p.endpoints, &endpoint{t: t})
	}
	set, err := p.buildSet(nil)
	if err != nil {
		return nil, err
	}
	p.insts.Store(set)
	return p, nil
}

func (p *Projector) buildSet(insts []*Instance) (*instanceSet, error) {
	set := &instanceSet{}
	var paths []string
	for _, in := range insts {
		eps := make([]int, in.nparts)
		for part := range eps {
			e := p.opts.Router.Endpoint(in.ID, part)
			if e < 0 || e >= len(p.endpoints) {
				return nil, fmt.Errorf("projector: index %q partition %d routed to endpoint %d of %d",
					in.Defn.Name, part, e, len(p.endpoints))
			}
			eps[part] = e
		}
		set.insts = append(set.insts, newCompiledInstance(in, eps))
		paths = append(paths, in.paths()...)
	}
	tree, slots := newFieldTree(paths)
	for _, c := range set.insts {
		n := len(c.paths())
		c.bindSlots(slots[:n])
		slots = slots[n:]
	}
	set.tree = tree
	return set, nil
}

// AddInstance adds instances; from the next event on they get KeyVersions.
// It fails, adding none, when an id is already present.
func (p *Projector) AddInstance(insts ...*Instance) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.Instances()
	for _, in := range insts {
		for _, c := range cur {
			if c.ID == in.ID {
				return fmt.Errorf("projector: instance %d (%q) already present", in.ID, in.Defn.Name)
			}
		}
		cur = append(cur, in)
	}
	set, err := p.buildSet(cur)
	if err != nil {
		return err
	}
	p.insts.Store(set)
	return nil
}

// DropInstance removes an instance; from the next event on it gets no
// KeyVersions. It reports whether the instance was present.
func (p *Projector) DropInstance(id uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.Instances()
	for i, in := range cur {
		if in.ID == id {
			set, err := p.buildSet(append(cur[:i:i], cur[i+1:]...))
			if err != nil {
				panic(fmt.Sprintf("projector: dropping an instance broke routing: %v", err))
			}
			p.insts.Store(set)
			return true
		}
	}
	return false
}

// Instances returns the current instances.
func (p *Projector) Instances() []*Instance {
	set := p.insts.Load()
	out := make([]*Instance, len(set.insts))
	for i, c := range set.insts {
		out[i] = c.Instance
	}
	return out
}

// Handle turns one event into KeyVersions, appending them to the endpoints'
// batches and sending every batch that fills up (blocking while its
// transport applies backpressure). The rules:
//
//   - StreamBegin, Snapshot, StreamEnd: one KeyVersion with InstID 0 to
//     every endpoint. StreamBegin also sets the vbucket's vbuuid (the
//     failover log's latest branch), which every later KeyVersion of the
//     vbucket carries.
//   - Mutation: per instance, Upsert with the key to the partition of the
//     document, or UpsertDeletion when the document does not qualify (WHERE
//     false, leading key missing, body not JSON). Instances partitioned by
//     a document field send Upsert to the value's partition and
//     UpsertDeletion to every other partition, because the projector
//     cannot know where the previous version went (the indexer treats
//     deleting an absent entry as a no-op); the cost is nparts−1 extra key
//     versions per mutation for such instances. Instances partitioned by
//     document id (the default) always send to the one partition.
//   - Deletion, Expiration: per instance, Deletion to the document's
//     partition (every partition for field-partitioned instances).
//   - After a Mutation, Deletion or Expiration, every endpoint that got no
//     KeyVersion from it gets a Sync, so its seqno for the vbucket advances.
//   - Rollback: Options.OnRollback, no KeyVersion.
//
// ev is not retained: its Key (the document id) is copied and its Value
// only read while Handle runs.
func (p *Projector) Handle(ctx context.Context, ev *upr.Event) error {
	if err := p.handle(ctx, ev); err != nil {
		return err
	}
	// Batches are cut between events only: the key versions of one
	// mutation must reach the indexer together.
	for _, e := range p.endpoints {
		if e.batch != nil && len(e.batch.KVs) >= p.opts.BufferSize {
			if err := p.send(ctx, e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *Projector) handle(ctx context.Context, ev *upr.Event) error {
	p.stats.events.Add(1)
	switch ev.Op {
	case upr.OpStreamBegin:
		vbuuid := ev.Vbuuid
		if len(ev.FailoverLog) > 0 {
			vbuuid = ev.FailoverLog.Latest().Vbuuid
		}
		p.setVbuuid(ev.Vb, vbuuid)
		return p.broadcast(ctx, KeyVersion{Cmd: StreamBegin, Vb: ev.Vb, Vbuuid: vbuuid})
	case upr.OpSnapshot:
		return p.broadcast(ctx, KeyVersion{Cmd: Snapshot, Vb: ev.Vb, Vbuuid: p.vbuuid(ev),
			SnapStart: ev.SnapStart, SnapEnd: ev.SnapEnd})
	case upr.OpStreamEnd:
		return p.broadcast(ctx, KeyVersion{Cmd: StreamEnd, Vb: ev.Vb, Vbuuid: p.vbuuid(ev)})
	case upr.OpRollback:
		p.stats.rollbacks.Add(1)
		if p.opts.OnRollback != nil {
			p.opts.OnRollback(ev)
		}
		return nil
	case upr.OpMutation:
		return p.mutation(ctx, ev)
	case upr.OpDeletion, upr.OpExpiration:
		return p.deletion(ctx, ev)
	}
	return fmt.Errorf("projector: vb %d: unknown event opcode %v", ev.Vb, ev.Op)
}

func (p *Projector) setVbuuid(vb upr.Vbno, u upr.Vbuuid) {
	if int(vb) >= len(p.vbuuids) {
		p.vbuuids = append(p.vbuuids, make([]upr.Vbuuid, int(vb)+1-len(p.vbuuids))...)
	}
	p.vbuuids[vb] = u
}

// vbuuid is the branch of ev's vbucket: from its StreamBegin, else the
// event's own.
func (p *Projector) vbuuid(ev *upr.Event) upr.Vbuuid {
	if int(ev.Vb) < len(p.vbuuids) && p.vbuuids[ev.Vb] != 0 {
		return p.vbuuids[ev.Vb]
	}
	return ev.Vbuuid
}

func (p *Projector) broadcast(ctx context.Context, kv KeyVersion) error {
	for _, e := range p.endpoints {
		if err := p.emit(ctx, e, kv, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// docKV is the KeyVersion template of a document event.
func (p *Projector) docKV(ev *upr.Event) KeyVersion {
	return KeyVersion{Vb: ev.Vb, Vbuuid: p.vbuuid(ev), Seqno: ev.Seqno, EmitNanos: ev.EmitNanos}
}

func (p *Projector) mutation(ctx context.Context, ev *upr.Event) error {
	set := p.insts.Load()
	p.gen++
	gen := p.gen
	if n := set.tree.nslots; cap(p.vals) < n {
		p.vals = make([]jval, n)
	}
	vals := p.vals[:set.tree.nslots]
	if set.tree.nslots > 0 {
		if err := p.reader.extract(set.tree, ev.Value, vals); err != nil {
			// Not JSON: the document has no fields. Secondary indexes drop
			// it; the primary index still holds it.
			p.stats.nonJSON.Add(1)
			clear(vals)
		}
	}
	kv := p.docKV(ev)
	for _, c := range set.insts {
		key, ok, err := p.eval.key(c, ev.Key, vals, p.keyBuf[:0])
		if err != nil {
			return fmt.Errorf("projector: vb %d seqno %d doc %q: %w", ev.Vb, ev.Seqno, ev.Key, err)
		}
		p.keyBuf = key
		if !ok {
			kv.Cmd, kv.InstID = UpsertDeletion, c.ID
			if err := p.toPartitions(ctx, c, kv, ev.Key, -1, gen); err != nil {
				return err
			}
			continue
		}
		part := p.eval.partition(c, ev.Key, vals)
		kv.Cmd, kv.InstID, kv.Partition = Upsert, c.ID, part
		e := p.endpoints[c.endpoints[part]]
		e.touched = gen
		if err := p.emit(ctx, e, kv, ev.Key, key); err != nil {
			return err
		}
		if c.partSlot >= 0 {
			kv.Cmd = UpsertDeletion
			if err := p.toPartitions(ctx, c, kv, ev.Key, part, gen); err != nil {
				return err
			}
		}
	}
	clear(vals) // drop references into the document and decoded values
	return p.syncUntouched(ctx, kv, gen)
}

func (p *Projector) deletion(ctx context.Context, ev *upr.Event) error {
	set := p.insts.Load()
	p.gen++
	gen := p.gen
	kv := p.docKV(ev)
	kv.Cmd = Deletion
	for _, c := range set.insts {
		kv.InstID = c.ID
		if err := p.toPartitions(ctx, c, kv, ev.Key, -1, gen); err != nil {
			return err
		}
	}
	return p.syncUntouched(ctx, kv, gen)
}

// toPartitions sends kv (a Deletion or UpsertDeletion) for c to the
// partitions that may hold the document, except skip: the one partition of
// a docid-partitioned instance, every partition otherwise.
func (p *Projector) toPartitions(ctx context.Context, c *compiledInstance, kv KeyVersion, docid []byte, skip int, gen uint64) error {
	if c.partSlot < 0 {
		part := PartitionOf(docid, c.nparts)
		if part == skip {
			return nil
		}
		kv.Partition = part
		e := p.endpoints[c.endpoints[part]]
		e.touched = gen
		return p.emit(ctx, e, kv, docid, nil)
	}
	for part := range c.nparts {
		if part == skip {
			continue
		}
		kv.Partition = part
		e := p.endpoints[c.endpoints[part]]
		e.touched = gen
		if err := p.emit(ctx, e, kv, docid, nil); err != nil {
			return err
		}
	}
	return nil
}

func (p *Projector) syncUntouched(ctx context.Context, kv KeyVersion, gen uint64) error {
	for _, e := range p.endpoints {
		if e.touched != gen {
			sync := KeyVersion{Cmd: Sync, Vb: kv.Vb, Vbuuid: kv.Vbuuid, Seqno: kv.Seqno, EmitNanos: kv.EmitNanos}
			if err := p.emit(ctx, e, sync, nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// emit appends kv to e's batch with copies of docid and key, and sends the
// batch when it is full. Key versions of one document event share one copy
// of the document id (p.gen numbers document events).
func (p *Projector) emit(ctx context.Context, e *endpoint, kv KeyVersion, docid, key []byte) error {
	if e.batch == nil {
		if p.opts.Pool != nil {
			e.batch = p.opts.Pool.Get(p.opts.BufferSize)
		} else {
			e.batch = &Batch{KVs: make([]KeyVersion, 0, p.opts.BufferSize)}
		}
	}
	if len(docid) > 0 {
		if e.docGen != p.gen {
			e.docGen, e.doc = p.gen, e.copyBytes(docid)
		}
		kv.DocID = e.doc
	}
	kv.Key = e.copyBytes(key)
	e.batch.KVs = append(e.batch.KVs, kv)
	e.counts[kv.Cmd]++
	return nil
}

// copyBytes copies b into e's arena. Arena bytes are never overwritten, so
// the copy stays valid however long receivers keep it.
func (e *endpoint) copyBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	if cap(e.arena)-len(e.arena) < len(b) {
		e.arena = make([]byte, 0, max(arenaChunk, len(b)))
	}
	n := len(e.arena)
	e.arena = append(e.arena, b...)
	return e.arena[n:len(e.arena):len(e.arena)]
}

func (p *Projector) send(ctx context.Context, e *endpoint) error {
	b := e.batch
	if b == nil || len(b.KVs) == 0 {
		return nil
	}
	n := len(b.KVs) // b belongs to the receiver once sent
	if err := e.t.Send(ctx, b); err != nil {
		return fmt.Errorf("projector: send %d key versions: %w", n, err)
	}
	e.batch = nil
	p.stats.batches.Add(1)
	p.stats.keyVersions.Add(uint64(n))
	for cmd, n := range e.counts {
		if n != 0 {
			p.stats.byCommand[cmd].Add(n)
		}
	}
	e.counts = [len(e.counts)]uint64{}
	return nil
}

// Flush sends every partial batch.
func (p *Projector) Flush(ctx context.Context) error {
	for _, e := range p.endpoints {
		if err := p.send(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// Run reads feed until it ends or ctx is done, handling every event and
// sending partial batches at least every FlushInterval. A reader goroutine
// calls feed.Next while the calling goroutine handles the previous events.
// Run returns nil when the feed ends with io.EOF (after flushing), ctx.Err()
// when ctx is done, and otherwise the first feed or transport error.
func (p *Projector) Run(ctx context.Context, feed Feed) error {
	ctx, cancel := context.WithCancel(ctx)

	type chunk struct {
		evs []upr.Event
		err error
	}
	// Two buffers: the reader fills one while the handler works on the
	// other.
	free := make(chan []upr.Event, 2)
	full := make(chan chunk)
	for range 2 {
		free <- make([]upr.Event, p.opts.EventBuffer)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			var buf []upr.Event
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			n, err := feed.Next(ctx, buf)
			select {
			case full <- chunk{evs: buf[:n], err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel() // unblocks the reader's Next
		wg.Wait()
	}()

	ticker := time.NewTicker(p.opts.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
			if err := p.Flush(ctx); err != nil {
				return err
			}
		case c := <-full:
			for i := range c.evs {
				if err := p.Handle(ctx, &c.evs[i]); err != nil {
					return err
				}
			}
			clear(c.evs) // drop references to event bodies
			free <- c.evs[:cap(c.evs)]
			if c.err != nil {
				if errors.Is(c.err, io.EOF) {
					return p.Flush(ctx)
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("projector: feed: %w", c.err)
			}
		}
	}
}

// stats are the projector's counters, updated atomically.
type stats struct {
	events, keyVersions, batches, nonJSON, rollbacks atomic.Uint64
	byCommand                                        [Snapshot + 1]atomic.Uint64
}

// Stats is a snapshot of a projector's counters. Key version counts are of
// key versions sent (in batches that left the projector).
type Stats struct {
	Events      uint64 // events handled
	KeyVersions uint64 // key versions sent
	Batches     uint64 // batches sent
	// ByCommand counts sent key versions per command, indexed by Command.
	ByCommand [Snapshot + 1]uint64
	NonJSON   uint64 // mutations whose body was not valid JSON
	Rollbacks uint64 // OpRollback events
}

// Stats returns the current counters.
func (p *Projector) Stats() Stats {
	s := Stats{
		Events:      p.stats.events.Load(),
		KeyVersions: p.stats.keyVersions.Load(),
		Batches:     p.stats.batches.Load(),
		NonJSON:     p.stats.nonJSON.Load(),
		Rollbacks:   p.stats.rollbacks.Load(),
	}
	for i := range s.ByCommand {
		s.ByCommand[i] = p.stats.byCommand[i].Load()
	}
	return s
}
