package node_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/indexer/node"
	"github.com/idxbench/idxbench/projector/kvnode"
	"github.com/idxbench/idxbench/workload"
)

// TestClusterReplicas runs two index nodes on one KV node: by_city has a
// replica on each, the primary index lives on b alone. Both replicas
// equal the oracle; with b closed, every scan of by_city is still
// answered (from a's replica), the primary index's scans fail naming the
// replica, and with b taken out of service the cluster reports a alone.
func TestClusterReplicas(t *testing.T) {
	ctx := context.Background()
	spec := workload.DefaultSpec()
	spec.Seed, spec.Docs, spec.Vbuckets = seed(t), 400, 8
	kv, err := kvnode.New(spec, kvnode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	oracle := workload.NewOracle(kv.Bucket())
	eng, err := engines.Lookup("memory")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b"}
	var members []node.API
	for range names {
		n, err := node.Open(node.Config{KV: kv, Indexer: indexer.Config{
			Engine: eng, Dir: t.TempDir(), NumVbuckets: spec.Vbuckets, Clock: kv.Now,
			SnapshotInterval: 10 * time.Millisecond, PersistInterval: 20 * time.Millisecond,
		}})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, n)
	}
	cl := node.NewCluster(names, members)
	if err := cl.Place(byCity.ID, []string{"b", "a"}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Place(primary.ID, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Place(byAge.ID, []string{"c"}); err == nil {
		t.Fatal("a placement on a node outside the cluster was accepted")
	}
	for _, d := range []indexer.InstanceDefn{byCity, primary} {
		if err := cl.CreateInstance(d); err != nil {
			t.Fatal(err)
		}
	}
	kv.Load()
	if err := cl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range 500 {
		kv.Apply(kv.Next())
	}
	if err := cl.WaitCaughtUp(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		res, err := cl.Member(name).Scan(ctx, indexer.ScanRequest{InstID: byCity.ID, Kind: indexer.ScanAll})
		if err != nil {
			t.Fatalf("replica on %s: %v", name, err)
		}
		want, err := oracle.Expected(byCity.Defn, res.TS)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 || !sameEntries(res.Entries, want) {
			t.Fatalf("replica on %s: %d entries, the oracle %d (or they differ)", name, len(res.Entries), len(want))
		}
	}
	if _, err := cl.Member("a").Scan(ctx, indexer.ScanRequest{InstID: primary.ID, Kind: indexer.ScanCount}); err == nil {
		t.Fatal("node a answers for the primary index, which the placement put on b alone")
	}
	if _, err := cl.Resume(ctx, cl.HWT()); !errors.Is(err, node.ErrPerNode) {
		t.Fatalf("Resume on a cluster of two: %v, want ErrPerNode", err)
	}

	// A replica that hangs (a stopped process) costs a scan the replica
	// timeout, then is tried last while suspect.
	cl.Replace("b", hanging{members[1]})
	cl.ReplicaTimeout, cl.SuspectFor = 50*time.Millisecond, time.Hour
	before := cl.Failovers()
	for range 4 {
		if _, err := cl.Scan(ctx, indexer.ScanRequest{InstID: byCity.ID, Kind: indexer.ScanCount}); err != nil {
			t.Fatalf("scan with one replica hanging: %v", err)
		}
	}
	if got := cl.Failovers() - before; got != 1 {
		t.Fatalf("%d failovers in four scans with one replica hanging, want 1 (then it is suspect)", got)
	}
	cl.Replace("b", members[1])
	cl.SuspectFor = time.Nanosecond

	if err := members[1].Close(); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		res, err := cl.Scan(ctx, indexer.ScanRequest{InstID: byCity.ID, Kind: indexer.ScanCount, Consistency: indexer.RequestPlus, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("scan with one replica closed: %v", err)
		}
		if res.Count == 0 {
			t.Fatal("a count of zero from the surviving replica")
		}
	}
	if cl.Failovers() == 0 {
		t.Fatal("ten scans over two replicas, one closed, and no failover counted")
	}
	if _, err := cl.Scan(ctx, indexer.ScanRequest{InstID: primary.ID, Kind: indexer.ScanCount}); err == nil {
		t.Fatal("a scan of an index whose only replica is closed succeeded")
	}
	cl.SetDown("b", true)
	if err := cl.Failure(); err != nil {
		t.Fatalf("a node out of service still fails the cluster: %v", err)
	}
	if _, err := cl.Scan(ctx, indexer.ScanRequest{InstID: primary.ID, Kind: indexer.ScanCount}); err == nil {
		t.Fatal("a scan of an index whose only replica is down succeeded")
	}
	if got := cl.Replicas(byCity.ID); !reflect.DeepEqual(got, []string{"b", "a"}) {
		t.Fatalf("Replicas = %v", got)
	}
	if err := members[0].Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStatsMergeCoversEveryField fails when Stats gains a field Merge
// does not combine.
func TestStatsMergeCoversEveryField(t *testing.T) {
	lowest := map[string]bool{"HWTSeqnos": true, "SnapshotSeqnos": true}
	typ := reflect.TypeOf(indexer.Stats{})
	for i := range typ.NumField() {
		var s, o indexer.Stats
		s0 := reflect.ValueOf(&s).Elem().Field(i)
		f := reflect.ValueOf(&o).Elem().Field(i)
		switch f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(5)
			s0.SetInt(7)
		case reflect.Uint64:
			f.SetUint(5)
			s0.SetUint(7)
		default:
			t.Fatalf("Stats.%s: a %s; teach this test and Merge", typ.Field(i).Name, f.Kind())
		}
		s.Merge(o)
		got := reflect.ValueOf(s).Field(i)
		var v int64
		if got.Kind() == reflect.Uint64 {
			v = int64(got.Uint())
		} else {
			v = got.Int()
		}
		if lowest[typ.Field(i).Name] {
			if v != 5 {
				t.Errorf("Stats.%s merged to %d, want the lower, 5", typ.Field(i).Name, v)
			}
		} else if v != 12 && v != 7 {
			t.Errorf("Stats.%s merged to %d, want the sum or the larger", typ.Field(i).Name, v)
		} else if v == 7 && typ.Field(i).Name != "SinceLastSnapshot" {
			t.Errorf("Stats.%s not merged", typ.Field(i).Name)
		}
	}
}

// hanging is an index node whose scans never answer.
type hanging struct{ node.API }

func (hanging) Scan(ctx context.Context, _ indexer.ScanRequest) (*indexer.ScanResult, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
