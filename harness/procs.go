package harness

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/idxbench/idxbench/coordinator"
	"github.com/idxbench/idxbench/coordinator/etcdserver"
	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/harness/measure"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/indexer/node"
	"github.com/idxbench/idxbench/indexer/queryport"
	"github.com/idxbench/idxbench/projector/kvnode"
	"github.com/idxbench/idxbench/workload"
)

// Topologies: how a cell's nodes are laid out.
const (
	// TopologyInproc runs every node in the cell's process, connected by
	// channels (the embedded default).
	TopologyInproc = "inproc"
	// TopologyProcs runs the KV node and the index node as processes of
	// their own on loopback, each pinned to its own CPUs: the index node
	// gets the cell's cores, the KV node the others where the machine has
	// any. The cell's process drives them and keeps the oracle.
	TopologyProcs = "procs"
)

// NodeEnv is set in a node process's environment; a binary that sees it
// reads a NodeJob on stdin and runs RunNode instead of its usual main.
const NodeEnv = "IDXBENCH_NODE"

// Node roles.
const (
	RoleKV    = "kv"
	RoleIndex = coordinator.RoleIndex
	// RoleEtcd is an embedded etcd member in a process of its own: the
	// metadata store of a procs topology when no external cluster is given.
	RoleEtcd = "etcd"
	// RoleCoordinator is an index coordinator: one of several processes
	// standing for master through etcd; the master promotes stability
	// timestamps on every index node (st_mode coordinator).
	RoleCoordinator = "coordinator"
)

// NodeJob is what a node process runs: its role, where it listens, and the
// scenario it serves (the KV node's workload, the index node's settings).
type NodeJob struct {
	Role string `json:"role"`
	// Name is the node's name in the registry, which the partition map
	// places replicas by (default ROLE-PID); a restarted node keeps it.
	Name string `json:"name,omitempty"`
	// Listen is the KV node's admin endpoint or the index node's control
	// endpoint (default 127.0.0.1:0); Query the index node's query port and
	// Dataport its dataport (default 127.0.0.1:0 each).
	Listen   string `json:"listen,omitempty"`
	Query    string `json:"query,omitempty"`
	Dataport string `json:"dataport,omitempty"`
	// Peer is an etcd member's peer address (default 127.0.0.1:0): a
	// member restarted over its directory is given its old one.
	Peer string `json:"peer,omitempty"`
	// KV is the KV node's admin endpoint, for an index node.
	KV string `json:"kv,omitempty"`
	// Etcd lists the etcd endpoints a node registers with (under
	// EtcdPrefix), with a lease that ends when the node does.
	Etcd       []string `json:"etcd,omitempty"`
	EtcdPrefix string   `json:"etcd_prefix,omitempty"`
	// Engine and Dir are the index node's engine and data directory (its
	// slices live in Dir/slices).
	Engine string `json:"engine,omitempty"`
	Dir    string `json:"dir,omitempty"`
	// Scenario (YAML) and Overrides give the workload and the indexer
	// settings.
	Scenario  []byte    `json:"scenario"`
	Overrides Overrides `json:"overrides"`
	// Slowdown injects a regression into the index node's engine.
	Slowdown float64 `json:"slowdown,omitempty"`
	// ExternalST leaves an index node in coordinator mode to the
	// coordinator processes' stability timestamps (it promotes none itself).
	ExternalST bool `json:"external_st,omitempty"`
	// Record records the index node's store calls for raw_ratio phases,
	// replayed on request through the Raw service beside the control
	// endpoint.
	Record bool `json:"record,omitempty"`
	// WatchStdin ends the node when its standard input closes: a node
	// started by a cell dies with the cell.
	WatchStdin bool `json:"watch_stdin,omitempty"`
}

// ReadyPrefix starts the line a node prints on stdout once it serves:
// "ready role=kv admin=ADDR pid=N" or "ready role=index control=ADDR
// query=ADDR pid=N".
const ReadyPrefix = "ready "

