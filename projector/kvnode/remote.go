package kvnode

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/rpc"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/projector/dataport"
	"github.com/idxbench/idxbench/workload"
	"github.com/idxbench/idxbench/workload/upr"
)

// A KV node in a process of its own answers its admin endpoint (net/rpc
// over TCP, gob-encoded) and sends each topic's key versions over the
// dataport to the address the index node names:
//
//	index node                          KV node
//	Client.OpenTopic ── rpc OpenTopic ──▶ Dial dataport(addr, id) ──▶ projector
//	      ◀──────────── dataport: frames of key versions ──────────────┘
//
// The admin endpoint also takes the run's controls (Load, Apply, Failover,
// Restart),
// so a driver in another process mutates the bucket a chunk at a time.

// serviceName is the admin endpoint's net/rpc service.
const serviceName = "KV"

// Serve answers the admin endpoint for n on l until l is closed. Then, as
// a KV node that stops, it ends its topics (each index node sees its
// session end) and drops its admin connections (clients redial).
func Serve(l net.Listener, n *Node, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	svc := &service{n: n, log: log, topics: map[string]*senderTopic{}}
	srv := rpc.NewServer()
	if err := srv.RegisterName(serviceName, svc); err != nil {
		return err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	defer func() {
		svc.closeAll()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[conn] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.ServeConn(conn)
			mu.Lock()
			delete(conns, conn)
			mu.Unlock()
		}()
	}
}

// service is the admin endpoint's methods (net/rpc's shape).
type service struct {
	n      *Node
	log    *slog.Logger
	mu     sync.Mutex
	topics map[string]*senderTopic

	// ctlMu serialises the controls that change the bucket with the
	// history they leave and the driver's epoch (see Fence).
	ctlMu   sync.Mutex
	history []Event // the controls applied to the bucket, in order
	epoch   uint64  // the current driver's; controls from older ones are refused
}

// Event is one control applied to the bucket through the admin endpoint:
// the load, a run of the generator's operations, or a failover. The
// bucket's history is exactly the sequence of its events, so a replica
// that replays them (Replay) holds the same bucket.
type Event struct {
	Load     bool
	Apply    int
	Failover *FailoverArgs
	Restart  *RestartArgs
}

// control applies one control for the driver of epoch, and records it, as
// one step: a control from a driver that an other has fenced off since
// (a killed process whose request arrived late) is refused, so what a
// replica replays is exactly what the bucket did.
func (s *service) control(epoch uint64, e Event, apply func() error) error {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	if epoch != s.epoch {
		return fmt.Errorf("%w (epoch %d, now %d)", ErrFenced, epoch, s.epoch)
	}
	if err := apply(); err != nil {
		return err
	}
	if n := len(s.history); e.Apply > 0 && n > 0 && s.history[n-1].Apply > 0 {
		s.history[n-1].Apply += e.Apply
		return nil
	}
	s.history = append(s.history, e)
	return nil
}

// ErrFenced refuses a control from a driver another one has fenced off.
var ErrFenced = errors.New("kv node: driver fenced off by a newer one")

// FenceReply is a new driver's epoch and the bucket's history so far.
type FenceReply struct {
	Epoch   uint64
	History []Event
}

// Fence makes the caller the bucket's driver: controls of earlier
// drivers still on their way are refused from now on, and the reply's
// history is the bucket's, complete.
func (s *service) Fence(_ *Empty, reply *FenceReply) error {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	s.epoch++
	reply.Epoch, reply.History = s.epoch, append([]Event(nil), s.history...)
	return nil
}

