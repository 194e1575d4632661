package coordinator

import (
	"errors"
	"fmt"
	"sort"

	"github.com/idxbench/idxbench/workload/defn"
)

// catalog is the metadata as a plain value, with the DDL rules as its
// methods: every backend applies a DDL to a copy of it and keeps the copy
// only if the change is stored, so the rules live in one place.
type catalog struct {
	nextID     uint64
	byName     map[string]*Instance
	inRecovery bool
}

func newCatalog() *catalog {
	return &catalog{nextID: 1, byName: map[string]*Instance{}}
}

func (c *catalog) clone() *catalog {
	n := &catalog{nextID: c.nextID, byName: make(map[string]*Instance, len(c.byName)), inRecovery: c.inRecovery}
	for k, v := range c.byName {
		inst := cloneInstance(v)
		n.byName[k] = &inst
	}
	return n
}

func (c *catalog) create(d defn.IndexDefn, nodes []string) (Instance, error) {
	if err := validateDefn(d); err != nil {
		return Instance{}, err
	}
	placed, err := place(c.nextID, d.Replicas, nodes)
	if err != nil {
		return Instance{}, fmt.Errorf("create index %q: %w", d.Name, err)
	}
	if c.inRecovery {
		return Instance{}, fmt.Errorf("create index %q: %w", d.Name, ErrInRecovery)
	}
	if old, ok := c.byName[d.Name]; ok && old.State != Deleted {
		return Instance{}, fmt.Errorf("create index %q: %w", d.Name, ErrIndexExists)
	}
	inst := &Instance{ID: c.nextID, Defn: d, State: Initial, Partitions: make([]int, d.NumPartitions()), Nodes: placed}
	if d.Deferred {
		inst.State = Created
	}
	c.nextID++
	c.byName[d.Name] = inst
	return cloneInstance(inst), nil
}

// validTransitions lists the allowed state changes.
var validTransitions = map[State][]State{
	Created: {Initial, Deleted},
	Initial: {Catchup, Active, Deleted},
	// A catch-up is discarded on a KV rollback or a restart: the build
	// starts again from its backfill.
	Catchup: {Initial, Active, Deleted},
	Active:  {Deleted},
}

func (c *catalog) setState(name string, state State) error {
	inst, ok := c.byName[name]
	if !ok || inst.State == Deleted {
		return fmt.Errorf("index %q: %w", name, ErrIndexNotFound)
	}
	allowed := false
	for _, s := range validTransitions[inst.State] {
		allowed = allowed || s == state
	}
	if !allowed {
		return fmt.Errorf("index %q %s → %s: %w", name, inst.State, state, ErrBadTransition)
	}
	inst.State = state
	return nil
}

func (c *catalog) build(names ...string) ([]Instance, error) {
	if c.inRecovery {
		return nil, fmt.Errorf("build: %w", ErrInRecovery)
	}
	var insts []*Instance
	for _, n := range names {
		inst, ok := c.byName[n]
		if !ok || inst.State == Deleted {
			return nil, fmt.Errorf("build index %q: %w", n, ErrIndexNotFound)
		}
		if inst.State != Created {
			return nil, fmt.Errorf("build index %q in state %s: %w", n, inst.State, ErrBadTransition)
		}
		insts = append(insts, inst)
	}
	out := make([]Instance, len(insts))
	for i, inst := range insts {
		inst.State = Initial
		out[i] = cloneInstance(inst)
	}
	return out, nil
}

func (c *catalog) drop(name string) (Instance, error) {
	if c.inRecovery {
		return Instance{}, fmt.Errorf("drop index %q: %w", name, ErrInRecovery)
	}
	inst, ok := c.byName[name]
	if !ok || inst.State == Deleted {
		return Instance{}, fmt.Errorf("drop index %q: %w", name, ErrIndexNotFound)
	}
	inst.State = Deleted
	return cloneInstance(inst), nil
}

func (c *catalog) get(name string) (Instance, error) {
	inst, ok := c.byName[name]
	if !ok || inst.State == Deleted {
		return Instance{}, fmt.Errorf("index %q: %w", name, ErrIndexNotFound)
	}
	return cloneInstance(inst), nil
}

