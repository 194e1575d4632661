package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"strings"
	"sync"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/indexer/queryport"
	"github.com/idxbench/idxbench/workload/upr"
)

// API is what drives an index node: a *Node in this process, or a *Client
// of one in another. The harness's phases and the crash test use only
// this.
type API interface {
	Config() indexer.Config
	CreateInstance(d indexer.InstanceDefn) error
	Start(ctx context.Context) error
	Stop() error
	Resume(ctx context.Context, ts *upr.TsVbuuid) (rollbacks int, err error)
	Restart(ctx context.Context, insts []indexer.InstanceDefn) (open time.Duration, from *upr.TsVbuuid, err error)
	Recover() (*upr.TsVbuuid, error)
	CheckHold(ctx context.Context, ts *upr.TsVbuuid) (*upr.TsVbuuid, error)
	Drop(id uint64) error
	StartBuild(ctx context.Context, insts []indexer.InstanceDefn) (Builder, error)
	WaitCovered(ctx context.Context, ts *upr.TsVbuuid, timeout time.Duration) error
	WaitCaughtUp(ctx context.Context, timeout time.Duration) error
	WaitPersisted(ctx context.Context, timeout time.Duration, cond PersistCond) (*upr.TsVbuuid, error)
	Scan(ctx context.Context, req indexer.ScanRequest) (*indexer.ScanResult, error)
	Stats() (indexer.Stats, bool)
	HWT() *upr.TsVbuuid
	SnapshotTS() *upr.TsVbuuid
	PersistedTS() *upr.TsVbuuid
	From() *upr.TsVbuuid
	Failure() error
	Close() error
}

// Builder drives an initial build (see Build).
type Builder interface {
	WaitFor(ctx context.Context, ts *upr.TsVbuuid, timeout time.Duration) error
	Merge(ctx context.Context, timeout time.Duration) error
	Close() error
}

var (
	_ API     = (*Node)(nil)
	_ API     = (*Client)(nil)
	_ Builder = (*Build)(nil)
)

// serviceName is the control endpoint's net/rpc service.
const serviceName = "Index"

// ServeWith serves srv's methods — the index node's control endpoint
// (Register: net/rpc over TCP, gob-encoded) and whatever else the process
// registers beside it — on l until l is closed or done is closed (a Close
// call). Scans go to the query port.
func ServeWith(l net.Listener, srv *rpc.Server, done <-chan struct{}) error {
	var wg sync.WaitGroup
	conns := make(chan net.Conn)
	errc := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				errc <- err
				return
			}
			conns <- c
		}
	}()
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
		wg.Wait()
	}()
	for {
		select {
		case c := <-conns:
			open = append(open, c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.ServeConn(c)
			}()
		case err := <-errc:
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		case <-done:
			l.Close()
			<-errc
			return nil
		}
	}
}

// Register registers n's control methods on srv and returns a channel
// closed when a Close call has closed n.
func Register(srv *rpc.Server, n *Node) (closed <-chan struct{}, err error) {
	svc := &service{n: n, closed: make(chan struct{})}
	return svc.closed, srv.RegisterName(serviceName, svc)
}

// service is the control endpoint's methods (net/rpc's shape). Each call
// runs with a background context: a caller that gives up leaves the call
// to finish, as a flow must not stop half way.
type service struct {
	n      *Node
	mu     sync.Mutex // one flow at a time, as Node requires
	build  *Build
	once   sync.Once
	closed chan struct{}
}

// Empty is an argument or reply with nothing in it.
type Empty struct{}

// Vector carries a vector that may be nil.
type Vector struct{ TS *upr.TsVbuuid }

// WaitArgs carry a wait's vector, timeout and persistence condition.
type WaitArgs struct {
	TS      *upr.TsVbuuid
	Timeout time.Duration
	Cond    PersistCond
}

// RestartReply is Restart's answer.
type RestartReply struct {
	Open time.Duration
	From *upr.TsVbuuid
}

// StatsReply is Stats' answer.
type StatsReply struct {
	Stats indexer.Stats
	OK    bool
}