// Validate checks what a node needs before it starts.
func (j *NodeJob) Validate() error {
	switch j.Role {
	case RoleKV:
	case RoleEtcd:
		if j.Dir == "" {
			return errors.New("an etcd node needs --dir, its data directory")
		}
	case RoleCoordinator:
		if len(j.Etcd) == 0 {
			return errors.New("a coordinator needs --etcd, the cluster's etcd endpoints")
		}
	case RoleIndex:
		if j.KV == "" {
			return errors.New("an index node needs --kv, the KV node's admin address")
		}
		if j.Dir == "" {
			return errors.New("an index node needs --dir, its data directory")
		}
		if _, err := engines.Lookup(j.Engine); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--role %q: want kv, index, coordinator or etcd", j.Role)
	}
	for _, a := range []string{j.Listen, j.Query, j.Dataport, j.Peer} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("listen address %q: %w", a, err)
		}
	}
	return nil
}

func orLoopback(addr string) string {
	if addr == "" {
		return "127.0.0.1:0"
	}
	return addr
}

// RunNode runs one node until ctx ends, its standard input closes (with
// WatchStdin) or, for an index node, a Close call arrives. It prints the
// ready line on stdout once it serves.
func RunNode(ctx context.Context, job NodeJob, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := job.Validate(); err != nil {
		return err
	}
	sc, err := ParseScenario(job.Scenario)
	if err != nil {
		return err
	}
	spec, err := EffectiveWorkload(sc, job.Overrides)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if job.WatchStdin && stdin != nil {
		go func() {
			io.Copy(io.Discard, stdin)
			cancel()
		}()
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	switch job.Role {
	case RoleEtcd:
		m, err := etcdserver.Start(etcdserver.Config{Dir: job.Dir, ClientURL: httpURL(job.Listen), PeerURL: httpURL(job.Peer)})
		if err != nil {
			return err
		}
		defer m.Close()
		fmt.Fprintf(stdout, "%srole=etcd client=%s peer=%s pid=%d\n", ReadyPrefix, m.ClientURL, m.PeerURL, os.Getpid())
		<-ctx.Done()
		return nil
	case RoleCoordinator:
		return runCoordinator(ctx, job, sc, spec, stdout, log)
	case RoleKV:
		kv, err := kvnode.New(spec, kvnode.Options{Bucket: workload.BucketOptions{Clock: wallClock}})
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", orLoopback(job.Listen))
		if err != nil {
			return fmt.Errorf("KV node: %w", err)
		}
		unregister, err := register(ctx, job, map[string]string{"admin": l.Addr().String()})
		if err != nil {
			l.Close()
			return err
		}
		defer unregister()
		fmt.Fprintf(stdout, "%srole=kv admin=%s pid=%d\n", ReadyPrefix, l.Addr(), os.Getpid())
		go func() {
			<-ctx.Done()
			l.Close()
		}()
		return kvnode.Serve(l, kv, log)
	}

	// The index node.
	eng, _ := engines.Lookup(job.Engine)
	if job.Slowdown > 0 {
		eng = slowedEngine(eng, job.Slowdown, time.Sleep)
	}
	kvc, err := kvnode.Dial(ctx, job.KV, kvnode.ClientOptions{Dataport: orLoopback(job.Dataport)})
	if err != nil {
		return err
	}
	defer kvc.Close()
	cl, err := net.Listen("tcp", orLoopback(job.Listen))
	if err != nil {
		return fmt.Errorf("index node control endpoint: %w", err)
	}
	ql, err := net.Listen("tcp", orLoopback(job.Query))
	if err != nil {
		cl.Close()
		return fmt.Errorf("index node query port: %w", err)
	}
	var opts engines.Options
	opts.EnsureDefaults()
	srv := rpc.NewServer()
	if job.Record {
		rec := newBatchRecorder()
		if err := srv.RegisterName(rawServiceName, &rawService{newLocalReplayer(rec, eng, opts, job.Dir)}); err != nil {
			return err
		}
		eng = rec.wrap(eng)
	}
	cfg := indexerConfig(sc.Indexer, eng, opts, filepath.Join(job.Dir, "slices"), spec.Vbuckets)
	cfg.Clock = wallClock
	cfg.Logger = log
	rec := measure.NewRegistry(time.Now(), measure.Options{}).Recorder(0)
	cfg.Recorder = rec
	if err := srv.RegisterName(recServiceName, &recService{rec}); err != nil {
		return err
	}
	prof := &profService{}
	defer prof.Stop(nil, nil)
	if err := srv.RegisterName(profServiceName, prof); err != nil {
		return err
	}
	ncfg := node.Config{Indexer: cfg, KV: kvc, Promote: promote}
	if job.ExternalST {
		ncfg.Promote = nil
	}
	n, err := node.Open(ncfg)
	if err != nil {
		cl.Close()
		ql.Close()
		return err
	}
	closed, err := node.Register(srv, n)
	if err != nil {
		return err
	}
	qs := queryport.NewServer(n, queryport.ServerOptions{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		qs.Serve(ql)
	}()
	unregister, err := register(ctx, job, map[string]string{"control": cl.Addr().String(), "query": ql.Addr().String()})
	if err != nil {
		cl.Close()
		ql.Close()
		n.Close()
		return err
	}
	defer unregister()
	fmt.Fprintf(stdout, "%srole=index control=%s query=%s pid=%d\n", ReadyPrefix, cl.Addr(), ql.Addr(), os.Getpid())
	go func() {
		<-ctx.Done()
		cl.Close()
	}()
	err = node.ServeWith(cl, srv, closed)
	qs.Close()
	wg.Wait()
	return errors.Join(err, n.Close())
}

// runCoordinator is a coordinator process: it stands for master and, as
// master, promotes stability timestamps on the registered index nodes.
func runCoordinator(ctx context.Context, job NodeJob, sc *Scenario, spec workload.Spec, stdout io.Writer, log *slog.Logger) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: job.Etcd, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("coordinator: etcd %v: %w", job.Etcd, err)
	}
	defer cli.Close()
	name := job.Name
	if name == "" {
		name = fmt.Sprintf("coordinator-%d", os.Getpid())
	}
	clients := map[string]*node.Client{}
	defer func() {
		for _, c := range clients {
			c.CloseConn()
		}
	}()
	// The index nodes last read from the registry stand in while etcd
	// cannot be read: stability timestamps are not held up by metadata.
	var last []coordinator.Node
	nodes := func(ctx context.Context) ([]coordinator.Node, error) {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		reg, err := coordinator.Nodes(rctx, cli, job.EtcdPrefix)
		cancel()
		if err != nil {
			if last != nil {
				return last, nil
			}
			return nil, err
		}
		var out []coordinator.Node
		for _, n := range reg {
			if n.Role != RoleIndex {
				continue
			}
			c := clients[n.Addrs["control"]]
			if c == nil {
				if c, err = node.DialClient(ctx, n.Addrs["control"], n.Addrs["query"]); err != nil {
					continue // gone, or not serving yet
				}
				clients[n.Addrs["control"]] = c
			}
			out = append(out, c)
		}
		last = out
		return out, nil
	}
	interval := sc.Indexer.SnapshotInterval.D()
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	fmt.Fprintf(stdout, "%srole=coordinator name=%s pid=%d\n", ReadyPrefix, name, os.Getpid())
	for {
		err := coordinator.RunMaster(ctx, cli, coordinator.MasterConfig{
			Name: name, Prefix: job.EtcdPrefix, Interval: interval, Vbuckets: spec.Vbuckets, Nodes: nodes, Logger: log,
			Elected: func() { log.Info("elected master", "coordinator", name) },
		})
		if !errors.Is(err, coordinator.ErrLostMastership) || ctx.Err() != nil {
			return err
		}
		// Its lease lapsed (etcd was out of reach longer than it): it
		// stopped acting as master and stands again.
		log.Warn("lost mastership; standing again", "coordinator", name)
	}
}