func (c *catalog) instances() []Instance {
	var out []Instance
	for _, inst := range c.byName {
		if inst.State != Deleted {
			out = append(out, cloneInstance(inst))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ddl is the DDL methods of Metadata for a backend that can apply a change
// to its catalog atomically (change leaves the catalog as it was when f or
// the storing fails).
type ddl struct {
	change func(f func(cat *catalog) error) error
	// indexNodes lists the index nodes, by name, that replicas are placed
	// on; none when the topology has one index node, unnamed.
	indexNodes func() ([]string, error)
}

// Create implements Metadata.
func (d ddl) Create(def defn.IndexDefn) (inst Instance, err error) {
	nodes, err := d.indexNodes()
	if err != nil {
		return Instance{}, fmt.Errorf("create index %q: %w", def.Name, err)
	}
	err = d.change(func(cat *catalog) (err error) {
		inst, err = cat.create(def, nodes)
		return err
	})
	return inst, err
}

// SetState implements Metadata.
func (d ddl) SetState(name string, state State) error {
	return d.change(func(cat *catalog) error { return cat.setState(name, state) })
}

// Build implements Metadata.
func (d ddl) Build(names ...string) (insts []Instance, err error) {
	err = d.change(func(cat *catalog) (err error) {
		insts, err = cat.build(names...)
		return err
	})
	return insts, err
}

// Drop implements Metadata.
func (d ddl) Drop(name string) (inst Instance, err error) {
	err = d.change(func(cat *catalog) (err error) {
		inst, err = cat.drop(name)
		return err
	})
	return inst, err
}

var errNoName = errors.New("index definition has no name")

func validateDefn(d defn.IndexDefn) error {
	if d.Name == "" {
		return errNoName
	}
	if d.IsPrimary && len(d.SecExprs) > 0 {
		return fmt.Errorf("index %q: a primary index has no key expressions", d.Name)
	}
	if !d.IsPrimary && len(d.SecExprs) == 0 {
		return fmt.Errorf("index %q: needs at least one key expression", d.Name)
	}
	for _, e := range d.SecExprs {
		if !defn.ValidPath(e) {
			return fmt.Errorf("index %q: key %q is not a field path", d.Name, e)
		}
	}
	if d.Partitions < 0 || d.Partitions > 1024 {
		return fmt.Errorf("index %q: partitions %d out of range [1,1024]", d.Name, d.Partitions)
	}
	if d.Replicas < 0 || d.Replicas > defn.MaxReplicas {
		return fmt.Errorf("index %q: replicas %d out of range [0,%d]", d.Name, d.Replicas, defn.MaxReplicas)
	}
	if _, err := defn.ParseWhere(d.Where); err != nil {
		return fmt.Errorf("index %q: %w", d.Name, err)
	}
	return nil
}

func cloneInstance(inst *Instance) Instance {
	c := *inst
	c.Partitions = append([]int(nil), inst.Partitions...)
	c.Nodes = append([]string(nil), inst.Nodes...)
	c.Defn.SecExprs = append([]string(nil), inst.Defn.SecExprs...)
	return c
}

// ErrTooFewNodes refuses an index with more replicas than the topology
// has index nodes to hold them apart.
var ErrTooFewNodes = errors.New("not enough index nodes")

// place is the partition map's choice of index nodes for instance id's
// replicas: replicas+1 different nodes, the first chosen by the id so
// that indexes spread over the nodes, the rest following in name order.
// With no nodes named (one index node) it places nothing and allows no
// replica.
func place(id uint64, replicas int, nodes []string) ([]string, error) {
	if len(nodes) == 0 {
		if replicas > 0 {
			return nil, fmt.Errorf("%w: %d replicas need %d index nodes; the topology has 1", ErrTooFewNodes, replicas, replicas+1)
		}
		return nil, nil
	}
	if replicas+1 > len(nodes) {
		return nil, fmt.Errorf("%w: %d replicas need %d index nodes; %d are registered", ErrTooFewNodes, replicas, replicas+1, len(nodes))
	}
	sorted := append([]string(nil), nodes...)
	sort.Strings(sorted)
	out := make([]string, replicas+1)
	for r := range out {
		out[r] = sorted[(int(id%uint64(len(sorted)))+r)%len(sorted)]
	}
	return out, nil
}
