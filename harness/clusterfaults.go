package harness

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/idxbench/idxbench/coordinator"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/results"
	"github.com/idxbench/idxbench/workload/defn"
)

// PhaseFault runs scan clients under an open-loop ingest, as a scan phase
// with under_ingest, and injects a fault into the cluster a quarter of the
// way in: the phase's metrics say what the clients and the ingest saw, and
// what the cluster took to notice and heal; the phase then verifies every
// replica against the oracle.
const PhaseFault = "fault"

// Faults a fault phase injects (procs topology: they act on processes).
const (
	// FaultKillIndexNode kills -9 an index node holding replicas, waits
	// `down`, starts it again over its directory; it recovers its
	// persistent snapshots and catches up before it serves again.
	FaultKillIndexNode = "kill-index-node"
	// FaultPauseIndexNode stops an index node (SIGSTOP) for `down` (by
	// default longer than its registry lease: a partition as etcd sees
	// it), then continues it (SIGCONT).
	FaultPauseIndexNode = "pause-index-node"
	// FaultKillMaster kills -9 the master coordinator (st_mode
	// coordinator): a standby takes over and promotes stability
	// timestamps again; a new standby is started.
	FaultKillMaster = "kill-master"
	// FaultRestartEtcd kills -9 the embedded etcd member, tries a DDL
	// while it is down (it must be refused, naming the cause), and starts
	// the member again over its directory at its old addresses after
	// `down`; nodes whose leases lapsed enter the registry again.
	FaultRestartEtcd = "restart-etcd"
)

var faultNames = []string{FaultKillIndexNode, FaultPauseIndexNode, FaultKillMaster, FaultRestartEtcd}

// registryLease is the lease, in seconds, nodes register with.
const registryLease = 2

func init() {
	registerPhase(PhaseFault, phaseKind{
		settings: []string{"fault", "down", "duration", "rate", "kind", "consistency", "clients", "limit", "index", "scan_rate"},
		verifies: true,
		timed:    true,
		validate: func(p *Phase, at string) error {
			if !slices.Contains(faultNames, p.Fault) {
				return fmt.Errorf("%s.fault: %q is not one of %s", at, p.Fault, strings.Join(faultNames, ", "))
			}
			return validateScan(p, at)
		},
		refs: faultRefs,
		run:  (*cellRun).fault,
	})
}

// faultRefs refuses, before the run, a fault the topology cannot take.
func faultRefs(p *Phase, at string, st *indexRefs) error {
	if st.topology != TopologyProcs {
		return fmt.Errorf("%s: fault %s acts on node processes; run it with --topology procs", at, p.Fault)
	}
	if err := scanRefs(p, at, st); err != nil {
		return err
	}
	switch p.Fault {
	case FaultKillIndexNode, FaultPauseIndexNode:
		if st.indexNodes < 2 {
			return fmt.Errorf("%s: fault %s needs an index with replicas on two index nodes or more; this topology has %d", at, p.Fault, st.indexNodes)
		}
		for name := range st.live {
			if st.replicas[name] < 1 {
				return fmt.Errorf("%s: fault %s leaves index %q without a copy: it has no replica", at, p.Fault, name)
			}
		}
	case FaultRestartEtcd:
		// An external cluster is not the harness's to kill; the run
		// refuses it once it knows (restartEtcd).
	case FaultKillMaster:
		if st.stMode != indexer.ModeCoordinator {
			return fmt.Errorf("%s: fault %s needs indexer.st_mode coordinator (the master promotes stability timestamps)", at, p.Fault)
		}
	}
	return nil
}

// fault runs the phase: the scan clients and the ingest of a scan phase,
// with the fault injected a quarter of the way in (at most 2s); the phase
// waits for the fault to heal before it ends.
func (c *cellRun) fault(ctx context.Context, ph Phase, out *results.Phase) error {
	if len(c.p.processes()) == 0 {
		return fmt.Errorf("fault %s acts on the cell's own node processes; run it with --topology procs (not on an attached cluster)", ph.Fault)
	}
	scan := ph
	scan.UnderIngest = true
	if scan.Rate == 0 {
		scan.Rate = 1000
	}
	var failovers0 int64
	if c.p.cluster != nil {
		failovers0 = c.p.cluster.Failovers()
	}
	fm := map[string]float64{}
	ferr := make(chan error, 1)
	go func() {
		select {
		case <-time.After(min(ph.Duration.D()/4, 2*time.Second)):
		case <-ctx.Done():
			ferr <- ctx.Err()
			return
		}
		ferr <- c.inject(ctx, ph, fm)
	}()
	spread := c.sampleReplicaSpread(ctx)
	err := c.scan(ctx, scan, out)
	if ierr := <-ferr; err == nil {
		err = ierr
	}
	for k, v := range spread() {
		fm[k] = v
	}
	for k, v := range fm {
		out.Metrics[k] = v
	}
	if c.p.cluster != nil {
		out.Metrics["scan_failovers"] = float64(c.p.cluster.Failovers() - failovers0)
	}
	return err
}

