package harness

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"path/filepath"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idxbench/idxbench/coordinator"
	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/harness/measure"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/indexer/node"
	"github.com/idxbench/idxbench/projector/kvnode"
	"github.com/idxbench/idxbench/workload"
	"github.com/idxbench/idxbench/workload/upr"
)

// pipeline is one cell's nodes, composed: a KV node (the bucket, its
// generator and the projectors), an index node on the cell's engine, the
// coordinator's metadata, and the oracle the harness verifies against.
// Phases drive the nodes through their APIs; the protocols between them
// live with the nodes.
type pipeline struct {
	spec workload.Spec
	// kv is the KV node in process; in a procs topology, the replica of
	// the remote KV node's bucket that the oracle reads.
	kv *kvnode.Node
	// remote is the KV node's admin client in a procs topology.
	remote *kvnode.Client
	// procs are the node processes, guarded by procsMu: a fault phase
	// replaces one while the ticker reads them (processes).
	procsMu sync.Mutex
	procs   []*nodeProc
	// ctl reaches the harness's own services on the index node's control
	// endpoint (its timings, its raw replay) in a procs topology.
	ctl    *rpc.Client
	oracle *workload.Oracle
	coord  coordinator.Metadata
	// etcd holds the metadata and the node registry in a procs topology.
	etcd       *clientv3.Client
	etcdPrefix string
	ix         node.API
	// cluster is ix when the topology has several index nodes (nil with
	// one): the index client that places replicas and routes scans.
	cluster *node.Cluster
	// members are the index node processes of a procs topology, by name.
	members []*indexMember
	// coordJob starts a coordinator process (st_mode coordinator);
	// etcdJob started the embedded etcd member's.
	coordJob, etcdJob NodeJob
	// insts are the ACTIVE instances, in creation order.
	insts []coordinator.Instance
	cfg   pipelineConfig
}

// pipelineConfig is what a pipeline is built from.
type pipelineConfig struct {
	spec     workload.Spec
	engine   engines.Engine
	opts     engines.Options
	dir      string
	settings IndexerSettings
	recorder indexer.Recorder
	// procs, when set, runs the nodes as processes of their own.
	procs *procsConfig
	// indexNodes is how many index nodes the topology has (0 or 1: one,
	// unnamed).
	indexNodes int
	// kvAddr, when set, is a KV node in another process that the index
	// node in this process streams from (the crash test's procs mode);
	// the pipeline's bucket is then a replica of it.
	kvAddr string
}

// newPipeline builds a cell's nodes over an empty directory and creates the
// spec's indexes (deferred ones stay CREATED for a build phase).
func newPipeline(ctx context.Context, cfg pipelineConfig) (*pipeline, error) {
	p, err := openNodes(ctx, cfg)
	if err != nil {
		return nil, err
	}
	for _, d := range p.spec.Indexes {
		inst, err := p.coord.Create(d)
		if err != nil {
			p.ix.Close()
			return nil, err
		}
		if inst.State == coordinator.Created {
			continue
		}
		if err := p.addInstance(inst); err != nil {
			p.ix.Close()
			return nil, err
		}
	}
	return p, nil
}

// openNodes opens the KV node (an empty bucket), the coordinator's metadata
// and the index node over cfg.dir (empty, or the slices of an earlier run),
// in this process or, with cfg.procs, as processes of their own.
func openNodes(ctx context.Context, cfg pipelineConfig) (*pipeline, error) {
	if cfg.procs != nil {
		return openProcs(ctx, cfg)
	}
	p, err := openLocalNodes(cfg)
	if err != nil {
		return nil, err
	}
	if names := indexNodeNames(cfg.indexNodes); names != nil {
		return p, p.openLocalCluster(names)
	}
	ixCfg := indexerConfig(cfg.settings, cfg.engine, cfg.opts, filepath.Join(cfg.dir, "slices"), p.spec.Vbuckets)
	ixCfg.Clock, ixCfg.Recorder = p.kv.Now, cfg.recorder
	var kv node.KV = p.kv
	if cfg.kvAddr != "" {
		if p.remote, err = kvnode.Dial(ctx, cfg.kvAddr, kvnode.ClientOptions{}); err != nil {
			return nil, err
		}
		// The bucket here is a replica: fence off the driver before this
		// one (a killed child whose last control may still arrive) and
		// bring the replica to the KV node's state.
		h, err := p.remote.Fence(ctx)
		if err == nil {
			err = kvnode.Replay(p.kv, h)
		}
		if err != nil {
			p.remote.Close()
			return nil, err
		}
		kv, ixCfg.Clock = p.remote, wallClock
	}
	if p.ix, err = node.Open(node.Config{Indexer: ixCfg, KV: kv, Promote: promote}); err != nil {
		if p.remote != nil {
			p.remote.Close()
		}
		return nil, err
	}
	return p, nil
}

