package node_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idxbench/idxbench/engines"
	_ "github.com/idxbench/idxbench/engines/bbolt"
	_ "github.com/idxbench/idxbench/engines/memory"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/indexer/node"
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/projector/kvnode"
	"github.com/idxbench/idxbench/workload"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

var flagSeed = flag.Uint64("seed", 0, "seed for the flow tests (0: derive one from the time)")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func seed(t *testing.T) uint64 {
	s := *flagSeed
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed: %d (rerun: go test ./indexer/node -run '%s' -seed %d)", s, t.Name(), s)
	return s
}

// cluster is a KV node and an index node in one process, with the oracle.
type cluster struct {
	t      *testing.T
	kv     *kvnode.Node
	ix     *node.Node
	oracle *workload.Oracle
	insts  []indexer.InstanceDefn
	cfg    node.Config
}

var (
	byCity  = indexer.InstanceDefn{ID: 1, Defn: defn.IndexDefn{Name: "by_city", SecExprs: []string{"city"}}}
	primary = indexer.InstanceDefn{ID: 2, Defn: defn.IndexDefn{Name: "primary", IsPrimary: true}}
	byAge   = indexer.InstanceDefn{ID: 3, Defn: defn.IndexDefn{Name: "by_age", SecExprs: []string{"age"}}}
)

// transports are the two ways key versions reach the index node: an
// in-process channel, and the dataport over loopback TCP from a KV node
// served on its admin endpoint.
var transports = []string{"inproc", "tcp"}

// forEachTransport runs fn as a subtest per transport.
func forEachTransport(t *testing.T, fn func(t *testing.T, transport string)) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { fn(t, tr) })
	}
}

func newCluster(t *testing.T, transport string, seed uint64, insts ...indexer.InstanceDefn) *cluster {
	return newClusterOn(t, transport, "memory", seed, insts...)
}

// serveKV serves kv's admin endpoint on loopback and returns a client of
// it, closed (with the server) when the test ends.
func serveKV(t *testing.T, kv *kvnode.Node) *kvnode.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- kvnode.Serve(l, kv, nil) }()
	c, err := kvnode.Dial(context.Background(), l.Addr().String(), kvnode.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		l.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return c
}

func newClusterOn(t *testing.T, transport, engine string, seed uint64, insts ...indexer.InstanceDefn) *cluster {
	t.Helper()
	spec := workload.DefaultSpec()
	spec.Seed, spec.Docs, spec.Vbuckets = seed, 400, 8
	kv, err := kvnode.New(spec, kvnode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engines.Lookup(engine)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, kv: kv, oracle: workload.NewOracle(kv.Bucket())}
	var remote node.KV = kv
	if transport == "tcp" {
		remote = serveKV(t, kv)
	}
	c.cfg = node.Config{KV: remote, Indexer: indexer.Config{
		Engine: eng, Dir: t.TempDir(), NumVbuckets: spec.Vbuckets, Clock: kv.Now,
		SnapshotInterval: 10 * time.Millisecond, PersistInterval: 20 * time.Millisecond,
	}}
	if c.ix, err = node.Open(c.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.ix.Close(); err != nil {
			t.Error(err)
		}
	})
	for _, d := range insts {
		if err := c.ix.CreateInstance(d); err != nil {
			t.Fatal(err)
		}
	}
	c.insts = insts
	return c
}

func (c *cluster) mutate(n int) {
	for range n {
		c.kv.Apply(c.kv.Next())
	}
}