// httpURL turns a listen address into an etcd URL ("" stays "": a free
// port).
func httpURL(addr string) string {
	if addr == "" || addr == "127.0.0.1:0" {
		return ""
	}
	return "http://" + addr
}

// register records the node under its role in etcd, when the job names an
// etcd cluster, tied to a lease that lapses when the node dies, so watchers
// see nodes join and leave. It returns a function that withdraws it.
func register(ctx context.Context, job NodeJob, addrs map[string]string) (func(), error) {
	if len(job.Etcd) == 0 {
		return func() {}, nil
	}
	if job.Name == "" {
		job.Name = fmt.Sprintf("%s-%d", job.Role, os.Getpid())
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: job.Etcd, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("%s node: etcd %v: %w", job.Role, job.Etcd, err)
	}
	reg, err := coordinator.Register(ctx, cli, job.EtcdPrefix, coordinator.NodeInfo{
		Role: job.Role, Name: job.Name, Pid: os.Getpid(), Addrs: addrs, Engine: job.Engine,
	}, 2)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("%s node: %w", job.Role, err)
	}
	return func() {
		reg.Close()
		cli.Close()
	}, nil
}

// RunNodeFromStdin is a node process a cell started: the job is the first
// line of stdin, and the node ends when stdin closes.
func RunNodeFromStdin(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	r := bufio.NewReader(stdin)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read node job: %w", err)
	}
	var job NodeJob
	if err := json.Unmarshal(line, &job); err != nil {
		return fmt.Errorf("node job: %w", err)
	}
	return RunNode(ctx, job, r, stdout, stderr)
}

