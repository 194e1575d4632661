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
	// Nodes names the index nodes holding the instance's replicas, the
	// first replica first (see place); empty with a single, unnamed index
	// node.
	Nodes []string `json:"nodes,omitempty"`
}

// metaFile is the on-disk form of the metadata.
type metaFile struct {
	Version   int         `json:"version"`
	NextID    uint64      `json:"next_id"`
	Instances []*Instance `json:"instances"`
}

const metaVersion = 1

// Metadata is the index metadata and its DDL, whatever keeps it: a file
// (Coordinator, for one process) or etcd (Etcd, for a cluster). A refused
// DDL changes nothing.
type Metadata interface {
	// Create defines a new index. A deferred index stays CREATED until
	// Build; any other is INITIAL (to be built now).
	Create(d defn.IndexDefn) (Instance, error)
	// SetState moves the named index to state, refusing transitions the
	// life cycle does not allow.
	SetState(name string, state State) error
	// Build moves deferred indexes from CREATED to INITIAL, all or none.
	Build(names ...string) ([]Instance, error)
	// Drop marks the named index DELETED and returns what it was. A drop
	// during recovery is refused.
	Drop(name string) (Instance, error)
	// SetRecovery records that the indexer is (or no longer is) in
	// recovery; DDL is refused meanwhile.
	SetRecovery(on bool) error
	// Get returns the named index's instance.
	Get(name string) (Instance, error)
	// Instances lists the live (not deleted) instances in id order.
	Instances() ([]Instance, error)
}

var _ Metadata = (*Coordinator)(nil)

// Coordinator holds the metadata in a file. Its methods are safe for
// concurrent use.
type Coordinator struct {
	ddl
	path string // metadata file, "" for an unpersisted coordinator

	mu    sync.Mutex
	cat   *catalog
	nodes []string // see SetIndexNodes
}

// SetIndexNodes names the index nodes that later indexes' replicas are
// placed on (none: one unnamed index node, no replicas). A process that
// runs several index nodes itself names them here; a cluster's come from
// the registry instead (Etcd).
func (c *Coordinator) SetIndexNodes(names []string) {
	c.mu.Lock()
	c.nodes = append([]string(nil), names...)
	c.mu.Unlock()
}

func (c *Coordinator) indexNodes() ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes, nil
}

// Open loads the metadata kept in dir (creating an empty one if absent). An
// empty dir keeps the metadata in memory only.
func Open(dir string) (*Coordinator, error) {
	c := &Coordinator{cat: newCatalog()}
	c.ddl = ddl{change: c.change, indexNodes: c.indexNodes}
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
	c.cat.nextID = mf.NextID
	for _, inst := range mf.Instances {
		c.cat.byName[inst.Defn.Name] = inst
	}
	return c, nil
}

// change applies f to the catalog and saves it; when either fails, the
// catalog is left as it was.
func (c *Coordinator) change(f func(cat *catalog) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.cat.clone()
	if err := f(next); err != nil {
		return err
	}
	if err := c.save(next); err != nil {
		return err
	}
	c.cat = next
	return nil
}

// SetRecovery implements Metadata. The file coordinator keeps the mode in
// memory: a restarted process is not in recovery until it says so.
func (c *Coordinator) SetRecovery(on bool) error {
	c.mu.Lock()
	c.cat.inRecovery = on
	c.mu.Unlock()
	return nil
}

// Get implements Metadata.
func (c *Coordinator) Get(name string) (Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cat.get(name)
}

// Instances implements Metadata.
func (c *Coordinator) Instances() ([]Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cat.instances(), nil
}

func (c *Coordinator) save(cat *catalog) error {
	if c.path == "" {
		return nil
	}
	mf := metaFile{Version: metaVersion, NextID: cat.nextID}
	for _, inst := range cat.byName {
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