// verify waits for the index to catch up with KV and compares every
// instance with the oracle at the snapshot it read.
func (c *cluster) verify(ctx context.Context) {
	c.t.Helper()
	if err := c.ix.WaitCaughtUp(ctx, 20*time.Second); err != nil {
		c.t.Fatal(err)
	}
	for _, d := range c.insts {
		res, err := c.ix.Scan(ctx, indexer.ScanRequest{InstID: d.ID, Kind: indexer.ScanAll})
		if err != nil {
			c.t.Fatalf("scan %s: %v", d.Defn.Name, err)
		}
		want, err := c.oracle.Expected(d.Defn, res.TS)
		if err != nil {
			c.t.Fatal(err)
		}
		if len(want) == 0 {
			c.t.Fatalf("%s: the oracle expects no entries; the test checks nothing", d.Defn.Name)
		}
		if !sameEntries(res.Entries, want) {
			c.t.Fatalf("%s: %d entries, the oracle %d (or they differ)", d.Defn.Name, len(res.Entries), len(want))
		}
	}
}

// waitPersisted waits until a round of persistent snapshots covers what
// KV holds now.
func (c *cluster) waitPersisted(ctx context.Context) {
	c.t.Helper()
	if err := c.ix.WaitCaughtUp(ctx, 20*time.Second); err != nil {
		c.t.Fatal(err)
	}
	want := c.ix.SnapshotTS()
	if _, err := c.ix.WaitPersisted(ctx, 20*time.Second, node.PersistCond{Covers: want}); err != nil {
		c.t.Fatal(err)
	}
}

func sameEntries(got, want []defn.Entry) bool {
	key := func(e defn.Entry) string { return fmt.Sprintf("%s\x00%v", e.DocID, e.Key) }
	g, w := make([]string, len(got)), make([]string, len(want))
	for i := range got {
		g[i] = key(got[i])
	}
	for i := range want {
		w[i] = key(want[i])
	}
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func TestStartCatchUpVerify(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		ctx := context.Background()
		c := newCluster(t, transport, seed(t), byCity, primary)
		c.kv.Load()
		if err := c.ix.Start(ctx); err != nil {
			t.Fatal(err)
		}
		c.mutate(500)
		c.verify(ctx)
		if got := c.ix.From(); got.Sum() != 0 {
			t.Errorf("streams started from %v, want seqno 0", got)
		}
	})
}

// TestResumeAfterFailover: KV fails some vbuckets over below what the index
// holds; the next resume is answered with Rollback, the slices go back to
// recovery points and the index catches up on the new branch.
func TestResumeAfterFailover(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		ctx := context.Background()
		s := seed(t)
		rng := rand.New(rand.NewPCG(s, 1))
		c := newCluster(t, transport, s, byCity, primary)
		c.kv.Load()
		if err := c.ix.Start(ctx); err != nil {
			t.Fatal(err)
		}
		c.mutate(300)
		c.waitPersisted(ctx)
		c.mutate(300)
		if err := c.ix.WaitCaughtUp(ctx, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := c.ix.Stop(); err != nil {
			t.Fatal(err)
		}
		from := c.ix.HWT()
		for vb := range upr.Vbno(8) {
			if rng.IntN(2) == 0 {
				continue
			}
			high := c.kv.HighSeqno(vb)
			if err := c.kv.Failover(vb, upr.Seqno(rng.Uint64N(uint64(high)+1))); err != nil {
				t.Fatal(err)
			}
		}
		c.mutate(200)
		rollbacks, err := c.ix.Resume(ctx, from)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("rollbacks: %d, restarted from %v", rollbacks, c.ix.From())
		c.verify(ctx)
	})
}

// TestRestart: a clean restart reopens the slices, restores them and
// resumes from the oldest; nothing is lost or doubled. (The memory engine
// keeps nothing across a reopen, so this runs on a disk engine.)
func TestRestart(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		ctx := context.Background()
		c := newClusterOn(t, transport, "bbolt", seed(t), byCity, primary)
		c.kv.Load()
		if err := c.ix.Start(ctx); err != nil {
			t.Fatal(err)
		}
		c.mutate(300)
		c.waitPersisted(ctx)
		c.mutate(300)
		_, from, err := c.ix.Restart(ctx, c.insts)
		if err != nil {
			t.Fatal(err)
		}
		if from.Sum() == 0 {
			t.Errorf("restarted from seqno 0: no recovery point was used")
		}
		c.mutate(100)
		c.verify(ctx)
	})
}