// Replay applies events to n, which must hold what the events' bucket held
// before them (an empty bucket for a whole history).
func Replay(n *Node, events []Event) error {
	for _, e := range events {
		switch {
		case e.Load:
			n.Load()
		case e.Apply > 0:
			n.ApplyNext(e.Apply)
		case e.Failover != nil:
			if err := n.Failover(e.Failover.Vb, e.Failover.Branch); err != nil {
				return fmt.Errorf("replay failover of vb %d at %d: %w", e.Failover.Vb, e.Failover.Branch, err)
			}
		case e.Restart != nil:
			if err := n.Restart(e.Restart.Persisted, e.Restart.NewEntry); err != nil {
				return fmt.Errorf("replay KV restart: %w", err)
			}
		}
	}
	return nil
}

// Empty is an argument or reply with nothing in it.
type Empty struct{}

// ProbeReply carries Probe's answer.
type ProbeReply struct{ Rollbacks map[upr.Vbno]upr.Seqno }

// Probe answers Node.Probe.
func (s *service) Probe(ts *upr.TsVbuuid, reply *ProbeReply) error {
	rb, err := s.n.Probe(context.Background(), ts)
	reply.Rollbacks = rb
	return err
}

// OpenTopicArgs asks for a topic sent over the dataport to Addr.
type OpenTopicArgs struct {
	Req projector.TopicRequest
	// Addr is the index node's dataport; ID names the session (the
	// dataport's sender id), so the index node knows which request a
	// connection answers.
	Addr, ID string
}

// OpenTopic starts a topic whose projector sends to the index node's
// dataport.
func (s *service) OpenTopic(args *OpenTopicArgs, _ *Empty) error {
	ctx := context.Background()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	snd, err := dataport.Dial(dctx, args.Addr, dataport.SenderOptions{Stream: args.Req.Topic, SenderID: args.ID})
	cancel()
	if err != nil {
		return fmt.Errorf("topic %s: %w", args.Req.Topic, err)
	}
	t, err := s.n.openTopic(ctx, args.Req, snd)
	if err != nil {
		snd.Close()
		return err
	}
	st := &senderTopic{t: t, snd: snd}
	s.mu.Lock()
	old := s.topics[args.ID]
	s.topics[args.ID] = st
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	go func() {
		// A topic whose index node went away ends here: the projector's
		// send fails, the topic stops and is forgotten.
		<-t.done
		if t.err != nil {
			s.log.Warn("topic ended", "id", args.ID, "err", t.err)
		}
	}()
	return nil
}

// TopicArgs names a topic, and an instance for DropInstance.
type TopicArgs struct {
	ID     string
	InstID uint64
}

// DropInstance stops a topic's key versions for an instance.
func (s *service) DropInstance(args *TopicArgs, _ *Empty) error {
	s.mu.Lock()
	st := s.topics[args.ID]
	s.mu.Unlock()
	if st == nil {
		return fmt.Errorf("no topic %q", args.ID)
	}
	return st.t.DropInstance(args.InstID)
}

// CloseTopic ends a topic and its dataport session.
func (s *service) CloseTopic(args *TopicArgs, _ *Empty) error {
	s.mu.Lock()
	st := s.topics[args.ID]
	delete(s.topics, args.ID)
	s.mu.Unlock()
	if st != nil {
		st.close()
	}
	return nil
}

func (s *service) closeAll() {
	s.mu.Lock()
	topics := s.topics
	s.topics = map[string]*senderTopic{}
	s.mu.Unlock()
	for _, st := range topics {
		st.close()
	}
}

// CurrentSeqnos answers Node.CurrentSeqnos.
func (s *service) CurrentSeqnos(_ *Empty, reply *upr.TsVbuuid) error {
	*reply = *s.n.CurrentSeqnos()
	return nil
}

// Spec answers with the KV node's workload spec, as JSON (the spec holds
// values gob cannot carry).
func (s *service) Spec(_ *Empty, reply *[]byte) error {
	b, err := json.Marshal(s.n.Spec())
	*reply = b
	return err
}

// ControlArgs carry a driver's epoch (from Fence) with its control.
type ControlArgs struct {
	Epoch    uint64
	N        int           // Apply: how many operations
	Failover *FailoverArgs // Failover
	Restart  *RestartArgs  // Restart
}