// wallClock is the clock of both nodes in a procs topology: index lag is
// the index node's time of visibility minus the KV node's emit time, so the
// two processes need one clock.
func wallClock() int64 { return time.Now().UnixNano() }

// nodeProc is a node process a cell started.
type nodeProc struct {
	role string
	name string // its registry name
	// crashed is set when the harness killed it on purpose (a fault):
	// its death is then not the cell's failure.
	crashed atomic.Bool
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	addrs   map[string]string // from the ready line
	pid     int
	cpus    []int
	waited  chan struct{}
	err     error // Wait's result, once waited is closed
	tail    *tailBuffer
}

// startNode starts a node process of exe on cpus and waits for its ready
// line.
func startNode(ctx context.Context, exe string, job NodeJob, cpus []int, stderr io.Writer) (*nodeProc, error) {
	job.WatchStdin = true
	in, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), NodeEnv+"=1", "GOMAXPROCS="+strconv.Itoa(len(cpus)))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	tail := &tailBuffer{max: 8 << 10}
	cmd.Stderr = io.MultiWriter(stderr, tail)
	if err := startPinnedTo(cmd, cpus); err != nil {
		return nil, fmt.Errorf("start %s node: %w", job.Role, err)
	}
	p := &nodeProc{role: job.Role, cmd: cmd, stdin: stdin, pid: cmd.Process.Pid, cpus: cpus,
		waited: make(chan struct{}), tail: tail}
	if _, err := stdin.Write(append(in, '\n')); err != nil {
		cmd.Process.Kill()
		return nil, err
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, ReadyPrefix) {
				ready <- line
				continue
			}
			fmt.Fprintln(stderr, line)
		}
		close(ready)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.waited)
	}()
	select {
	case line, ok := <-ready:
		if !ok {
			<-p.waited
			return nil, fmt.Errorf("%s node (pid %d) exited before it was ready: %v: %s", job.Role, p.pid, p.err, p.tail.tail(5))
		}
		p.addrs = map[string]string{}
		for _, f := range strings.Fields(strings.TrimPrefix(line, ReadyPrefix)) {
			if k, v, ok := strings.Cut(f, "="); ok {
				p.addrs[k] = v
			}
		}
		p.name = cmp.Or(p.addrs["name"], job.Name)
		return p, nil
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	case <-time.After(time.Minute):
		p.kill()
		return nil, fmt.Errorf("%s node (pid %d) not ready within a minute", job.Role, p.pid)
	}
}

