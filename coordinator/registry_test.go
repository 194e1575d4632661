package coordinator

import (
	"context"
	"testing"
	"time"
)

// TestRegistrationComesBackAfterItsLeaseLapses revokes a node's lease (as
// etcd does when the node was stopped longer than it): watchers see the
// node leave, then join again on its own, and Close withdraws it.
func TestRegistrationComesBackAfterItsLeaseLapses(t *testing.T) {
	cli := etcdClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events := WatchTopology(ctx, cli, "/idxbench/reg")
	r, err := Register(ctx, cli, "/idxbench/reg", NodeInfo{Role: RoleIndex, Name: "index-0"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	next := func() TopologyEvent {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-ctx.Done():
			t.Fatal("no topology event")
			return TopologyEvent{}
		}
	}
	if ev := next(); !ev.Joined || ev.Node.Name != "index-0" {
		t.Fatalf("first event %+v, want index-0 joining", ev)
	}
	r.mu.Lock()
	lease := r.s.Lease()
	r.mu.Unlock()
	if _, err := cli.Revoke(ctx, lease); err != nil {
		t.Fatalf("revoke %x: %v (ctx %v)", lease, err, ctx.Err())
	}
	if ev := next(); ev.Joined || ev.Node.Name != "index-0" {
		t.Fatalf("after the lease lapsed: %+v, want index-0 leaving", ev)
	}
	if ev := next(); !ev.Joined || ev.Node.Name != "index-0" {
		t.Fatalf("then %+v, want index-0 joining again", ev)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Joined {
		t.Fatalf("after Close: %+v, want index-0 leaving", ev)
	}
	nodes, err := Nodes(ctx, cli, "/idxbench/reg")
	if err != nil || len(nodes) != 0 {
		t.Fatalf("registry after Close: %v (%v)", nodes, err)
	}
}
