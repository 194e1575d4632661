package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Etcd keeps the metadata in etcd, under a key prefix, so every process of
// a cluster (coordinators, index nodes, scan and DDL clients) shares one
// catalog:
//
//	PREFIX/meta/next_id        the next instance id
//	PREFIX/meta/index/NAME     an instance, JSON
//	PREFIX/meta/recovery       present while the indexer is in recovery
//
// A DDL reads the whole catalog at a revision, applies the change to a
// copy with the same rules as the file coordinator, and writes what changed
// in one transaction that succeeds only if nothing under PREFIX/meta/
// changed since that revision; otherwise it reads again and retries. Two
// clients racing to create the same name: one commits, the other retries,
// finds the index and gets ErrIndexExists. A refused DDL writes nothing.
type Etcd struct {
	ddl
	cli     *clientv3.Client
	base    string // the cluster's prefix (the registry is under it too)
	prefix  string // the metadata's, under base
	timeout time.Duration
}

var _ Metadata = (*Etcd)(nil)

// NewEtcd returns the metadata under prefix (for example "/idxbench/run1")
// in the cluster cli talks to. Each call is bounded by timeout (default 5
// s): metadata that cannot be reached is an error, never a hang.
func NewEtcd(cli *clientv3.Client, prefix string, timeout time.Duration) *Etcd {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	e := &Etcd{cli: cli, base: prefix, prefix: strings.TrimSuffix(prefix, "/") + "/meta/", timeout: timeout}
	e.ddl = ddl{change: e.change, indexNodes: e.indexNodes}
	return e
}

func (e *Etcd) nextIDKey() string        { return e.prefix + "next_id" }
func (e *Etcd) indexKey(n string) string { return e.prefix + "index/" + n }
func (e *Etcd) recoveryKey() string      { return e.prefix + "recovery" }

// ErrMetadataUnavailable wraps a failure to reach the metadata.
var ErrMetadataUnavailable = errors.New("index metadata unavailable")

// load reads the catalog and the revision it was read at.
func (e *Etcd) load(ctx context.Context) (*catalog, int64, error) {
	resp, err := e.cli.Get(ctx, e.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrMetadataUnavailable, err)
	}
	cat := newCatalog()
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		switch {
		case k == e.nextIDKey():
			id, err := strconv.ParseUint(string(kv.Value), 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("index metadata %s: %q is not an id", k, kv.Value)
			}
			cat.nextID = id
		case k == e.recoveryKey():
			cat.inRecovery = true
		case strings.HasPrefix(k, e.prefix+"index/"):
			var inst Instance
			if err := json.Unmarshal(kv.Value, &inst); err != nil {
				return nil, 0, fmt.Errorf("index metadata %s is corrupt: %w", k, err)
			}
			cat.byName[inst.Defn.Name] = &inst
		}
	}
	return cat, resp.Header.Revision, nil
}

// maxConflicts bounds the retries of a DDL that keeps losing races.
const maxConflicts = 16

// change applies f to the catalog and commits what changed, retrying when
// another client changed the metadata meanwhile.
func (e *Etcd) change(f func(cat *catalog) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	for range maxConflicts {
		cat, rev, err := e.load(ctx)
		if err != nil {
			return err
		}
		next := cat.clone()
		if err := f(next); err != nil {
			return err
		}
		ops, err := e.diff(cat, next)
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			return nil
		}
		resp, err := e.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(e.prefix).WithPrefix(), "<", rev+1)).
			Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMetadataUnavailable, err)
		}
		if resp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("index metadata: %d conflicting changes in a row; giving up", maxConflicts)
}

// diff lists the writes that turn old into next.
func (e *Etcd) diff(old, next *catalog) ([]clientv3.Op, error) {
	var ops []clientv3.Op
	if next.nextID != old.nextID {
		ops = append(ops, clientv3.OpPut(e.nextIDKey(), strconv.FormatUint(next.nextID, 10)))
	}
	if next.inRecovery != old.inRecovery {
		if next.inRecovery {
			ops = append(ops, clientv3.OpPut(e.recoveryKey(), "1"))
		} else {
			ops = append(ops, clientv3.OpDelete(e.recoveryKey()))
		}
	}
	for name, inst := range next.byName {
		if o, ok := old.byName[name]; ok && sameInstance(o, inst) {
			continue
		}
		data, err := json.Marshal(inst)
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(e.indexKey(name), string(data)))
	}
	return ops, nil
}

func sameInstance(a, b *Instance) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// SetRecovery implements Metadata. The mode is recorded in etcd, so a
// coordinator that takes over finds the cluster in recovery.
func (e *Etcd) SetRecovery(on bool) error {
	return e.change(func(cat *catalog) error {
		cat.inRecovery = on
		return nil
	})
}

// InRecovery reports whether the recorded mode is recovery.
func (e *Etcd) InRecovery() (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	cat, _, err := e.load(ctx)
	if err != nil {
		return false, err
	}
	return cat.inRecovery, nil
}

// Get implements Metadata.
func (e *Etcd) Get(name string) (Instance, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	cat, _, err := e.load(ctx)
	if err != nil {
		return Instance{}, err
	}
	return cat.get(name)
}

// Instances implements Metadata.
func (e *Etcd) Instances() ([]Instance, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	cat, _, err := e.load(ctx)
	if err != nil {
		return nil, err
	}
	return cat.instances(), nil
}

// DDLEvent is a change to an index's metadata as a watcher sees it.
type DDLEvent struct {
	Instance Instance
	// Revision is etcd's revision of the change.
	Revision int64
}

// WatchDDL sends every change to an index's metadata made after rev (0:
// from now) — by this client or any other — until ctx ends; a client learns
// of indexes created, built or dropped elsewhere without polling. The
// channel is closed when the watch ends.
func (e *Etcd) WatchDDL(ctx context.Context, rev int64) <-chan DDLEvent {
	out := make(chan DDLEvent)
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev+1))
	}
	wch := e.cli.Watch(clientv3.WithRequireLeader(ctx), e.prefix+"index/", opts...)
	go func() {
		defer close(out)
		for resp := range wch {
			for _, ev := range resp.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				var inst Instance
				if json.Unmarshal(ev.Kv.Value, &inst) != nil {
					continue
				}
				select {
				case out <- DDLEvent{Instance: inst, Revision: ev.Kv.ModRevision}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// indexNodes lists the index nodes in the registry under the metadata's
// prefix: replicas are placed on the nodes that have joined.
func (e *Etcd) indexNodes() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	nodes, err := Nodes(ctx, e.cli, e.base)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range nodes {
		if n.Role == RoleIndex {
			names = append(names, n.Name)
		}
	}
	return names, nil
}
