package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/workload/upr"
)

// Cluster is an index client's view of several index nodes: it sends each
// instance's DDL and build to the nodes the partition map placed its
// replicas on (Place), every stream control to every member, and each scan
// to one replica, failing over to the next when a replica is down or
// cannot answer at the scan's consistency in time. A replica that has not
// caught up never answers a request_plus or at_plus scan it cannot: the
// node itself waits until its snapshot covers the scan's vector, and a
// scan that times out there moves on to the next replica.
//
// Protocol calls that carry one node's vector (Resume, Recover, CheckHold)
// are refused with more than one member: each node runs its own recovery.
// The vectors a Cluster reports (HWT, SnapshotTS, ...) are what every
// member has reached: the minimum per vbucket over the members up.
type Cluster struct {
	mu      sync.Mutex
	members []API
	names   []string
	down    []bool
	place   map[uint64][]int // instance id → members holding a replica, the first replica first
	byName  map[string]uint64

	// suspect[i] is when member i may be tried first again after it
	// failed or was too slow to answer a scan.
	suspect []time.Time

	// ReplicaTimeout bounds one replica's attempt at a scan when another
	// replica is left to try (default 2s; the last gets what remains of
	// the scan's context): a node that hangs (stopped, partitioned) costs
	// a scan this much, not the scan.
	ReplicaTimeout time.Duration
	// SuspectFor is how long a replica that failed a scan is tried last
	// (default 1s).
	SuspectFor time.Duration

	// probing[i] is set while a Failure call to member i is in flight.
	probing []atomic.Bool

	next      atomic.Uint64 // round robin over replicas
	failovers atomic.Int64
}

var _ API = (*Cluster)(nil)

// NewCluster returns a cluster of members, named as the partition map
// names them.
func NewCluster(names []string, members []API) *Cluster {
	if len(names) != len(members) || len(members) == 0 {
		panic("node: a cluster needs one name per member, and a member")
	}
	return &Cluster{
		members: append([]API(nil), members...),
		names:   append([]string(nil), names...),
		down:    make([]bool, len(members)),
		suspect: make([]time.Time, len(members)),
		probing: make([]atomic.Bool, len(members)),
		place:   map[uint64][]int{},
		byName:  map[string]uint64{},
	}
}

// ErrPerNode refuses a protocol call that carries one node's vector on a
// cluster of several.
var ErrPerNode = errors.New("index cluster: the call carries one node's vector; run it on each member")

// Place records the nodes (by name) holding instance id's replicas, the
// partition map's answer for it.
func (c *Cluster) Place(id uint64, nodes []string) error {
	var idx []int
	for _, name := range nodes {
		i := c.index(name)
		if i < 0 {
			return fmt.Errorf("index cluster: instance %d is placed on %q, which is not a member", id, name)
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		idx = []int{0}
	}
	c.mu.Lock()
	c.place[id] = idx
	c.mu.Unlock()
	return nil
}

func (c *Cluster) index(name string) int {
	for i, n := range c.names {
		if n == name {
			return i
		}
	}
	return -1
}

// Member returns the member called name, or nil.
func (c *Cluster) Member(name string) API {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := c.index(name); i >= 0 {
		return c.members[i]
	}
	return nil
}

// Replicas returns the names of the nodes holding instance id's replicas.
func (c *Cluster) Replicas(id uint64) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, i := range c.place[id] {
		out = append(out, c.names[i])
	}
	return out
}

// SetDown takes the member called name out of service (a node known
// dead: no calls go to it, its failure is not the cluster's) or puts it
// back; Replace gives a rejoining node's new client.
func (c *Cluster) SetDown(name string, down bool) {
	c.mu.Lock()
	if i := c.index(name); i >= 0 {
		c.down[i] = down
	}
	c.mu.Unlock()
}

// Replace swaps the member called name for m (a restarted node's client)
// and returns the old one.
func (c *Cluster) Replace(name string, m API) API {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.index(name)
	if i < 0 {
		return nil
	}
	old := c.members[i]
	c.members[i] = m
	return old
}

// Failovers counts scans that moved to another replica.
func (c *Cluster) Failovers() int64 { return c.failovers.Load() }

// up returns the members in service, with their indexes.
func (c *Cluster) up() (idx []int, ms []API) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.members {
		if !c.down[i] {
			idx = append(idx, i)
			ms = append(ms, m)
		}
	}
	return idx, ms
}

// each runs f on every member in service, in parallel, and joins the
// errors, each naming its node.
func (c *Cluster) each(f func(m API) error) error {
	return c.eachAt(func(_ int, m API) error { return f(m) })
}