// Which vector a Vector call asks for.
const (
	VectorHWT = iota
	VectorSnapshot
	VectorPersisted
	VectorFrom
)

func (s *service) flow(f func(ctx context.Context) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f(context.Background())
}

// ConfigReply is the part of an indexer.Config that crosses the wire: not
// its functions (the engine's among them), recorder or loggers.
type ConfigReply struct {
	Engine                            string
	CacheBytes, MemtableBytes         int64
	Compression                       string
	Extra                             map[string]string
	Dir                               string
	NumVbuckets, MaxRollbacks         int
	SnapshotInterval, PersistInterval time.Duration
	QueueSize, FlushBatchSize         int
	BackIndexCacheBytes               int64
	Durability                        engines.Durability
	STMode                            string
	LagSampleEvery                    int
	ScanTimeout                       time.Duration
}

func (s *service) Config(_ *Empty, reply *ConfigReply) error {
	c := s.n.Config()
	*reply = ConfigReply{
		Engine: c.Engine.Name, CacheBytes: c.EngineOptions.CacheBytes, MemtableBytes: c.EngineOptions.MemtableBytes,
		Compression: c.EngineOptions.Compression, Extra: c.EngineOptions.Extra, Dir: c.Dir,
		NumVbuckets: c.NumVbuckets, MaxRollbacks: c.MaxRollbacks, SnapshotInterval: c.SnapshotInterval,
		PersistInterval: c.PersistInterval, QueueSize: c.QueueSize, FlushBatchSize: c.FlushBatchSize,
		BackIndexCacheBytes: c.BackIndexCacheBytes, Durability: c.Durability, STMode: c.STMode,
		LagSampleEvery: c.LagSampleEvery, ScanTimeout: c.ScanTimeout,
	}
	return nil
}

func (r ConfigReply) config() indexer.Config {
	return indexer.Config{
		Engine: engines.Engine{Name: r.Engine},
		EngineOptions: engines.Options{CacheBytes: r.CacheBytes, MemtableBytes: r.MemtableBytes,
			Compression: r.Compression, Extra: r.Extra},
		Dir: r.Dir, NumVbuckets: r.NumVbuckets, MaxRollbacks: r.MaxRollbacks, SnapshotInterval: r.SnapshotInterval,
		PersistInterval: r.PersistInterval, QueueSize: r.QueueSize, FlushBatchSize: r.FlushBatchSize,
		BackIndexCacheBytes: r.BackIndexCacheBytes, Durability: r.Durability, STMode: r.STMode,
		LagSampleEvery: r.LagSampleEvery, ScanTimeout: r.ScanTimeout,
	}
}

func (s *service) CreateInstance(d *indexer.InstanceDefn, _ *Empty) error {
	return s.flow(func(context.Context) error { return s.n.CreateInstance(*d) })
}

func (s *service) Start(_ *Empty, _ *Empty) error { return s.flow(s.n.Start) }

func (s *service) Stop(_ *Empty, _ *Empty) error {
	return s.flow(func(context.Context) error { return s.n.Stop() })
}

func (s *service) Resume(ts *upr.TsVbuuid, rollbacks *int) error {
	return s.flow(func(ctx context.Context) (err error) {
		*rollbacks, err = s.n.Resume(ctx, ts)
		return err
	})
}

func (s *service) Restart(insts *[]indexer.InstanceDefn, reply *RestartReply) error {
	return s.flow(func(ctx context.Context) (err error) {
		reply.Open, reply.From, err = s.n.Restart(ctx, *insts)
		return err
	})
}

func (s *service) Recover(_ *Empty, reply *Vector) error {
	return s.flow(func(context.Context) (err error) {
		reply.TS, err = s.n.Recover()
		return err
	})
}

func (s *service) CheckHold(ts *upr.TsVbuuid, reply *Vector) error {
	return s.flow(func(ctx context.Context) (err error) {
		reply.TS, err = s.n.CheckHold(ctx, ts)
		return err
	})
}

