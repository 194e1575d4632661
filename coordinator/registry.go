package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// RoleIndex is the role index nodes register under; the partition map
// places replicas on them.
const RoleIndex = "index"

// NodeInfo is a node as the registry lists it.
type NodeInfo struct {
	Role  string            `json:"role"`
	Name  string            `json:"name"`
	Pid   int               `json:"pid"`
	Addrs map[string]string `json:"addrs"`
	// Engine is an index node's storage engine.
	Engine string `json:"engine,omitempty"`
}

// Registration is a node's entry in the registry, alive while its lease
// is: a node that dies leaves the registry when the lease expires. A node
// that was cut off longer than its lease (stopped, partitioned) and comes
// back registers again with a new lease.
type Registration struct {
	cli    *clientv3.Client
	ttl    int
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	s      *concurrency.Session
}

func nodesPrefix(prefix string) string { return strings.TrimSuffix(prefix, "/") + "/nodes/" }

// Register enters info under prefix with a lease of ttl seconds, kept
// alive until Close or the process's end.
func Register(ctx context.Context, cli *clientv3.Client, prefix string, info NodeInfo, ttl int) (*Registration, error) {
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	key := nodesPrefix(prefix) + info.Role + "/" + info.Name
	enter := func(ctx context.Context) (*concurrency.Session, error) {
		s, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("%w: register %s: %v", ErrMetadataUnavailable, info.Name, err)
		}
		if _, err := cli.Put(ctx, key, string(data), clientv3.WithLease(s.Lease())); err != nil {
			s.Close()
			return nil, fmt.Errorf("%w: register %s: %v", ErrMetadataUnavailable, info.Name, err)
		}
		return s, nil
	}
	s, err := enter(ctx)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &Registration{cli: cli, ttl: ttl, cancel: cancel, done: make(chan struct{}), s: s}
	go func() {
		defer close(r.done)
		for {
			r.mu.Lock()
			cur := r.s
			r.mu.Unlock()
			select {
			case <-rctx.Done():
				return
			case <-cur.Done(): // the lease lapsed: enter again
			}
			for {
				s, err := enter(rctx)
				if err == nil {
					r.mu.Lock()
					r.s = s
					r.mu.Unlock()
					break
				}
				select {
				case <-rctx.Done():
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	}()
	return r, nil
}

// Close withdraws the registration at once.
func (r *Registration) Close() error {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	// The session may live on a context Close just cancelled: revoke its
	// lease on a fresh one.
	r.s.Orphan()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.ttl)*time.Second)
	defer cancel()
	_, err := r.cli.Revoke(ctx, r.s.Lease())
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil // it lapsed already
	}
	return err
}

// Nodes lists the registered nodes under prefix, by role then name.
func Nodes(ctx context.Context, cli *clientv3.Client, prefix string) ([]NodeInfo, error) {
	resp, err := cli.Get(ctx, nodesPrefix(prefix), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMetadataUnavailable, err)
	}
	var out []NodeInfo
	for _, kv := range resp.Kvs {
		var n NodeInfo
		if json.Unmarshal(kv.Value, &n) == nil {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Role != out[j].Role {
			return out[i].Role < out[j].Role
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// TopologyEvent is a node joining (Joined) or leaving the registry.
type TopologyEvent struct {
	Node   NodeInfo // for a node leaving, only Role and Name are set
	Joined bool
}

// WatchTopology sends nodes joining and leaving under prefix until ctx
// ends; the channel is then closed.
func WatchTopology(ctx context.Context, cli *clientv3.Client, prefix string) <-chan TopologyEvent {
	out := make(chan TopologyEvent)
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), nodesPrefix(prefix), clientv3.WithPrefix())
	go func() {
		defer close(out)
		for resp := range wch {
			for _, ev := range resp.Events {
				var te TopologyEvent
				if ev.Type == clientv3.EventTypePut {
					if json.Unmarshal(ev.Kv.Value, &te.Node) != nil {
						continue
					}
					te.Joined = true
				} else {
					role, name, _ := strings.Cut(strings.TrimPrefix(string(ev.Kv.Key), nodesPrefix(prefix)), "/")
					te.Node = NodeInfo{Role: role, Name: name}
				}
				select {
				case out <- te:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