// replicaSample is how often a fault phase samples the replicas' spread.
const replicaSample = 100 * time.Millisecond

// sampleReplicaSpread samples, until the returned function is called, how
// many mutations the slowest replica in service is behind the fastest
// (Cluster.ReplicaSpread), and the function returns their p50, p99 and
// max as replica_lag_mutations_*: the replica lag as a count of
// mutations, sampled every replicaSample.
func (c *cellRun) sampleReplicaSpread(ctx context.Context) func() map[string]float64 {
	if c.p.cluster == nil {
		return func() map[string]float64 { return nil }
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan []float64, 1)
	go func() {
		var samples []float64
		t := time.NewTicker(replicaSample)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				done <- samples
				return
			case <-t.C:
				samples = append(samples, float64(c.p.cluster.ReplicaSpread()))
			}
		}
	}()
	return func() map[string]float64 {
		cancel()
		s := <-done
		if len(s) == 0 {
			return nil
		}
		slices.Sort(s)
		q := func(f float64) float64 { return s[min(len(s)-1, int(f*float64(len(s))))] }
		return map[string]float64{
			"replica_lag_mutations_p50": q(0.5),
			"replica_lag_mutations_p99": q(0.99),
			"replica_lag_mutations_max": s[len(s)-1],
		}
	}
}

// inject runs ph's fault and heals it, recording what it measured in m.
func (c *cellRun) inject(ctx context.Context, ph Phase, m map[string]float64) error {
	down := ph.Down.D()
	switch ph.Fault {
	case FaultKillIndexNode:
		return c.killIndexNode(ctx, cmp.Or(down, time.Second), m)
	case FaultPauseIndexNode:
		return c.pauseIndexNode(ctx, cmp.Or(down, registryLease*time.Second+time.Second), m)
	case FaultKillMaster:
		return c.killMaster(ctx, m)
	case FaultRestartEtcd:
		return c.restartEtcd(ctx, cmp.Or(down, registryLease*time.Second+time.Second), m)
	}
	return fmt.Errorf("fault %q is not runnable", ph.Fault)
}

// victim is the index node a fault acts on: the last one.
func (c *cellRun) victim() *indexMember { return c.p.members[len(c.p.members)-1] }

// watchNode returns a channel that yields when the registry reports the
// node name (of role) joining (joined) or leaving, or closes without a
// value when ctx ends first or there is no registry.
func (c *cellRun) watchNode(ctx context.Context, role, name string, joined bool) <-chan time.Time {
	out := make(chan time.Time, 1)
	if c.p.etcd == nil {
		close(out)
		return out
	}
	events := coordinator.WatchTopology(ctx, c.p.etcd, c.p.etcdPrefix)
	go func() {
		defer close(out)
		for ev := range events {
			if ev.Node.Role == role && ev.Node.Name == name && ev.Joined == joined {
				out <- time.Now()
				return
			}
		}
	}()
	return out
}

// killIndexNode kills the victim, waits down, starts it again over its
// directory and puts it back in service once it has caught up.
func (c *cellRun) killIndexNode(ctx context.Context, down time.Duration, m map[string]float64) error {
	v := c.victim()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	left := c.watchNode(wctx, RoleIndex, v.name, false)
	killed := time.Now()
	v.proc.crash()
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := c.rejoin(ctx, v, m); err != nil {
		return err
	}
	m["index_node_down_ms"] = ms(time.Since(killed))
	select {
	case at, ok := <-left:
		if ok {
			m["registry_leave_ms"] = ms(at.Sub(killed))
		}
	case <-time.After(registryLease * 3 * time.Second):
	}
	return nil
}

