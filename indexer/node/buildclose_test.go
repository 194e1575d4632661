package node_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/idxbench/idxbench/indexer"
)

// TestBuildDiscarded closes a build in CATCHUP without merging it (a
// catch-up discarded after a KV rollback or a restart): its slices go, so
// building the index again starts from an empty slice, and that build
// merges and verifies. The disk engine shows what the first build left.
func TestBuildDiscarded(t *testing.T) {
	ctx := context.Background()
	c := newClusterOn(t, "inproc", "bbolt", seed(t), byCity)
	c.kv.Load()
	if err := c.ix.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c.mutate(200)
	b, err := c.ix.StartBuild(ctx, []indexer.InstanceDefn{byAge})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(ctx, c.kv.CurrentSeqnos(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(c.cfg.Indexer.Dir, byAge.Defn.Name)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the build has no slices at %s: %v", dir, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Fatalf("the discarded build left %d entries in %s", len(left), dir)
	}
	c.mutate(200)
	b, err = c.ix.StartBuild(ctx, []indexer.InstanceDefn{byAge})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WaitFor(ctx, c.kv.CurrentSeqnos(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.Merge(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	c.insts = append(c.insts, byAge)
	c.mutate(100)
	c.verify(ctx)
}
