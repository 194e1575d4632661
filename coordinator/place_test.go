package coordinator

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/idxbench/idxbench/workload/defn"
)

func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		id       uint64
		replicas int
		nodes    []string
		want     []string
		err      error
	}{
		{id: 1, replicas: 0, nodes: nil, want: nil},
		{id: 1, replicas: 1, nodes: nil, err: ErrTooFewNodes},
		{id: 1, replicas: 2, nodes: []string{"a", "b"}, err: ErrTooFewNodes},
		{id: 0, replicas: 0, nodes: []string{"b", "a"}, want: []string{"a"}},
		{id: 1, replicas: 0, nodes: []string{"b", "a"}, want: []string{"b"}},
		{id: 1, replicas: 1, nodes: []string{"b", "a"}, want: []string{"b", "a"}},
		{id: 4, replicas: 2, nodes: []string{"c", "a", "b"}, want: []string{"b", "c", "a"}},
	} {
		got, err := place(tc.id, tc.replicas, tc.nodes)
		if !errors.Is(err, tc.err) || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("place(%d, %d, %v) = %v, %v; want %v, %v", tc.id, tc.replicas, tc.nodes, got, err, tc.want, tc.err)
		}
	}
}

// TestReplicasArePlacedOnRegisteredNodes creates indexes with replicas on
// both backends: the file one told its nodes, etcd reading its registry.
// Each replica lands on a different node, and an index with more replicas
// than nodes is refused, leaving nothing behind.
func TestReplicasArePlacedOnRegisteredNodes(t *testing.T) {
	check := func(t *testing.T, m Metadata) {
		inst, err := m.Create(defn.IndexDefn{Name: "by_city", SecExprs: []string{"city"}, Replicas: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(inst.Nodes) != 2 || inst.Nodes[0] == inst.Nodes[1] {
			t.Fatalf("replicas placed on %v, want two different nodes", inst.Nodes)
		}
		got, err := m.Get("by_city")
		if err != nil || !reflect.DeepEqual(got.Nodes, inst.Nodes) {
			t.Fatalf("stored placement %v (%v), created %v", got.Nodes, err, inst.Nodes)
		}
		_, err = m.Create(defn.IndexDefn{Name: "by_zip", SecExprs: []string{"zip"}, Replicas: 2})
		if !errors.Is(err, ErrTooFewNodes) {
			t.Fatalf("3 copies on 2 nodes: %v, want ErrTooFewNodes", err)
		}
		if _, err := m.Get("by_zip"); !errors.Is(err, ErrIndexNotFound) {
			t.Fatalf("a refused create left %v", err)
		}
	}
	t.Run("file", func(t *testing.T) {
		c, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		c.SetIndexNodes([]string{"index-0", "index-1"})
		check(t, c)
	})
	t.Run("etcd", func(t *testing.T) {
		cli := etcdClient(t)
		ctx := context.Background()
		for _, name := range []string{"index-0", "index-1"} {
			r, err := Register(ctx, cli, "/idxbench/place", NodeInfo{Role: RoleIndex, Name: name}, 5)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
		}
		if _, err := Register(ctx, cli, "/idxbench/place", NodeInfo{Role: "kv", Name: "kv-0"}, 5); err != nil {
			t.Fatal(err)
		}
		check(t, NewEtcd(cli, "/idxbench/place", 0))
	})
}