// rejoin starts member v's process again (its old one is dead), restarts
// the instances placed on it from its persistent snapshots, and puts it
// in service once it has caught up with KV.
func (c *cellRun) rejoin(ctx context.Context, v *indexMember, m map[string]float64) error {
	p := c.p
	p.cluster.SetDown(v.name, true)
	old := v.proc
	start := time.Now()
	if err := p.startMember(ctx, v); err != nil {
		return fmt.Errorf("restart index node %s: %w", v.name, err)
	}
	p.editProcs(func() { p.procs = slices.DeleteFunc(p.procs, func(np *nodeProc) bool { return np == old }) })
	if prev := p.cluster.Replace(v.name, v.api); prev != nil {
		prev.Close() // the dead node's client
	}
	var defns []indexer.InstanceDefn
	for _, inst := range p.insts {
		if slices.Contains(p.cluster.Replicas(inst.ID), v.name) {
			defns = append(defns, indexer.InstanceDefn{ID: inst.ID, Defn: inst.Defn})
		}
	}
	open, from, err := v.api.Restart(ctx, defns)
	if err != nil {
		return fmt.Errorf("restart index node %s: %w", v.name, err)
	}
	kv := p.kv.CurrentSeqnos()
	if err := v.api.WaitCaughtUp(ctx, catchUpTimeout); err != nil {
		return fmt.Errorf("index node %s catching up: %w", v.name, err)
	}
	p.cluster.SetDown(v.name, false)
	m["rejoin_open_ms"] = ms(open)
	m["rejoin_ms"] = ms(time.Since(start))
	if from != nil && kv.Sum() >= from.Sum() {
		m["rejoin_mutations_replayed"] = float64(kv.Sum() - from.Sum())
	}
	return nil
}

// pauseIndexNode stops the victim for down, then continues it: past its
// lease, the registry drops it and it enters again; scans meanwhile fail
// over to other replicas after the cluster client's replica timeout.
func (c *cellRun) pauseIndexNode(ctx context.Context, down time.Duration, m map[string]float64) error {
	v := c.victim()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	left := c.watchNode(wctx, RoleIndex, v.name, false)
	stopped := time.Now()
	if err := syscall.Kill(v.proc.pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("stop index node %s: %w", v.name, err)
	}
	cont := func() error { return syscall.Kill(v.proc.pid, syscall.SIGCONT) }
	select {
	case <-time.After(down):
	case <-ctx.Done():
		cont()
		return ctx.Err()
	}
	var back <-chan time.Time
	select {
	case at, ok := <-left:
		if ok {
			m["registry_leave_ms"] = ms(at.Sub(stopped))
			back = c.watchNode(wctx, RoleIndex, v.name, true)
		}
	default: // still registered: the pause was shorter than the lease
	}
	resumed := time.Now()
	if err := cont(); err != nil {
		return fmt.Errorf("continue index node %s: %w", v.name, err)
	}
	m["index_node_paused_ms"] = ms(resumed.Sub(stopped))
	if err := v.api.WaitCaughtUp(ctx, catchUpTimeout); err != nil {
		return fmt.Errorf("index node %s catching up after the pause: %w", v.name, err)
	}
	m["resume_catch_up_ms"] = ms(time.Since(resumed))
	c.p.cluster.SetDown(v.name, false) // if its failure probe took it out
	if back != nil {
		select {
		case at, ok := <-back:
			if ok {
				m["registry_rejoin_ms"] = ms(at.Sub(resumed))
			}
		case <-time.After(registryLease * 3 * time.Second):
			return fmt.Errorf("index node %s did not enter the registry again after its pause", v.name)
		}
	}
	return nil
}