// TestBuildWhileIngesting builds a new index from an INIT topic while MAINT
// keeps applying mutations, merges it and checks every index.
func TestBuildWhileIngesting(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		ctx := context.Background()
		c := newCluster(t, transport, seed(t), byCity)
		c.kv.Load()
		if err := c.ix.Start(ctx); err != nil {
			t.Fatal(err)
		}
		c.mutate(200)
		buildTS := c.kv.CurrentSeqnos()
		b, err := c.ix.StartBuild(ctx, []indexer.InstanceDefn{byAge})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		c.mutate(200) // MAINT goes on meanwhile
		if err := b.WaitFor(ctx, buildTS, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		c.mutate(100)
		if err := b.Merge(ctx, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		c.insts = append(c.insts, byAge)
		if got := len(c.ix.Instances()); got != 2 {
			t.Fatalf("MAINT feeds %d instances after the merge, want 2", got)
		}
		c.mutate(100)
		c.verify(ctx)
	})
}

// TestDrop drops an index while the streams run.
func TestDrop(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		ctx := context.Background()
		c := newCluster(t, transport, seed(t), byCity, primary)
		c.kv.Load()
		if err := c.ix.Start(ctx); err != nil {
			t.Fatal(err)
		}
		c.mutate(100)
		if err := c.ix.Drop(byCity.ID); err != nil {
			t.Fatal(err)
		}
		c.insts = []indexer.InstanceDefn{primary}
		c.mutate(100)
		c.verify(ctx)
		if _, err := c.ix.Scan(ctx, indexer.ScanRequest{InstID: byCity.ID, Kind: indexer.ScanCount}); !errors.Is(err, indexer.ErrNoSuchIndex) {
			t.Errorf("scan of the dropped index: %v, want ErrNoSuchIndex", err)
		}
	})
}