// Load loads the spec's documents and replies how many there are.
func (s *service) Load(args *ControlArgs, reply *int) error {
	return s.control(args.Epoch, Event{Load: true}, func() error {
		*reply = s.n.Load()
		return nil
	})
}

// Apply applies the generator's next N operations.
func (s *service) Apply(args *ControlArgs, _ *Empty) error {
	return s.control(args.Epoch, Event{Apply: args.N}, func() error {
		s.n.ApplyNext(args.N)
		return nil
	})
}

// FailoverArgs names a vbucket and the seqno its history is kept up to.
type FailoverArgs struct {
	Vb     upr.Vbno
	Branch upr.Seqno
}

// Failover answers Node.Failover.
func (s *service) Failover(args *ControlArgs, _ *Empty) error {
	if args.Failover == nil {
		return errors.New("failover: no vbucket named")
	}
	a := *args.Failover
	return s.control(args.Epoch, Event{Failover: &a}, func() error { return s.n.Failover(a.Vb, a.Branch) })
}

// RestartArgs are a KV restart's: the vbuckets that lose their
// unpersisted tail, each with the seqno its history is kept up to, and
// whether they start a new failover-log entry there.
type RestartArgs struct {
	Persisted map[upr.Vbno]upr.Seqno
	NewEntry  bool
}

// Restart answers Node.Restart. The topics sent over dataport sessions
// end with the node's own (their senders close).
func (s *service) Restart(args *ControlArgs, _ *Empty) error {
	if args.Restart == nil {
		return errors.New("kv restart: no arguments")
	}
	a := *args.Restart
	return s.control(args.Epoch, Event{Restart: &a}, func() error { return s.n.Restart(a.Persisted, a.NewEntry) })
}

// senderTopic is a topic sent over a dataport session.
type senderTopic struct {
	t    *topic
	snd  *dataport.Sender
	once sync.Once
}

func (st *senderTopic) close() {
	st.once.Do(func() {
		st.t.Close()
		st.snd.Close()
	})
}

// Client is an index node's (or a driver's) connection to a KV node in
// another process. It implements the index node's KV interface: OpenTopic
// asks the KV node to send the topic to the client's own dataport
// listener and returns that session. Its methods are safe for concurrent
// use.
type Client struct {
	rpcMu  sync.Mutex
	rpc    *rpc.Client // replaced when the connection is lost
	addr   string
	dp     *dataport.Listener
	nextID atomic.Uint64
	epoch  atomic.Uint64 // this client's driver epoch (Fence)
	prefix string

	mu      sync.Mutex
	waiting map[string]chan *dataport.Conn
	stop    context.CancelFunc
	done    chan struct{}
}

// ClientOptions configure Dial.
type ClientOptions struct {
	// Dataport is the address the client's dataport listens on for the
	// topics it opens (default "127.0.0.1:0"); "" with NoDataport set
	// opens none (a driver that only mutates the bucket).
	Dataport   string
	NoDataport bool
	// Name prefixes the client's topic session ids (default "ix"); a
	// random suffix keeps two clients' sessions apart (two index nodes of
	// one name on one KV node, or one restarted).
	Name string
}

// Dial connects to the KV node's admin endpoint at addr.
func Dial(ctx context.Context, addr string, opts ClientOptions) (*Client, error) {
	rc, err := dialRPC(ctx, addr)
	if err != nil {
		return nil, err
	}
	c := &Client{rpc: rc, addr: addr, prefix: opts.Name, waiting: map[string]chan *dataport.Conn{},
		done: make(chan struct{})}
	if c.prefix == "" {
		c.prefix = "ix"
	}
	var nonce [6]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		rc.Close()
		return nil, err
	}
	c.prefix += "-" + hex.EncodeToString(nonce[:])
	if opts.NoDataport {
		close(c.done)
		return c, nil
	}
	if opts.Dataport == "" {
		opts.Dataport = "127.0.0.1:0"
	}
	if c.dp, err = dataport.Listen(opts.Dataport, dataport.ReceiverOptions{}); err != nil {
		rc.Close()
		return nil, err
	}
	actx, stop := context.WithCancel(context.Background())
	c.stop = stop
	go c.accept(actx)
	return c, nil
}