// killMaster kills the master coordinator, times how long the cluster has
// no master and until stability timestamps advance again, and starts a
// new standby so two stand again.
func (c *cellRun) killMaster(ctx context.Context, m map[string]float64) error {
	p := c.p
	master, err := coordinator.Master(ctx, p.etcd, p.etcdPrefix)
	if err != nil {
		return err
	}
	procs := p.processes()
	idx := slices.IndexFunc(procs, func(np *nodeProc) bool {
		return np.role == RoleCoordinator && np.name == master
	})
	if idx < 0 {
		return fmt.Errorf("master %q is none of the coordinator processes", master)
	}
	victim := procs[idx]
	before := p.ix.SnapshotTS()
	killed := time.Now()
	victim.crash()
	p.editProcs(func() { p.procs = slices.DeleteFunc(p.procs, func(np *nodeProc) bool { return np == victim }) })
	// A DDL issued now waits for the next master, which executes it.
	type timed struct {
		took time.Duration
		err  error
	}
	ddl := make(chan timed, 1)
	go func() {
		t0 := time.Now()
		probe := defn.IndexDefn{Name: "ddl_during_failover", SecExprs: []string{"city"}, Deferred: true}
		_, err := p.coord.Create(probe)
		took := time.Since(t0)
		if err == nil {
			_, err = p.coord.Drop(probe.Name)
		}
		ddl <- timed{took, err}
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		now, err := coordinator.Master(ctx, p.etcd, p.etcdPrefix)
		if err == nil && now != master {
			m["no_master_ms"] = ms(time.Since(killed))
			break
		}
		if err != nil && !errors.Is(err, coordinator.ErrNoMaster) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no coordinator became master within a minute of killing %s", master)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Under ingest, stability timestamps advance again once the new
	// master promotes them.
	for {
		ts := p.ix.SnapshotTS()
		if ts != nil && before != nil && ts.Sum() > before.Sum() && !ts.SeqnosLE(before) {
			m["st_promotion_resumed_ms"] = ms(time.Since(killed))
			break
		}
		if time.Now().After(deadline) {
			return errors.New("no stability timestamp promoted within a minute of the master's death")
		}
		time.Sleep(5 * time.Millisecond)
	}
	d := <-ddl
	if d.err != nil {
		return fmt.Errorf("a DDL while the master was being replaced: %w", d.err)
	}
	m["ddl_during_failover_ms"] = ms(d.took)
	np, err := startNode(ctx, p.cfg.procs.exe, p.coordJob, victim.cpus, p.cfg.procs.stderr)
	if err != nil {
		return fmt.Errorf("start a new standby coordinator: %w", err)
	}
	p.editProcs(func() { p.procs = append(p.procs, np) })
	return nil
}

// restartEtcd kills the embedded etcd member, checks that a DDL meanwhile
// is refused with ErrMetadataUnavailable while the ingest goes on, and
// starts the member again at its old addresses after down.
func (c *cellRun) restartEtcd(ctx context.Context, down time.Duration, m map[string]float64) error {
	p := c.p
	procs := p.processes()
	idx := slices.IndexFunc(procs, func(np *nodeProc) bool { return np.role == RoleEtcd })
	if idx < 0 {
		return errors.New("fault restart-etcd: etcd is not the harness's own (--etcd names an external cluster)")
	}
	old := procs[idx]
	job := p.etcdJob
	job.Listen = strings.TrimPrefix(old.addrs["client"], "http://")
	job.Peer = strings.TrimPrefix(old.addrs["peer"], "http://")
	kv0 := p.kv.CurrentSeqnos().Sum()
	killed := time.Now()
	old.crash()

	t0 := time.Now()
	_, err := p.coord.Create(defn.IndexDefn{Name: "ddl_during_etcd_outage", SecExprs: []string{"city"}})
	m["ddl_refused_ms"] = ms(time.Since(t0))
	if err == nil {
		return errors.New("a DDL while etcd was down succeeded; want it refused")
	}
	if !errors.Is(err, coordinator.ErrMetadataUnavailable) {
		return fmt.Errorf("a DDL while etcd was down failed with %w; want ErrMetadataUnavailable", err)
	}
	fmt.Fprintf(c.stderr, "cell %s: DDL while etcd is down: %v\n", c.job.Engine, err)
	if wait := down - time.Since(killed); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m["mutations_during_etcd_outage"] = float64(p.kv.CurrentSeqnos().Sum() - kv0)
	np, err := startNode(ctx, p.cfg.procs.exe, job, old.cpus, p.cfg.procs.stderr)
	if err != nil {
		return fmt.Errorf("restart etcd: %w", err)
	}
	p.editProcs(func() {
		if i := slices.Index(p.procs, old); i >= 0 {
			p.procs[i] = np
		}
	})
	m["etcd_down_ms"] = ms(time.Since(killed))
	// Metadata answers again, and DDL goes through.
	back := time.Now()
	for {
		if _, err := p.coord.Instances(); err == nil {
			break
		}
		if time.Since(back) > time.Minute {
			return errors.New("metadata still unavailable a minute after etcd restarted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	m["metadata_back_ms"] = ms(time.Since(back))
	// Every index node whose lease lapsed enters the registry again.
	for {
		nodes, err := coordinator.Nodes(ctx, p.etcd, p.etcdPrefix)
		n := 0
		for _, nd := range nodes {
			if nd.Role == RoleIndex {
				n++
			}
		}
		if err == nil && n == len(p.members) {
			break
		}
		if time.Since(back) > time.Minute {
			return fmt.Errorf("%d of %d index nodes in the registry a minute after etcd restarted", n, len(p.members))
		}
		time.Sleep(10 * time.Millisecond)
	}
	m["registry_back_ms"] = ms(time.Since(back))
	return nil
}