func (s *service) Drop(id *uint64, _ *Empty) error {
	return s.flow(func(context.Context) error { return s.n.Drop(*id) })
}

func (s *service) StartBuild(insts *[]indexer.InstanceDefn, _ *Empty) error {
	return s.flow(func(ctx context.Context) error {
		if s.build != nil {
			return errors.New("a build is already running")
		}
		b, err := s.n.StartBuild(ctx, *insts)
		if err != nil {
			return err
		}
		s.build = b.(*Build)
		return nil
	})
}

// BuildWaitFor waits outside the flow lock: the build goes on meanwhile.
func (s *service) BuildWaitFor(args *WaitArgs, _ *Empty) error {
	s.mu.Lock()
	b := s.build
	s.mu.Unlock()
	if b == nil {
		return errors.New("no build is running")
	}
	return b.WaitFor(context.Background(), args.TS, args.Timeout)
}

func (s *service) BuildMerge(args *WaitArgs, _ *Empty) error {
	return s.flow(func(ctx context.Context) error {
		if s.build == nil {
			return errors.New("no build is running")
		}
		return s.build.Merge(ctx, args.Timeout)
	})
}

func (s *service) BuildClose(_ *Empty, _ *Empty) error {
	return s.flow(func(context.Context) error {
		if s.build == nil {
			return nil
		}
		b := s.build
		s.build = nil
		return b.Close()
	})
}

// The waits run outside the flow lock: they watch what the flows do.

func (s *service) WaitCovered(args *WaitArgs, _ *Empty) error {
	return s.n.WaitCovered(context.Background(), args.TS, args.Timeout)
}

func (s *service) WaitCaughtUp(args *WaitArgs, _ *Empty) error {
	return s.n.WaitCaughtUp(context.Background(), args.Timeout)
}

func (s *service) WaitPersisted(args *WaitArgs, reply *Vector) (err error) {
	reply.TS, err = s.n.WaitPersisted(context.Background(), args.Timeout, args.Cond)
	return err
}

func (s *service) Stats(_ *Empty, reply *StatsReply) error {
	reply.Stats, reply.OK = s.n.Stats()
	return nil
}

// Vector answers one of the node's vectors (nil while a restart has no
// indexer open): one per call, since pollers (the driver's throttle, the
// compactor) ask for one every chunk and each is a vector per vbucket.
func (s *service) Vector(which *int, reply *Vector) error {
	if *which == VectorFrom {
		reply.TS = s.n.From()
		return nil
	}
	if s.n.indexer() == nil {
		return nil
	}
	switch *which {
	case VectorHWT:
		reply.TS = s.n.HWT()
	case VectorSnapshot:
		reply.TS = s.n.SnapshotTS()
	case VectorPersisted:
		reply.TS = s.n.PersistedTS()
	default:
		return fmt.Errorf("no vector %d", *which)
	}
	return nil
}

// AlignedHWT answers the indexer's aligned high-watermark, for a
// coordinator promoting stability timestamps.
func (s *service) AlignedHWT(_ *Empty, reply *Vector) error {
	ix := s.n.indexer()
	if ix == nil {
		return indexer.ErrRecovering
	}
	reply.TS = ix.AlignedHWT()
	return nil
}

// PromoteST passes a coordinator's stability timestamp to the indexer.
func (s *service) PromoteST(ts *upr.TsVbuuid, _ *Empty) error {
	ix := s.n.indexer()
	if ix == nil {
		return indexer.ErrRecovering
	}
	return ix.PromoteST(ts)
}

// Failure answers the node's failure ("" for none), cheaply enough for a
// caller that polls it.
func (s *service) Failure(_ *Empty, reply *string) error {
	if err := s.n.Failure(); err != nil {
		*reply = err.Error()
	}
	return nil
}

func (s *service) Close(_ *Empty, _ *Empty) error {
	err := s.flow(func(context.Context) error {
		var errs []error
		if s.build != nil {
			errs = append(errs, s.build.Close())
			s.build = nil
		}
		return errors.Join(append(errs, s.n.Close())...)
	})
	s.once.Do(func() { close(s.closed) })
	return err
}