// accept hands each dataport session to the OpenTopic waiting for it.
func (c *Client) accept(ctx context.Context) {
	defer close(c.done)
	for {
		conn, err := c.dp.Accept(ctx)
		if err != nil {
			return
		}
		c.mu.Lock()
		ch := c.waiting[conn.SenderID()]
		delete(c.waiting, conn.SenderID())
		c.mu.Unlock()
		if ch == nil {
			conn.Close() // nobody asked for it (any more)
			continue
		}
		ch <- conn
	}
}

func dialRPC(ctx context.Context, addr string) (*rpc.Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("KV node at %s: %w", addr, err)
	}
	return rpc.NewClient(conn), nil
}

// call makes an admin call that ctx can abandon. When the connection was
// lost (the KV node restarted), it dials again and retries once: every
// admin call is safe to repeat.
func (c *Client) call(ctx context.Context, method string, args, reply any) error {
	err := c.callOnce(ctx, method, args, reply)
	if !lost(err) {
		return err
	}
	c.rpcMu.Lock()
	old := c.rpc
	rc, derr := dialRPC(ctx, c.addr)
	if derr == nil {
		c.rpc = rc
	}
	c.rpcMu.Unlock()
	if derr != nil {
		return fmt.Errorf("KV node at %s: %s: connection lost (%v), and redial: %w", c.addr, method, err, derr)
	}
	old.Close()
	return c.callOnce(ctx, method, args, reply)
}

