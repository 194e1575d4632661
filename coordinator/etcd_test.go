package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/idxbench/idxbench/coordinator/etcdserver"
	"github.com/idxbench/idxbench/workload/defn"
)

// etcdClient starts a single-member etcd on loopback for the test and
// returns a client of it.
func etcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	m, err := etcdserver.Start(etcdserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return newClient(t, m.ClientURL)
}

func newClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// backends runs fn on every Metadata implementation.
func backends(t *testing.T, fn func(t *testing.T, open func() Metadata)) {
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		fn(t, func() Metadata {
			c, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			return c
		})
	})
	t.Run("etcd", func(t *testing.T) {
		cli := etcdClient(t)
		fn(t, func() Metadata { return NewEtcd(cli, "/idxbench/test", 0) })
	})
}

func TestMetadataBackends(t *testing.T) {
	backends(t, func(t *testing.T, open func() Metadata) {
		c := open()
		a, err := c.Create(defn.IndexDefn{Name: "by_city", SecExprs: []string{"city"}, Partitions: 4})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Create(defn.IndexDefn{Name: "later", SecExprs: []string{"age"}, Deferred: true}); err != nil {
			t.Fatal(err)
		}
		if err := c.SetState("by_city", Active); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Create(defn.IndexDefn{Name: "gone", IsPrimary: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Drop("gone"); err != nil {
			t.Fatal(err)
		}
		// A refused DDL changes nothing.
		if _, err := c.Build("later", "by_city"); !errors.Is(err, ErrBadTransition) {
			t.Fatalf("build of an active index: %v, want ErrBadTransition", err)
		}
		if err := c.SetRecovery(true); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Drop("by_city"); !errors.Is(err, ErrInRecovery) {
			t.Fatalf("drop in recovery: %v, want ErrInRecovery", err)
		}
		if err := c.SetRecovery(false); err != nil {
			t.Fatal(err)
		}

		c2 := open() // another process, or the same after a restart
		got, err := c2.Instances()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != a.ID || got[0].State != Active || len(got[0].Partitions) != 4 || got[1].State != Created {
			t.Fatalf("instances seen anew: %+v", got)
		}
		d, err := c2.Create(defn.IndexDefn{Name: "gone", IsPrimary: true})
		if err != nil {
			t.Fatal(err)
		}
		if d.ID != 4 {
			t.Fatalf("recreated index got id %d, want 4 (ids are never reused)", d.ID)
		}
		if _, err := c2.Get("gone"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestEtcdRacingCreates: clients racing to create the same index — one
// wins, the others get ErrIndexExists, and ids stay unique.
func TestEtcdRacingCreates(t *testing.T) {
	cli := etcdClient(t)
	const clients = 6
	var wg sync.WaitGroup
	errs := make([]error, clients)
	ids := make([]uint64, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := NewEtcd(newClient(t, cli.Endpoints()...), "/race", 0)
			inst, err := m.Create(defn.IndexDefn{Name: "same", SecExprs: []string{"x"}})
			errs[i], ids[i] = err, inst.ID
			// Each also creates one of its own: ids must not collide.
			inst, err = m.Create(defn.IndexDefn{Name: fmt.Sprintf("own%d", i), SecExprs: []string{"x"}})
			if err != nil {
				t.Errorf("client %d: %v", i, err)
			}
			_ = inst
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrIndexExists):
			t.Errorf("client %d: %v, want ErrIndexExists", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d clients created the same index, want 1", won)
	}
	all, err := NewEtcd(cli, "/race", 0).Instances()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, inst := range all {
		if seen[inst.ID] {
			t.Fatalf("id %d given twice: %+v", inst.ID, all)
		}
		seen[inst.ID] = true
	}
	if len(all) != clients+1 {
		t.Fatalf("%d indexes, want %d", len(all), clients+1)
	}
}

// TestEtcdWatchSeesOtherClientsDDL: a client learns of an index created and
// dropped by another without polling.
func TestEtcdWatchSeesOtherClientsDDL(t *testing.T) {
	cli := etcdClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watcher := NewEtcd(newClient(t, cli.Endpoints()...), "/w", 0)
	events := watcher.WatchDDL(ctx, 0)
	time.Sleep(100 * time.Millisecond) // let the watch register
	other := NewEtcd(cli, "/w", 0)
	if _, err := other.Create(defn.IndexDefn{Name: "a", SecExprs: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Drop("a"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []State{Initial, Deleted} {
		select {
		case ev := <-events:
			if ev.Instance.Defn.Name != "a" || ev.Instance.State != want {
				t.Fatalf("event %+v, want a %s", ev.Instance, want)
			}
		case <-ctx.Done():
			t.Fatalf("no event for %s", want)
		}
	}
}

// TestEtcdThreeMembers: the metadata works on a three-member cluster and
// survives losing one member.
func TestEtcdThreeMembers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	members, endpoints, err := etcdserver.StartCluster(ctx, t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, m := range members[1:] {
			m.Close()
		}
	}()
	m := NewEtcd(newClient(t, endpoints...), "/three", 0)
	if _, err := m.Create(defn.IndexDefn{Name: "a", SecExprs: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	members[0].Close()
	if _, err := m.Create(defn.IndexDefn{Name: "b", SecExprs: []string{"x"}}); err != nil {
		t.Fatalf("create with one member of three down: %v", err)
	}
	all, err := m.Instances()
	if err != nil || len(all) != 2 {
		t.Fatalf("instances: %v %+v", err, all)
	}
}

// TestElectionFailover: two candidates; the master's lease goes, the other
// becomes master; how long that took is logged.
func TestElectionFailover(t *testing.T) {
	cli := etcdClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := NewCandidate(newClient(t, cli.Endpoints()...), "/e", "coord-a", 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := NewCandidate(newClient(t, cli.Endpoints()...), "/e", "coord-b", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, err := Master(ctx, cli, "/e"); err != nil || got != "coord-a" {
		t.Fatalf("master %q (%v), want coord-a", got, err)
	}
	elected := make(chan error, 1)
	go func() { elected <- b.Campaign(ctx) }()
	select {
	case <-elected:
		t.Fatal("coord-b became master while coord-a held it")
	case <-time.After(300 * time.Millisecond):
	}
	start := time.Now()
	if err := a.Close(); err != nil { // the master goes (a clean exit: its lease is revoked)
		t.Fatal(err)
	}
	if err := <-elected; err != nil {
		t.Fatal(err)
	}
	t.Logf("coord-b master %s after coord-a left", time.Since(start))
	if got, err := Master(ctx, cli, "/e"); err != nil || got != "coord-b" {
		t.Fatalf("master %q (%v), want coord-b", got, err)
	}
}