// indexNodeNames names a topology's index nodes as the partition map
// knows them: none for a single node.
func indexNodeNames(n int) []string {
	if n <= 1 {
		return nil
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("index-%d", i)
	}
	return names
}

// openLocalCluster opens several index nodes in this process, each over a
// directory of its own, behind one cluster client.
func (p *pipeline) openLocalCluster(names []string) error {
	cfg := p.cfg
	p.coord.(*coordinator.Coordinator).SetIndexNodes(names)
	var members []node.API
	for _, name := range names {
		ixCfg := indexerConfig(cfg.settings, cfg.engine, cfg.opts, filepath.Join(cfg.dir, name, "slices"), p.spec.Vbuckets)
		ixCfg.Clock, ixCfg.Recorder = p.kv.Now, cfg.recorder
		n, err := node.Open(node.Config{Indexer: ixCfg, KV: p.kv, Promote: promote})
		if err != nil {
			for _, m := range members {
				m.Close()
			}
			return fmt.Errorf("index node %s: %w", name, err)
		}
		members = append(members, n)
	}
	p.cluster = node.NewCluster(names, members)
	p.ix = p.cluster
	return nil
}

// openLocalNodes opens the in-process parts: the KV node (or the replica
// of a remote one), the oracle and the file coordinator's metadata (a
// procs topology keeps it in etcd instead).
func openLocalNodes(cfg pipelineConfig) (*pipeline, error) {
	var opts kvnode.Options
	if cfg.procs != nil || cfg.kvAddr != "" {
		opts.Bucket.Clock = wallClock // as the KV node's
	}
	kv, err := kvnode.New(cfg.spec, opts)
	if err != nil {
		return nil, err
	}
	p := &pipeline{spec: kv.Spec(), kv: kv, cfg: cfg}
	p.oracle = workload.NewOracle(kv.Bucket())
	if cfg.procs == nil {
		if p.coord, err = coordinator.Open(cfg.dir); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// promote runs coordinator-mode stability-timestamp promotion for one
// indexer.
func promote(ctx context.Context, ix *indexer.Indexer) error {
	cfg := ix.Config()
	return coordinator.RunPromotion(ctx, cfg.SnapshotInterval, cfg.NumVbuckets, []coordinator.Node{ix})
}

// place tells the cluster client, if any, where the partition map put
// inst's replicas.
func (p *pipeline) place(inst coordinator.Instance) error {
	if p.cluster == nil {
		return nil
	}
	return p.cluster.Place(inst.ID, inst.Nodes)
}

// replica is one copy of an index: the node holding it ("" with one
// index node) and that node's API.
type replica struct {
	node string
	ix   node.API
}

// replicas lists the copies of instance id: with several index nodes,
// one per node holding a replica; else the index node's one.
func (p *pipeline) replicas(id uint64) []replica {
	if p.cluster == nil {
		return []replica{{ix: p.ix}}
	}
	var out []replica
	for _, name := range p.cluster.Replicas(id) {
		out = append(out, replica{node: name, ix: p.cluster.Member(name)})
	}
	return out
}

// addInstance makes an instance live on the index nodes holding it and
// marks it ACTIVE.
func (p *pipeline) addInstance(inst coordinator.Instance) error {
	if err := p.place(inst); err != nil {
		return err
	}
	if err := p.ix.CreateInstance(indexer.InstanceDefn{ID: inst.ID, Defn: inst.Defn}); err != nil {
		return err
	}
	if err := p.coord.SetState(inst.Defn.Name, coordinator.Active); err != nil {
		return err
	}
	inst.State = coordinator.Active
	p.insts = append(p.insts, inst)
	return nil
}

// activeDefns are the coordinator's ACTIVE instances, for an index node
// that reopens its slices.
func activeDefns(coord coordinator.Metadata) (insts []coordinator.Instance, defns []indexer.InstanceDefn, err error) {
	all, err := coord.Instances()
	if err != nil {
		return nil, nil, err
	}
	for _, inst := range all {
		if inst.State == coordinator.Active {
			insts = append(insts, inst)
			defns = append(defns, indexer.InstanceDefn{ID: inst.ID, Defn: inst.Defn})
		}
	}
	return insts, defns, nil
}

// restart is a clean restart of the index node: the coordinator's metadata
// is read again and the node reopens the ACTIVE instances' slices, restores
// them and resumes. It returns when the streams run again, with the time
// the reopen took and the vector the streams restarted from.
func (p *pipeline) restart(ctx context.Context) (open time.Duration, from *upr.TsVbuuid, err error) {
	return p.restartWith(ctx, nil)
}

// restartWith is restart with the index node's own restart replaced by
// change (nil: a plain Restart), which reopens the instances it is given.
func (p *pipeline) restartWith(ctx context.Context, change func(context.Context, []indexer.InstanceDefn) (time.Duration, *upr.TsVbuuid, error)) (open time.Duration, from *upr.TsVbuuid, err error) {
	start := time.Now()
	if _, ok := p.coord.(*coordinator.Coordinator); ok {
		// The file coordinator is read again, as a restarted process would.
		if p.coord, err = coordinator.Open(p.cfg.dir); err != nil {
			return 0, nil, err
		}
	}
	insts, defns, err := activeDefns(p.coord)
	if err != nil {
		return 0, nil, err
	}
	read := time.Since(start)
	if change == nil {
		open, from, err = p.ix.Restart(ctx, defns)
	} else {
		open, from, err = change(ctx, defns)
	}
	p.insts = insts
	return read + open, from, err
}

// dropIndex drops an index while the streams run: the coordinator marks it
// DELETED (refused during recovery), then the index node stops its stream
// and destroys its slices.
func (p *pipeline) dropIndex(name string) (ddl time.Duration, err error) {
	start := time.Now()
	inst, err := p.coord.Drop(name)
	ddl = time.Since(start)
	if err != nil {
		return ddl, err
	}
	for i := range p.insts {
		if p.insts[i].ID == inst.ID {
			p.insts = append(p.insts[:i], p.insts[i+1:]...)
			break
		}
	}
	return ddl, p.ix.Drop(inst.ID)
}

// sliceDirs are the directories an index's slices live in, one per index
// node.
func (p *pipeline) sliceDirs(index string) []string {
	names := indexNodeNames(p.cfg.indexNodes)
	if names == nil {
		return []string{filepath.Join(p.cfg.dir, "slices", index)}
	}
	var dirs []string
	for _, n := range names {
		dirs = append(dirs, filepath.Join(p.cfg.dir, n, "slices", index))
	}
	return dirs
}

// waitCaughtUp waits until a snapshot covers everything the bucket holds now.
func (p *pipeline) waitCaughtUp(ctx context.Context, timeout time.Duration) error {
	return p.ix.WaitCaughtUp(ctx, timeout)
}

// replicaWait bounds how long the oracle waits for the cell's replica of
// the bucket to reach a vector the index node reported.
const replicaWait = time.Minute

// waitReplica waits until the bucket the oracle reads holds every mutation
// up to ts. In process it is the KV node's own bucket; in a procs topology
// the replica applies each chunk after the KV node has, so a snapshot may
// briefly be ahead of it.
func (p *pipeline) waitReplica(ctx context.Context, ts *upr.TsVbuuid) error {
	ctx, cancel := context.WithTimeout(ctx, replicaWait)
	defer cancel()
	if err := p.kv.Bucket().WaitSeqnos(ctx, ts); err != nil {
		return fmt.Errorf("the oracle's bucket did not reach the scan's snapshot within %s: %w", replicaWait, err)
	}
	return nil
}

// load inserts the spec's documents into the bucket and returns how many.
func (p *pipeline) load() (int, error) {
	if p.remote != nil {
		if _, err := p.remote.Load(context.Background()); err != nil {
			return 0, p.nodeError(err)
		}
	}
	return p.kv.Load(), nil
}

// apply applies the generator's next n operations to the bucket.
func (p *pipeline) apply(n int) error {
	if p.remote != nil {
		if err := p.remote.Apply(context.Background(), n); err != nil {
			return p.nodeError(err)
		}
	}
	p.kv.ApplyNext(n)
	return nil
}

// failover fails vb over at branch.
func (p *pipeline) failover(vb upr.Vbno, branch upr.Seqno) error {
	if p.remote != nil {
		if err := p.remote.Failover(context.Background(), vb, branch); err != nil {
			return p.nodeError(err)
		}
	}
	return p.kv.Failover(vb, branch)
}

// nodeError is err, or the death of a node process when one died (which
// is then the cause). A failed call may be the first sign of a death the
// process's reaper has not seen yet, so with err set it waits a moment for
// one.
func (p *pipeline) nodeError(err error) error {
	var grace <-chan time.Time
	procs := p.processes()
	if err != nil && len(procs) > 0 {
		grace = time.After(500 * time.Millisecond)
	}
	for {
		for _, np := range procs {
			if derr := np.died(); derr != nil {
				return derr
			}
		}
		if grace == nil {
			return err
		}
		select {
		case <-grace:
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// processes returns the node processes running now.
func (p *pipeline) processes() []*nodeProc {
	p.procsMu.Lock()
	defer p.procsMu.Unlock()
	return slices.Clone(p.procs)
}

// editProcs changes the list of node processes (and the members' fields)
// under its lock.
func (p *pipeline) editProcs(f func()) {
	p.procsMu.Lock()
	defer p.procsMu.Unlock()
	f()
}

// nodeCounters reads each node process's counters (none in process), by
// pid; with resetPeak, it starts a new resident high-water mark for each
// first.
func (p *pipeline) nodeCounters(resetPeak bool) map[int]measure.ProcCounters {
	procs := p.processes()
	out := make(map[int]measure.ProcCounters, len(procs))
	for _, np := range procs {
		if resetPeak {
			measure.ResetProcPeak(np.pid)
		}
		out[np.pid], _ = measure.ReadProc(np.pid)
	}
	return out
}

// roleCost is what a role's node processes cost between two readings.
type roleCost struct {
	cpu     time.Duration
	written float64
	peakRSS float64 // the largest process's
}

// nodeCosts sums, per role, what the node processes running now cost
// since before: a process started in between (a node restarted by a
// fault) counts from its start; one that ended counts no more.
func (p *pipeline) nodeCosts(before, after map[int]measure.ProcCounters) map[string]roleCost {
	out := map[string]roleCost{}
	for _, np := range p.processes() {
		a, ok := after[np.pid]
		if !ok {
			continue
		}
		b := before[np.pid]
		rc := out[np.role]
		rc.cpu += a.CPU - b.CPU
		rc.written += max(float64(a.BytesWritten)-float64(b.BytesWritten), 0)
		rc.peakRSS = max(rc.peakRSS, float64(a.PeakRSSBytes))
		out[np.role] = rc
	}
	return out
}

// close stops the streams and closes the index node's stores; in a procs
// topology the node processes then exit.
func (p *pipeline) close() error {
	var errs []error
	if p.ix != nil {
		if p.cfg.procs != nil && p.cfg.procs.attach != "" {
			// An attached cluster's nodes are not the cell's: they
			// keep running, with what the cell left in them.
			for _, m := range p.members {
				errs = append(errs, m.api.CloseConn())
			}
		} else {
			errs = append(errs, p.nodeError(p.ix.Close()))
		}
	}
	if p.remote != nil {
		errs = append(errs, p.remote.Close())
	}
	for _, m := range p.members {
		if m.ctl != nil {
			m.ctl.Close()
		}
	}
	if p.etcd != nil {
		if len(p.cfg.procs.etcd) > 0 && p.cfg.procs.attach == "" {
			// An external cluster keeps nothing of this cell. (An
			// attached cluster's prefix holds its nodes' registrations:
			// not the cell's to delete.)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := p.etcd.Delete(ctx, p.etcdPrefix+"/", clientv3.WithPrefix())
			cancel()
			errs = append(errs, err)
		}
		p.etcd.Close()
	}
	procs := p.processes()
	for i := len(procs) - 1; i >= 0; i-- {
		errs = append(errs, procs[i].stop(time.Minute))
	}
	return errors.Join(errs...)
}

// failure is the first error of a node's goroutines (or the death of a
// node process), if any.
func (p *pipeline) failure() error {
	if err := p.ix.Failure(); err != nil {
		return p.nodeError(err)
	}
	return p.nodeError(nil)
}