// Client drives an index node in another process: control calls over its
// control endpoint, scans over its query port. It implements API; its
// methods are safe for concurrent use.
type Client struct {
	rpc   *rpc.Client
	addr  string
	scans *queryport.Client
	cfg   indexer.Config

	mu     sync.Mutex
	failed error // the connection's loss, once seen
}

// DialClient connects to an index node's control endpoint and query port.
func DialClient(ctx context.Context, control, query string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", control)
	if err != nil {
		return nil, fmt.Errorf("index node at %s: %w", control, err)
	}
	c := &Client{rpc: rpc.NewClient(conn), addr: control}
	if c.scans, err = queryport.Dial(ctx, query, queryport.ClientOptions{}); err != nil {
		c.rpc.Close()
		return nil, err
	}
	var cfg ConfigReply
	if err := c.call(ctx, "Config", &Empty{}, &cfg); err != nil {
		c.scans.Close()
		c.rpc.Close()
		return nil, err
	}
	c.cfg = cfg.config()
	return c, nil
}

// call makes a control call that ctx can abandon.
func (c *Client) call(ctx context.Context, method string, args, reply any) error {
	call := c.rpc.Go(serviceName+"."+method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		if call.Error == nil {
			return nil
		}
		if errors.Is(call.Error, rpc.ErrShutdown) || errors.Is(call.Error, io.ErrUnexpectedEOF) {
			err := fmt.Errorf("index node at %s: connection lost: %w", c.addr, call.Error)
			c.mu.Lock()
			if c.failed == nil {
				c.failed = err
			}
			c.mu.Unlock()
			return err
		}
		return remoteError(call.Error)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// remoteError gives a remote error back its sentinel where it has one, so
// errors.Is works across the wire; the message is the remote one.
func remoteError(err error) error {
	msg := err.Error()
	for _, s := range []error{indexer.ErrScanTimeout, indexer.ErrIndexRollback, indexer.ErrNoSuchIndex,
		indexer.ErrClosed, indexer.ErrRecovering, context.DeadlineExceeded, context.Canceled} {
		if strings.Contains(msg, s.Error()) {
			return &wrapped{msg: msg, is: s}
		}
	}
	return errors.New(msg)
}

type wrapped struct {
	msg string
	is  error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.is }

func (c *Client) bg() context.Context { return context.Background() }

// Config is the remote indexer's configuration, without its engine,
// functions and logger.
func (c *Client) Config() indexer.Config { return c.cfg }

func (c *Client) CreateInstance(d indexer.InstanceDefn) error {
	return c.call(c.bg(), "CreateInstance", &d, &Empty{})
}

func (c *Client) Start(ctx context.Context) error { return c.call(ctx, "Start", &Empty{}, &Empty{}) }

func (c *Client) Stop() error { return c.call(c.bg(), "Stop", &Empty{}, &Empty{}) }

func (c *Client) Resume(ctx context.Context, ts *upr.TsVbuuid) (rollbacks int, err error) {
	err = c.call(ctx, "Resume", ts, &rollbacks)
	return rollbacks, err
}

func (c *Client) Restart(ctx context.Context, insts []indexer.InstanceDefn) (time.Duration, *upr.TsVbuuid, error) {
	var r RestartReply
	err := c.call(ctx, "Restart", &insts, &r)
	return r.Open, r.From, err
}

func (c *Client) Recover() (*upr.TsVbuuid, error) {
	var r Vector
	err := c.call(c.bg(), "Recover", &Empty{}, &r)
	return r.TS, err
}

func (c *Client) CheckHold(ctx context.Context, ts *upr.TsVbuuid) (*upr.TsVbuuid, error) {
	var r Vector
	err := c.call(ctx, "CheckHold", ts, &r)
	return r.TS, err
}

func (c *Client) Drop(id uint64) error { return c.call(c.bg(), "Drop", &id, &Empty{}) }

func (c *Client) StartBuild(ctx context.Context, insts []indexer.InstanceDefn) (Builder, error) {
	if err := c.call(ctx, "StartBuild", &insts, &Empty{}); err != nil {
		return nil, err
	}
	return remoteBuild{c}, nil
}

type remoteBuild struct{ c *Client }

func (b remoteBuild) WaitFor(ctx context.Context, ts *upr.TsVbuuid, timeout time.Duration) error {
	return b.c.call(ctx, "BuildWaitFor", &WaitArgs{TS: ts, Timeout: timeout}, &Empty{})
}

func (b remoteBuild) Merge(ctx context.Context, timeout time.Duration) error {
	return b.c.call(ctx, "BuildMerge", &WaitArgs{Timeout: timeout}, &Empty{})
}

func (b remoteBuild) Close() error { return b.c.call(b.c.bg(), "BuildClose", &Empty{}, &Empty{}) }

func (c *Client) WaitCovered(ctx context.Context, ts *upr.TsVbuuid, timeout time.Duration) error {
	return c.call(ctx, "WaitCovered", &WaitArgs{TS: ts, Timeout: timeout}, &Empty{})
}

func (c *Client) WaitCaughtUp(ctx context.Context, timeout time.Duration) error {
	return c.call(ctx, "WaitCaughtUp", &WaitArgs{Timeout: timeout}, &Empty{})
}

func (c *Client) WaitPersisted(ctx context.Context, timeout time.Duration, cond PersistCond) (*upr.TsVbuuid, error) {
	var r Vector
	err := c.call(ctx, "WaitPersisted", &WaitArgs{Timeout: timeout, Cond: cond}, &r)
	return r.TS, err
}

// Scan goes over the query port.
func (c *Client) Scan(ctx context.Context, req indexer.ScanRequest) (*indexer.ScanResult, error) {
	return c.scans.Scan(ctx, req)
}

func (c *Client) Stats() (indexer.Stats, bool) {
	var r StatsReply
	if err := c.call(c.bg(), "Stats", &Empty{}, &r); err != nil {
		return indexer.Stats{}, false
	}
	return r.Stats, r.OK
}

// vector asks for one of the node's vectors: nil when it cannot say (its
// failure, or the lost connection, is for Failure to report).
func (c *Client) vector(which int) *upr.TsVbuuid {
	var r Vector
	if err := c.call(c.bg(), "Vector", &which, &r); err != nil {
		return nil
	}
	return r.TS
}

// AlignedHWT implements coordinator.Node: nil when the node cannot say.
func (c *Client) AlignedHWT() *upr.TsVbuuid {
	var r Vector
	if err := c.call(c.bg(), "AlignedHWT", &Empty{}, &r); err != nil {
		return nil
	}
	return r.TS
}

// PromoteST implements coordinator.Node.
func (c *Client) PromoteST(ts *upr.TsVbuuid) error {
	return c.call(c.bg(), "PromoteST", ts, &Empty{})
}

func (c *Client) HWT() *upr.TsVbuuid         { return c.vector(VectorHWT) }
func (c *Client) SnapshotTS() *upr.TsVbuuid  { return c.vector(VectorSnapshot) }
func (c *Client) PersistedTS() *upr.TsVbuuid { return c.vector(VectorPersisted) }
func (c *Client) From() *upr.TsVbuuid        { return c.vector(VectorFrom) }

// Failure is the remote node's failure, or the loss of the connection.
func (c *Client) Failure() error {
	c.mu.Lock()
	failed := c.failed
	c.mu.Unlock()
	if failed != nil {
		return failed
	}
	var f string
	if err := c.call(c.bg(), "Failure", &Empty{}, &f); err != nil {
		return err
	}
	if f != "" {
		return errors.New(f)
	}
	return nil
}

// CloseConn closes the client's connections and leaves the node running
// (a coordinator done with an index node).
func (c *Client) CloseConn() error {
	return errors.Join(c.scans.Close(), c.rpc.Close())
}

// Close asks the node to close its stores (its process then exits) and
// closes the client's connections.
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := c.call(ctx, "Close", &Empty{}, &Empty{})
	return errors.Join(err, c.scans.Close(), c.rpc.Close())
}