// died returns an error naming the node if its process has exited, unless
// a fault killed it.
func (p *nodeProc) died() error {
	if p.crashed.Load() {
		return nil
	}
	select {
	case <-p.waited:
		return fmt.Errorf("%s node (pid %d) died: %v: %s", p.role, p.pid, p.err, p.tail.tail(3))
	default:
		return nil
	}
}

// stop closes the node's stdin (it exits) and waits for it, killing it
// after timeout.
func (p *nodeProc) stop(timeout time.Duration) error {
	p.stdin.Close()
	select {
	case <-p.waited:
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s node (pid %d) did not exit within %s; killed", p.role, p.pid, timeout)
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		return p.err
	}
	if p.err != nil {
		return fmt.Errorf("%s node (pid %d): %v: %s", p.role, p.pid, p.err, p.tail.tail(3))
	}
	return nil
}

// crash kills the node on purpose: a fault phase's kill -9.
func (p *nodeProc) crash() {
	p.crashed.Store(true)
	p.kill()
}

func (p *nodeProc) kill() {
	p.cmd.Process.Kill()
	<-p.waited
}

// NodeCPUs splits the CPUs this process may use between the index node
// (the first cores) and the KV node (the rest; all of them when none are
// left, which results record).
func NodeCPUs(cores int) (index, kv []int, err error) {
	avail := availableCPUs()
	if cores < 1 || cores > len(avail) {
		return nil, nil, fmt.Errorf("%d cores asked for, %d available", cores, len(avail))
	}
	index, kv = avail[:cores], avail[cores:]
	if len(kv) == 0 {
		kv = avail
	}
	return index, kv, nil
}

// openProcs starts a cell's KV and index node processes and connects to
// them. The pipeline keeps a replica of the KV node's bucket in this
// process — the generator is deterministic, so applying the same
// operations and failovers yields the same bucket — for the oracle.
func openProcs(ctx context.Context, cfg pipelineConfig) (_ *pipeline, err error) {
	p, err := openLocalNodes(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	t := cfg.procs
	indexCPUs, kvCPUs := t.indexCPUs, t.kvCPUs
	endpoints := t.etcd
	if len(endpoints) == 0 {
		// etcd embedded in a process of its own, beside the KV node.
		p.etcdJob = NodeJob{Role: RoleEtcd, Dir: filepath.Join(cfg.dir, "etcd"), Scenario: t.scenario, Overrides: t.overrides}
		ep, err := startNode(ctx, t.exe, p.etcdJob, kvCPUs, t.stderr)
		if err != nil {
			return nil, err
		}
		p.procs = append(p.procs, ep)
		endpoints = []string{ep.addrs["client"]}
	}
	if p.etcd, err = clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}); err != nil {
		return nil, fmt.Errorf("etcd %v: %w", endpoints, err)
	}
	if t.attach != "" {
		return p, p.attach(ctx, t.attach)
	}
	// Each cell keeps its metadata and registry under a prefix of its own.
	p.etcdPrefix = "/idxbench/" + filepath.Base(filepath.Dir(cfg.dir))
	p.coord = coordinator.NewEtcd(p.etcd, p.etcdPrefix, 0)
	base := NodeJob{Scenario: t.scenario, Overrides: t.overrides, Etcd: endpoints, EtcdPrefix: p.etcdPrefix}
	kvJob := base
	kvJob.Role = RoleKV
	kvp, err := startNode(ctx, t.exe, kvJob, kvCPUs, t.stderr)
	if err != nil {
		return nil, err
	}
	p.procs = append(p.procs, kvp)
	if p.remote, err = kvnode.Dial(ctx, kvp.addrs["admin"], kvnode.ClientOptions{NoDataport: true}); err != nil {
		return nil, err
	}
	if _, err := p.remote.Fence(ctx); err != nil { // this cell drives the bucket
		return nil, err
	}
	ixJob := base
	ixJob.Role, ixJob.KV, ixJob.Engine, ixJob.Dir, ixJob.Slowdown = RoleIndex, kvp.addrs["admin"], t.engine, cfg.dir, t.slowdown
	ixJob.Record = t.record
	if cfg.settings.STMode == indexer.ModeCoordinator {
		// Two coordinator processes stand for master; the master promotes
		// the index node's stability timestamps.
		ixJob.ExternalST = true
		for range 2 {
			cj := base
			cj.Role = RoleCoordinator
			p.coordJob = cj
			cp, err := startNode(ctx, t.exe, cj, kvCPUs, t.stderr)
			if err != nil {
				return nil, err
			}
			p.procs = append(p.procs, cp)
		}
		// With coordinators running, the master executes DDL.
		p.coord = coordinator.NewViaMaster(p.etcd, p.etcdPrefix, 0)
	}
	names := indexNodeNames(cfg.indexNodes)
	if names == nil {
		names = []string{""} // one index node, unnamed, over the cell's directory
	}
	var apis []node.API
	for _, name := range names {
		job := ixJob
		if name != "" {
			job.Name, job.Dir = name, filepath.Join(cfg.dir, name)
		}
		m := &indexMember{name: name, job: job, cpus: indexCPUs}
		if err := p.startMember(ctx, m); err != nil {
			return nil, err
		}
		p.members = append(p.members, m)
		apis = append(apis, m.api)
	}
	p.ix = apis[0]
	if len(apis) > 1 {
		p.cluster = node.NewCluster(names, apis)
		p.ix = p.cluster
	}
	p.ctl = p.members[0].ctl
	return p, nil
}