// TestReconnectAfterKVRestart: the KV node stops (its topics end, its
// admin connections drop) and comes back on the same address with its
// bucket. The index node sees its topic end as a failure, not as a quiet
// stop; resuming from its high-watermark redials KV and opens a new
// dataport session at the right seqnos: nothing is lost or doubled.
func TestReconnectAfterKVRestart(t *testing.T) {
	ctx := context.Background()
	s := seed(t)
	spec := workload.DefaultSpec()
	spec.Seed, spec.Docs, spec.Vbuckets = s, 400, 8
	kv, err := kvnode.New(spec, kvnode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	served := make(chan error, 1)
	go func() { served <- kvnode.Serve(l, kv, nil) }()
	client, err := kvnode.Dial(ctx, addr, kvnode.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	eng, _ := engines.Lookup("memory")
	ix, err := node.Open(node.Config{KV: client, Indexer: indexer.Config{
		Engine: eng, Dir: t.TempDir(), NumVbuckets: spec.Vbuckets, Clock: kv.Now, SnapshotInterval: 10 * time.Millisecond,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if err := ix.CreateInstance(byCity); err != nil {
		t.Fatal(err)
	}
	kv.Load()
	if err := ix.Start(ctx); err != nil {
		t.Fatal(err)
	}
	kv.ApplyNext(300)
	if err := ix.WaitCaughtUp(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}

	// KV stops.
	l.Close()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	far := kv.CurrentSeqnos()
	far.Seqnos[0]++
	if err := ix.WaitCovered(ctx, far, 20*time.Second); err == nil || ix.Failure() == nil {
		t.Fatalf("after KV stopped: wait ended with %v, failure %v; want the topic's end reported", err, ix.Failure())
	}

	// KV comes back on the same address, with its bucket and more mutations.
	if l, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("listen again on %s: %v", addr, err)
	}
	go func() { served <- kvnode.Serve(l, kv, nil) }()
	defer func() {
		l.Close()
		<-served
	}()
	kv.ApplyNext(300)
	if err := ix.Stop(); err == nil {
		t.Error("Stop did not report the failure")
	}
	if _, err := ix.Resume(ctx, ix.HWT()); err != nil {
		t.Fatal(err)
	}
	kv.ApplyNext(100)
	c := &cluster{t: t, kv: kv, ix: ix, oracle: workload.NewOracle(kv.Bucket()), insts: []indexer.InstanceDefn{byCity}}
	c.verify(ctx)
}

// failingKV is a KV whose topics fail after delivering nothing.
type failingKV struct {
	*kvnode.Node
	err error
}

func (k failingKV) OpenTopic(ctx context.Context, req projector.TopicRequest) (projector.Topic, error) {
	return failingTopic{k.err}, nil
}

type failingTopic struct{ err error }

func (f failingTopic) Recv(ctx context.Context) (*projector.Batch, error) { return nil, f.err }
func (f failingTopic) DropInstance(uint64) error                          { return nil }
func (f failingTopic) Close() error                                       { return nil }

// TestTopicFailureEndsWaits: a failure on the KV side ends a wait for a
// vector at once, with that failure, instead of the wait's timeout.
func TestTopicFailureEndsWaits(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, "inproc", seed(t), byCity)
	c.kv.Load()
	boom := errors.New("dataport: connection reset")
	c.ix.Close()
	cfg := c.cfg
	cfg.KV = failingKV{c.kv, boom}
	ix, err := node.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if err := ix.CreateInstance(byCity); err != nil {
		t.Fatal(err)
	}
	if err := ix.Start(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = ix.WaitCaughtUp(ctx, time.Hour)
	if !errors.Is(err, boom) {
		t.Fatalf("wait ended with %v, want the topic's failure", err)
	}
	if time.Since(start) > time.Minute {
		t.Errorf("the failure ended the wait only after %s", time.Since(start))
	}
}

// TestDeps pins the layering: the index node reaches KV only through its
// KV interface, so neither it nor the indexer imports the KV node, the
// bucket simulator, the coordinator or the harness.
func TestDeps(t *testing.T) {
	const mod = "github.com/idxbench/idxbench/"
	for _, pkg := range []string{mod + "indexer/node", mod + "indexer", mod + "projector"} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Skipf("go list: %v", err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, banned := range []string{"projector/kvnode", "workload", "coordinator", "harness", "results"} {
				if dep == mod+banned {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

// TestFencedDriver: once a new driver has fenced the KV node, a control
// from the old one (a killed process whose request arrives late) is refused,
// so the history the new driver replays is the bucket's.
func TestFencedDriver(t *testing.T) {
	ctx := context.Background()
	spec := workload.DefaultSpec()
	spec.Docs, spec.Vbuckets = 10, 4
	kv, err := kvnode.New(spec, kvnode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- kvnode.Serve(l, kv, nil) }()
	defer func() {
		l.Close()
		<-done
	}()
	dial := func() *kvnode.Client {
		c, err := kvnode.Dial(ctx, l.Addr().String(), kvnode.ClientOptions{NoDataport: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	old, next := dial(), dial()
	if _, err := old.Fence(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := old.Apply(ctx, 5); err != nil {
		t.Fatal(err)
	}
	h, err := next.Fence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Apply(ctx, 5); err == nil || !strings.Contains(err.Error(), "fenced") {
		t.Fatalf("a control from a fenced-off driver: %v, want refused", err)
	}
	replica, _ := kvnode.New(spec, kvnode.Options{})
	if err := kvnode.Replay(replica, h); err != nil {
		t.Fatal(err)
	}
	if !replica.CurrentSeqnos().Equal(kv.CurrentSeqnos()) {
		t.Fatalf("replica %v, bucket %v", replica.CurrentSeqnos(), kv.CurrentSeqnos())
	}
	if err := next.Apply(ctx, 5); err != nil {
		t.Fatalf("the new driver: %v", err)
	}
}