// eachAt is each, telling f the member's index.
func (c *Cluster) eachAt(f func(i int, m API) error) error {
	idx, ms := c.up()
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for k, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(idx[k], m); err != nil {
				errs[k] = fmt.Errorf("index node %s: %w", c.names[idx[k]], err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// holding returns the members in service holding instance id.
func (c *Cluster) holding(id uint64) (names []string, ms []API, err error) {
	idx, ms, err := c.holdingAt(id)
	for _, i := range idx {
		names = append(names, c.names[i])
	}
	return names, ms, err
}

func (c *Cluster) holdingAt(id uint64) (idx []int, ms []API, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	all, ok := c.place[id]
	if !ok {
		return nil, nil, fmt.Errorf("index cluster: instance %d has no placement", id)
	}
	for _, i := range all {
		if !c.down[i] {
			idx = append(idx, i)
			ms = append(ms, c.members[i])
		}
	}
	return idx, ms, nil
}

// split groups insts by the members in service holding them.
func (c *Cluster) split(insts []indexer.InstanceDefn) (map[int][]indexer.InstanceDefn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int][]indexer.InstanceDefn{}
	for _, d := range insts {
		idx, ok := c.place[d.ID]
		if !ok {
			return nil, fmt.Errorf("index cluster: instance %d (%s) has no placement", d.ID, d.Defn.Name)
		}
		for _, i := range idx {
			if !c.down[i] {
				out[i] = append(out[i], d)
			}
		}
	}
	return out, nil
}

func (c *Cluster) Config() indexer.Config { return c.members[0].Config() }

// CreateInstance creates d on every member holding one of its replicas.
func (c *Cluster) CreateInstance(d indexer.InstanceDefn) error {
	_, ms, err := c.holding(d.ID)
	if err != nil {
		return err
	}
	c.named(d)
	for _, m := range ms {
		if err := m.CreateInstance(d); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) Start(ctx context.Context) error {
	return c.each(func(m API) error { return m.Start(ctx) })
}

func (c *Cluster) Stop() error { return c.each(API.Stop) }

// single returns the only member, or ErrPerNode.
func (c *Cluster) single() (API, error) {
	if len(c.members) != 1 {
		return nil, ErrPerNode
	}
	return c.members[0], nil
}

func (c *Cluster) Resume(ctx context.Context, ts *upr.TsVbuuid) (int, error) {
	m, err := c.single()
	if err != nil {
		return 0, err
	}
	return m.Resume(ctx, ts)
}

func (c *Cluster) Recover() (*upr.TsVbuuid, error) {
	m, err := c.single()
	if err != nil {
		return nil, err
	}
	return m.Recover()
}

func (c *Cluster) CheckHold(ctx context.Context, ts *upr.TsVbuuid) (*upr.TsVbuuid, error) {
	m, err := c.single()
	if err != nil {
		return nil, err
	}
	return m.CheckHold(ctx, ts)
}

// Restart restarts every member in service on the instances it holds. It
// returns the longest reopen and the oldest vector any member restarted
// from.
func (c *Cluster) Restart(ctx context.Context, insts []indexer.InstanceDefn) (time.Duration, *upr.TsVbuuid, error) {
	groups, err := c.split(insts)
	if err != nil {
		return 0, nil, err
	}
	for _, d := range insts {
		c.named(d)
	}
	var (
		mu    sync.Mutex
		open  time.Duration
		froms []*upr.TsVbuuid
	)
	err = c.eachAt(func(i int, m API) error {
		o, from, err := m.Restart(ctx, groups[i])
		mu.Lock()
		open = max(open, o)
		if from != nil {
			froms = append(froms, from)
		}
		mu.Unlock()
		return err
	})
	return open, minVector(froms), err
}

// named records d's name, for scans that name their index.
func (c *Cluster) named(d indexer.InstanceDefn) {
	c.mu.Lock()
	c.byName[d.Defn.Name] = d.ID
	c.mu.Unlock()
}

// Drop drops instance id on the members holding it.
func (c *Cluster) Drop(id uint64) error {
	_, ms, err := c.holding(id)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range ms {
		errs = append(errs, m.Drop(id))
	}
	c.mu.Lock()
	delete(c.place, id)
	for name, v := range c.byName {
		if v == id {
			delete(c.byName, name)
		}
	}
	c.mu.Unlock()
	return errors.Join(errs...)
}

// StartBuild starts one build on each member holding some of insts.
func (c *Cluster) StartBuild(ctx context.Context, insts []indexer.InstanceDefn) (Builder, error) {
	groups, err := c.split(insts)
	if err != nil {
		return nil, err
	}
	for _, d := range insts {
		c.named(d)
	}
	var bs clusterBuild
	for i, mine := range groups {
		c.mu.Lock()
		m := c.members[i]
		c.mu.Unlock()
		b, err := m.StartBuild(ctx, mine)
		if err != nil {
			bs.Close()
			return nil, fmt.Errorf("index node %s: %w", c.names[i], err)
		}
		bs = append(bs, b)
	}
	return bs, nil
}

// clusterBuild is a build on several members, driven together.
type clusterBuild []Builder

func (bs clusterBuild) WaitFor(ctx context.Context, ts *upr.TsVbuuid, timeout time.Duration) error {
	for _, b := range bs {
		if err := b.WaitFor(ctx, ts, timeout); err != nil {
			return err
		}
	}
	return nil
}

func (bs clusterBuild) Merge(ctx context.Context, timeout time.Duration) error {
	for _, b := range bs {
		if err := b.Merge(ctx, timeout); err != nil {
			return err
		}
	}
	return nil
}

func (bs clusterBuild) Close() error {
	var errs []error
	for _, b := range bs {
		errs = append(errs, b.Close())
	}
	return errors.Join(errs...)
}

func (c *Cluster) WaitCovered(ctx context.Context, ts *upr.TsVbuuid, timeout time.Duration) error {
	return c.each(func(m API) error { return m.WaitCovered(ctx, ts, timeout) })
}

func (c *Cluster) WaitCaughtUp(ctx context.Context, timeout time.Duration) error {
	return c.each(func(m API) error { return m.WaitCaughtUp(ctx, timeout) })
}

// WaitPersisted waits for cond on every member and returns the oldest of
// their persisted vectors.
func (c *Cluster) WaitPersisted(ctx context.Context, timeout time.Duration, cond PersistCond) (*upr.TsVbuuid, error) {
	var (
		mu  sync.Mutex
		tss []*upr.TsVbuuid
	)
	err := c.each(func(m API) error {
		ts, err := m.WaitPersisted(ctx, timeout, cond)
		mu.Lock()
		if ts != nil {
			tss = append(tss, ts)
		}
		mu.Unlock()
		return err
	})
	return minVector(tss), err
}

// Scan sends req to a replica of its index, round robin over those not
// suspect, and fails over to the next replica when one is unreachable,
// does not answer within ReplicaTimeout, cannot answer at the scan's
// consistency within its timeout, or does not hold the instance (yet). A
// replica that failed is suspect for SuspectFor: tried after the others.
// A rollback that fails a waiting scan, or the caller's own ctx, ends the
// scan at once: no replica would answer it differently.
func (c *Cluster) Scan(ctx context.Context, req indexer.ScanRequest) (*indexer.ScanResult, error) {
	if req.InstID == 0 && req.Index != "" {
		c.mu.Lock()
		id, ok := c.byName[req.Index]
		c.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("index cluster: no index %q", req.Index)
		}
		req.InstID = id
	}
	idx, ms, err := c.holdingAt(req.InstID)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("index cluster: every replica of instance %d is down", req.InstID)
	}
	order := c.scanOrder(idx)
	var errs []error
	for k, j := range order {
		if k > 0 {
			c.failovers.Add(1)
		}
		actx, cancel := ctx, context.CancelFunc(func() {})
		if k < len(order)-1 {
			actx, cancel = context.WithTimeout(ctx, cmp.Or(c.ReplicaTimeout, 2*time.Second))
		}
		res, err := ms[j].Scan(actx, req)
		cancel()
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil || errors.Is(err, indexer.ErrIndexRollback) {
			return nil, err
		}
		c.mu.Lock()
		c.suspect[idx[j]] = time.Now().Add(cmp.Or(c.SuspectFor, time.Second))
		c.mu.Unlock()
		errs = append(errs, fmt.Errorf("replica on %s: %w", c.names[idx[j]], err))
	}
	return nil, errors.Join(errs...)
}

// scanOrder orders the replicas at idx for one scan: round robin, those
// not suspect first.
func (c *Cluster) scanOrder(idx []int) []int {
	first := int(c.next.Add(1) % uint64(len(idx)))
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var good, bad []int
	for k := range idx {
		j := (first + k) % len(idx)
		if now.Before(c.suspect[idx[j]]) {
			bad = append(bad, j)
		} else {
			good = append(good, j)
		}
	}
	return append(good, bad...)
}

// Stats sums the members' counters; its ages are the oldest and its
// seqno sums the lowest of the members in service.
func (c *Cluster) Stats() (indexer.Stats, bool) {
	_, ms := c.up()
	var sum indexer.Stats
	ok := true
	for k, m := range ms {
		s, mok := m.Stats()
		ok = ok && mok
		if k == 0 {
			sum = s
			continue
		}
		sum.Merge(s)
	}
	return sum, ok
}

func (c *Cluster) vectors(f func(API) *upr.TsVbuuid) *upr.TsVbuuid {
	_, ms := c.up()
	var tss []*upr.TsVbuuid
	for _, m := range ms {
		ts := f(m)
		if ts == nil {
			return nil // a member that cannot say: nothing is known of all
		}
		tss = append(tss, ts)
	}
	return minVector(tss)
}

func (c *Cluster) HWT() *upr.TsVbuuid         { return c.vectors(API.HWT) }
func (c *Cluster) SnapshotTS() *upr.TsVbuuid  { return c.vectors(API.SnapshotTS) }
func (c *Cluster) PersistedTS() *upr.TsVbuuid { return c.vectors(API.PersistedTS) }
func (c *Cluster) From() *upr.TsVbuuid        { return c.vectors(API.From) }

// ReplicaSpread is how many mutations the most advanced member in service
// has in its latest snapshot that the least advanced has not: how far
// behind the slowest replica is (0 with one member, or when a member
// cannot say).
func (c *Cluster) ReplicaSpread() uint64 {
	_, ms := c.up()
	var lo, hi uint64
	for k, m := range ms {
		ts := m.SnapshotTS()
		if ts == nil {
			return 0
		}
		sum := ts.Sum()
		if k == 0 || sum < lo {
			lo = sum
		}
		hi = max(hi, sum)
	}
	return hi - lo
}

// Failure reports a member's failure only when it leaves an instance
// with no replica in service: a member that failed (its node died, its
// streams ended) is taken out of service, as if SetDown, and the cluster
// carries on while every index has a replica elsewhere.
//
// A member that does not answer within a moment (a stopped process) is
// not judged this time; one call to it at most stays in flight.
func (c *Cluster) Failure() error {
	idx, ms := c.up()
	var failed []error
	for k, m := range ms {
		if err := c.probe(idx[k], m); err != nil {
			c.mu.Lock()
			c.down[idx[k]] = true
			c.mu.Unlock()
			failed = append(failed, fmt.Errorf("index node %s: %w", c.names[idx[k]], err))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, at := range c.place {
		served := false
		for _, i := range at {
			served = served || !c.down[i]
		}
		if !served {
			return fmt.Errorf("index cluster: instance %d has no replica left: %w", id, errors.Join(failed...))
		}
	}
	return nil
}

// failureWait bounds how long Failure waits for one member's answer.
const failureWait = 200 * time.Millisecond

// probe asks member i for its failure, giving up after failureWait (nil:
// not judged), with one call at most in flight.
func (c *Cluster) probe(i int, m API) error {
	if !c.probing[i].CompareAndSwap(false, true) {
		return nil
	}
	ch := make(chan error, 1)
	go func() {
		ch <- m.Failure()
		c.probing[i].Store(false)
	}()
	t := time.NewTimer(failureWait)
	defer t.Stop()
	select {
	case err := <-ch:
		return err
	case <-t.C:
		return nil
	}
}

// Close closes every member, in service or not.
func (c *Cluster) Close() error {
	c.mu.Lock()
	ms := append([]API(nil), c.members...)
	c.mu.Unlock()
	var errs []error
	for i, m := range ms {
		if err := m.Close(); err != nil {
			errs = append(errs, fmt.Errorf("index node %s: %w", c.names[i], err))
		}
	}
	return errors.Join(errs...)
}

// minVector is the per-vbucket minimum of tss (the entry of the vector
// with the lowest seqno, its vbuuid and snapshot with it); nil for none.
func minVector(tss []*upr.TsVbuuid) *upr.TsVbuuid {
	if len(tss) == 0 {
		return nil
	}
	out := tss[0].Clone()
	for _, ts := range tss[1:] {
		for vb := range out.Seqnos {
			if vb < ts.Len() && ts.Seqnos[vb] < out.Seqnos[vb] {
				out.Seqnos[vb], out.Vbuuids[vb], out.Snapshots[vb] = ts.Seqnos[vb], ts.Vbuuids[vb], ts.Snapshots[vb]
			}
		}
	}
	return out
}