// attach connects to a cluster started by hand (idxbench node on each
// host, registered under prefix in the cluster p.etcd talks to) instead of
// starting one: its KV node, which must generate the scenario's workload
// and hold nothing yet, and its index nodes, which must run the cell's
// engine. The nodes are not the cell's: it neither stops nor restarts
// them.
func (p *pipeline) attach(ctx context.Context, prefix string) error {
	p.etcdPrefix = prefix
	reg, err := coordinator.Nodes(ctx, p.etcd, prefix)
	if err != nil {
		return err
	}
	var kvAddr string
	var index []coordinator.NodeInfo
	for _, n := range reg {
		switch n.Role {
		case RoleKV:
			if kvAddr != "" {
				return fmt.Errorf("cluster %s: more than one KV node registered", prefix)
			}
			kvAddr = n.Addrs["admin"]
		case RoleIndex:
			if n.Engine != p.cfg.procs.engine {
				return fmt.Errorf("cluster %s: index node %s runs engine %q, the cell %q", prefix, n.Name, n.Engine, p.cfg.procs.engine)
			}
			index = append(index, n)
		}
	}
	if kvAddr == "" || len(index) == 0 {
		return fmt.Errorf("cluster %s: want one KV node and at least one index node registered; found KV admin %q and %d index nodes",
			prefix, kvAddr, len(index))
	}
	if p.remote, err = kvnode.Dial(ctx, kvAddr, kvnode.ClientOptions{NoDataport: true}); err != nil {
		return err
	}
	spec, err := p.remote.Spec(ctx)
	if err != nil {
		return err
	}
	want, _ := json.Marshal(p.spec)
	got, _ := json.Marshal(spec)
	if string(want) != string(got) {
		return fmt.Errorf("cluster %s: the KV node at %s generates another workload than the scenario's (start it with the same --scenario, --seed, --docs and --vbuckets)", prefix, kvAddr)
	}
	if ts, err := p.remote.Seqnos(ctx); err != nil || ts.Sum() > 0 {
		return fmt.Errorf("cluster %s: the KV node at %s holds mutations already (%v); attach to a freshly started cluster", prefix, kvAddr, err)
	}
	if _, err := p.remote.Fence(ctx); err != nil {
		return err
	}
	if p.cfg.indexNodes != max(len(index), 1) && p.cfg.indexNodes > 1 {
		return fmt.Errorf("cluster %s: the scenario wants %d index nodes, %d are registered", prefix, p.cfg.indexNodes, len(index))
	}
	var names []string
	var apis []node.API
	for _, n := range index {
		c, err := node.DialClient(ctx, n.Addrs["control"], n.Addrs["query"])
		if err != nil {
			return fmt.Errorf("index node %s: %w", n.Name, err)
		}
		names = append(names, n.Name)
		apis = append(apis, c)
		p.members = append(p.members, &indexMember{name: n.Name, api: c})
	}
	p.ix = apis[0]
	if len(apis) > 1 {
		p.cluster = node.NewCluster(names, apis)
		p.ix = p.cluster
	}
	p.coord = coordinator.NewEtcd(p.etcd, prefix, 0)
	if _, err := coordinator.Master(ctx, p.etcd, prefix); err == nil {
		p.coord = coordinator.NewViaMaster(p.etcd, prefix, 0)
	}
	return nil
}