func lost(err error) bool {
	return errors.Is(err, rpc.ErrShutdown) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

func (c *Client) callOnce(ctx context.Context, method string, args, reply any) error {
	c.rpcMu.Lock()
	rc := c.rpc
	c.rpcMu.Unlock()
	call := rc.Go(serviceName+"."+method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		if call.Error != nil {
			return fmt.Errorf("KV node at %s: %s: %w", c.addr, method, call.Error)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Probe implements the index node's KV interface.
func (c *Client) Probe(ctx context.Context, ts *upr.TsVbuuid) (map[upr.Vbno]upr.Seqno, error) {
	var reply ProbeReply
	if err := c.call(ctx, "Probe", ts, &reply); err != nil {
		return nil, err
	}
	if reply.Rollbacks == nil {
		reply.Rollbacks = map[upr.Vbno]upr.Seqno{}
	}
	return reply.Rollbacks, nil
}

// CurrentSeqnos implements the index node's KV interface. A KV node that
// cannot be reached answers nil.
func (c *Client) CurrentSeqnos() *upr.TsVbuuid {
	ts, err := c.Seqnos(context.Background())
	if err != nil {
		return nil
	}
	return ts
}

// Spec returns the workload spec the KV node generates its operations
// from: a driver that replays them (a replica of the bucket) checks it is
// its own.
func (c *Client) Spec(ctx context.Context) (workload.Spec, error) {
	var b []byte
	var spec workload.Spec
	if err := c.call(ctx, "Spec", &Empty{}, &b); err != nil {
		return spec, err
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return spec, fmt.Errorf("KV node at %s: its workload spec: %w", c.addr, err)
	}
	return spec, nil
}

// Seqnos is CurrentSeqnos with its error.
func (c *Client) Seqnos(ctx context.Context) (*upr.TsVbuuid, error) {
	var ts upr.TsVbuuid
	if err := c.call(ctx, "CurrentSeqnos", &Empty{}, &ts); err != nil {
		return nil, err
	}
	return &ts, nil
}

// Fence makes this client the bucket's driver (the one whose Load, Apply
// and Failover are taken; an earlier driver's are refused from now on)
// and returns the bucket's history so far, for a replica to Replay.
func (c *Client) Fence(ctx context.Context) ([]Event, error) {
	var r FenceReply
	if err := c.call(ctx, "Fence", &Empty{}, &r); err != nil {
		return nil, err
	}
	c.epoch.Store(r.Epoch)
	return r.History, nil
}

// Load loads the KV node's documents and returns how many there are.
func (c *Client) Load(ctx context.Context) (int, error) {
	var n int
	err := c.call(ctx, "Load", &ControlArgs{Epoch: c.epoch.Load()}, &n)
	return n, err
}

// Apply applies the generator's next n operations on the KV node.
func (c *Client) Apply(ctx context.Context, n int) error {
	return c.call(ctx, "Apply", &ControlArgs{Epoch: c.epoch.Load(), N: n}, &Empty{})
}

// Failover fails vb over at branch on the KV node.
func (c *Client) Failover(ctx context.Context, vb upr.Vbno, branch upr.Seqno) error {
	return c.call(ctx, "Failover", &ControlArgs{Epoch: c.epoch.Load(), Failover: &FailoverArgs{Vb: vb, Branch: branch}}, &Empty{})
}

// Restart restarts KV on the KV node (Node.Restart).
func (c *Client) Restart(ctx context.Context, persisted map[upr.Vbno]upr.Seqno, newEntry bool) error {
	return c.call(ctx, "Restart", &ControlArgs{Epoch: c.epoch.Load(), Restart: &RestartArgs{Persisted: persisted, NewEntry: newEntry}}, &Empty{})
}

// OpenTopic implements the index node's KV interface: the KV node sends
// the topic to the client's dataport.
func (c *Client) OpenTopic(ctx context.Context, req projector.TopicRequest) (projector.Topic, error) {
	if c.dp == nil {
		return nil, errors.New("kv client: opened without a dataport")
	}
	id := fmt.Sprintf("%s-%s-%d", c.prefix, req.Topic, c.nextID.Add(1))
	ch := make(chan *dataport.Conn, 1)
	c.mu.Lock()
	c.waiting[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
	}
	args := &OpenTopicArgs{Req: req, Addr: c.dp.Addr().String(), ID: id}
	if err := c.call(ctx, "OpenTopic", args, &Empty{}); err != nil {
		forget()
		return nil, err
	}
	select {
	case conn := <-ch:
		return &remoteTopic{c: c, id: id, conn: conn}, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		forget()
		return nil, fmt.Errorf("KV node at %s opened topic %s but never connected to the dataport at %s", c.addr, id, args.Addr)
	}
}

// remoteTopic is a topic received over a dataport session.
type remoteTopic struct {
	c    *Client
	id   string
	conn *dataport.Conn
	once sync.Once
}

func (t *remoteTopic) Recv(ctx context.Context) (*projector.Batch, error) {
	b, err := t.conn.Recv(ctx)
	if errors.Is(err, io.EOF) || errors.Is(err, dataport.ErrClosed) {
		return nil, projector.ErrTransportClosed
	}
	return b, err
}

func (t *remoteTopic) DropInstance(id uint64) error {
	return t.c.call(context.Background(), "DropInstance", &TopicArgs{ID: t.id, InstID: id}, &Empty{})
}

func (t *remoteTopic) Close() error {
	var err error
	t.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = t.c.call(ctx, "CloseTopic", &TopicArgs{ID: t.id}, &Empty{})
		err = errors.Join(err, ignoreClosed(t.conn.Close()))
	})
	return err
}

func ignoreClosed(err error) error {
	if errors.Is(err, dataport.ErrClosed) {
		return nil
	}
	return err
}

// Close closes the client's dataport and admin connection.
func (c *Client) Close() error {
	var errs []error
	if c.dp != nil {
		c.stop()
		errs = append(errs, c.dp.Close())
		<-c.done
	}
	c.rpcMu.Lock()
	errs = append(errs, c.rpc.Close())
	c.rpcMu.Unlock()
	return errors.Join(errs...)
}
