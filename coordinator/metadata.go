package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/idxbench/idxbench/workload/defn"
)

// State is an index instance's lifecycle state.
type State string

const (
	// Created: defined, not built (a deferred index waits here).
	Created State = "CREATED"
	// Initial: its initial build is backfilling from the INIT stream.
	Initial State = "INITIAL"
	// Catchup: the backfill reached the build timestamp; catching up with
	// the MAINT stream before the streams merge.
	Catchup State = "CATCHUP"
	// Active: maintained by the MAINT stream and served to scans.
	Active State = "ACTIVE"
	// Deleted: dropped; its data is being or has been destroyed.
	Deleted State = "DELETED"
)

// Sentinel errors for refused DDL.
var (
	ErrIndexExists   = errors.New("index already exists")
	ErrIndexNotFound = errors.New("index not found")
	ErrBadTransition = errors.New("state transition not allowed")
	ErrInRecovery    = errors.New("indexer is in recovery")
)

// Instance is one index instance's metadata.
type Instance struct {
	ID    uint64         `json:"id"`
	Defn  defn.IndexDefn `json:"defn"`
	State State          `json:"state"`
	// Partitions maps each partition to the indexer node serving it; with
	// one indexer every entry is 0.
	Partitions []int `json:"partitions"`
}

// metaFile is the on-disk form of the metadata.
type metaFile struct {
	Version   int         `json:"version"`
	NextID    uint64      `json:"next_id"`
	Instances []*Instance `json:"instances"`
}

const metaVersion = 1

// Coordinator holds the metadata. Its methods are safe for concurrent use.
type Coordinator struct {
	path string // metadata file, "" for an unpersisted coordinator

	mu         sync.Mutex
	nextID     uint64
	byName     map[string]*Instance
	inRecovery bool
}

// Open loads the metadata kept in dir (creating an empty one if absent). An
// empty dir keeps the metadata in memory only.
func Open(dir string) (*Coordinator, error) {
	c := &Coordinator{nextID: 1, byName: map[string]*Instance{}}
	if dir == "" {
		return c, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("index metadata dir: %w", err)
	}
	c.path = filepath.Join(dir, "coordinator.json")
	data, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index metadata: %w", err)
	}
	var mf metaFile
	if err := json.Unmarshal(data, &mf); err != nil {
		return nil, fmt.Errorf("index metadata %s is corrupt: %w", c.path, err)
	}
	if mf.Version != metaVersion {
		return nil, fmt.Errorf("index metadata %s has version %d, want %d", c.path, mf.Version, metaVersion)
	}
	c.nextID = mf.NextID
	for _, inst := range mf.Instances {
		c.byName[inst.Defn.Name] = inst
	}
	return c, nil
}

// Create defines a new index. A deferred index stays CREATED until Build;
// any other is INITIAL (to be built now). It returns a copy of the instance.
func (c *Coordinator) Create(d defn.IndexDefn) (Instance, error) {
	if err := validateDefn(d); err != nil {
		return Instance{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inRecovery {
		return Instance{}, fmt.Errorf("create index %q: %w", d.Name, ErrInRecovery)
	}
	if old, ok := c.byName[d.Name]; ok && old.State != Deleted {
		return Instance{}, fmt.Errorf("create index %q: %w", d.Name, ErrIndexExists)
	}
	inst := &Instance{ID: c.nextID, Defn: d, State: Initial, Partitions: make([]int, d.NumPartitions())}
	if d.Deferred {
		inst.State = Created
	}
	c.nextID++
	c.byName[d.Name] = inst
	if err := c.saveLocked(); err != nil {
		delete(c.byName, d.Name)
		c.nextID--
		return Instance{}, err
	}
	return cloneInstance(inst), nil
}

// validTransitions lists the allowed state changes.
var validTransitions = map[State][]State{
	Created: {Initial, Deleted},
	Initial: {Catchup, Active, Deleted},
	Catchup: {Active, Deleted},
	Active:  {Deleted},
}

// SetState moves the named index to state, refusing transitions the life
// cycle does not allow.
func (c *Coordinator) SetState(name string, state State) error {
	c.mu.Lock()
	defer c.mu.Unlock()
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
	prev := inst.State
	inst.State = state
	if err := c.saveLocked(); err != nil {
		inst.State = prev
		return err
	}
	return nil
}

// Build moves deferred indexes from CREATED to INITIAL, all or none.
func (c *Coordinator) Build(names ...string) ([]Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
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
	if err := c.saveLocked(); err != nil {
		for _, inst := range insts {
			inst.State = Created
		}
		return nil, err
	}
	return out, nil
}

// Drop marks the named index DELETED and returns what it was, so the caller
// can tear down its streams and data. A drop during recovery is refused.
func (c *Coordinator) Drop(name string) (Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inRecovery {
		return Instance{}, fmt.Errorf("drop index %q: %w", name, ErrInRecovery)
	}
	inst, ok := c.byName[name]
	if !ok || inst.State == Deleted {
		return Instance{}, fmt.Errorf("drop index %q: %w", name, ErrIndexNotFound)
	}
	prev := inst.State
	inst.State = Deleted
	if err := c.saveLocked(); err != nil {
		inst.State = prev
		return Instance{}, err
	}
	return cloneInstance(inst), nil
}

// SetRecovery marks the indexer as in recovery (rollback or restart); DDL is
// refused meanwhile.
func (c *Coordinator) SetRecovery(on bool) {
	c.mu.Lock()
	c.inRecovery = on
	c.mu.Unlock()
}

// Get returns the named index's instance.
func (c *Coordinator) Get(name string) (Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	inst, ok := c.byName[name]
	if !ok || inst.State == Deleted {
		return Instance{}, fmt.Errorf("index %q: %w", name, ErrIndexNotFound)
	}
	return cloneInstance(inst), nil
}

// Instances lists the live (not deleted) instances in id order.
func (c *Coordinator) Instances() []Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Instance
	for _, inst := range c.byName {
		if inst.State != Deleted {
			out = append(out, cloneInstance(inst))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (c *Coordinator) saveLocked() error {
	if c.path == "" {
		return nil
	}
	mf := metaFile{Version: metaVersion, NextID: c.nextID}
	for _, inst := range c.byName {
		mf.Instances = append(mf.Instances, inst)
	}
	sort.Slice(mf.Instances, func(i, j int) bool { return mf.Instances[i].ID < mf.Instances[j].ID })
	data, err := json.MarshalIndent(mf, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(c.path, data); err != nil {
		return fmt.Errorf("save index metadata: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".coordinator-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func validateDefn(d defn.IndexDefn) error {
	if d.Name == "" {
		return errors.New("index definition has no name")
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
	if _, err := defn.ParseWhere(d.Where); err != nil {
		return fmt.Errorf("index %q: %w", d.Name, err)
	}
	return nil
}

func cloneInstance(inst *Instance) Instance {
	c := *inst
	c.Partitions = append([]int(nil), inst.Partitions...)
	c.Defn.SecExprs = append([]string(nil), inst.Defn.SecExprs...)
	return c
}