// indexMember is an index node process of a procs topology, with what
// started it, so that a fault can kill it and start it again as the same
// node over the same directory.
type indexMember struct {
	name string
	job  NodeJob
	cpus []int
	proc *nodeProc
	api  *node.Client
	// ctl reaches the harness's services on the node's control endpoint.
	ctl *rpc.Client
}

// startMember starts m's process and connects to it.
func (p *pipeline) startMember(ctx context.Context, m *indexMember) error {
	t := p.cfg.procs
	np, err := startNode(ctx, t.exe, m.job, m.cpus, t.stderr)
	if err != nil {
		return err
	}
	p.editProcs(func() { p.procs = append(p.procs, np) })
	api, err := node.DialClient(ctx, np.addrs["control"], np.addrs["query"])
	if err != nil {
		return err
	}
	conn, err := net.Dial("tcp", np.addrs["control"])
	if err != nil {
		return fmt.Errorf("index node (pid %d): %w", np.pid, err)
	}
	p.editProcs(func() { m.proc, m.api, m.ctl = np, api, rpc.NewClient(conn) })
	return nil
}

// procsConfig is what a procs topology needs beyond the pipeline's config.
type procsConfig struct {
	exe       string
	engine    string
	indexCPUs []int
	kvCPUs    []int
	scenario  []byte
	overrides Overrides
	slowdown  float64
	record    bool
	stderr    io.Writer
	// etcd lists an external etcd cluster's endpoints; empty starts an
	// embedded member in a process of its own.
	etcd []string
	// attach, when set, is the prefix of a cluster started by hand, under
	// etcd, that the cell drives instead of starting nodes (see attach).
	attach string
}

// indexerConfig is an index node's indexer configuration from the
// scenario's settings.
func indexerConfig(s IndexerSettings, eng engines.Engine, opts engines.Options, dir string, vbuckets int) indexer.Config {
	dur := engines.NoSync
	if s.Durability == "sync" {
		dur = engines.Sync
	}
	return indexer.Config{
		Engine:              eng,
		EngineOptions:       opts,
		Dir:                 dir,
		NumVbuckets:         vbuckets,
		SnapshotInterval:    s.SnapshotInterval.D(),
		PersistInterval:     s.PersistInterval.D(),
		MaxRollbacks:        s.MaxRollbacks,
		QueueSize:           s.QueueSize,
		FlushBatchSize:      s.FlushBatchSize,
		BackIndexCacheBytes: s.BackIndexCacheBytes,
		Durability:          dur,
		STMode:              s.STMode,
		STOnDemand:          s.STOnDemand,
		VerifyOnOpen:        s.VerifyOnOpen,
		RollbackQueues:      s.RollbackQueues,
	}
}
