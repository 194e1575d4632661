package coordinator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/idxbench/idxbench/workload/defn"
)

// TestDDLViaMaster runs DDL through the master: with none, a DDL is
// refused after its timeout and changes nothing; with one, DDL applies,
// refusals arrive as the sentinel errors, and reads see the changes.
func TestDDLViaMaster(t *testing.T) {
	cli := etcdClient(t)
	const prefix = "/idxbench/ddl"
	v := NewViaMaster(cli, prefix, 500*time.Millisecond)
	byCity := defn.IndexDefn{Name: "by_city", SecExprs: []string{"city"}}

	if _, err := v.Create(byCity); !errors.Is(err, ErrNoMasterDDL) {
		t.Fatalf("create with no master: %v, want ErrNoMasterDDL", err)
	}
	if insts, err := v.Instances(); err != nil || len(insts) != 0 {
		t.Fatalf("after a refused create: %v (%v)", insts, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunMaster(ctx, newClient(t, cli.Endpoints()...), MasterConfig{
			Name: "coord-a", Prefix: prefix, Interval: 50 * time.Millisecond, Vbuckets: 4,
			Nodes: func(context.Context) ([]Node, error) { return nil, nil },
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	v.timeout = 10 * time.Second
	inst, err := v.Create(byCity)
	if err != nil {
		t.Fatal(err)
	}
	if inst.Defn.Name != "by_city" || inst.State != Initial {
		t.Fatalf("created %+v", inst)
	}
	if _, err := v.Create(byCity); !errors.Is(err, ErrIndexExists) {
		t.Fatalf("second create: %v, want ErrIndexExists", err)
	}
	if err := v.SetState("by_city", Active); err != nil {
		t.Fatal(err)
	}
	if err := v.SetRecovery(true); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Drop("by_city"); !errors.Is(err, ErrInRecovery) {
		t.Fatalf("drop in recovery: %v, want ErrInRecovery", err)
	}
	if err := v.SetRecovery(false); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Drop("by_city"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get("by_city"); !errors.Is(err, ErrIndexNotFound) {
		t.Fatalf("get after drop: %v, want ErrIndexNotFound", err)
	}
}
