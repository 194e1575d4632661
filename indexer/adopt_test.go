package indexer

import (
	"errors"
	"testing"

	"github.com/idxbench/idxbench/workload/defn"
)

func TestAdoptInstanceKeepsContents(t *testing.T) {
	e := memoryEngine(t)
	dir := t.TempDir()
	maint := newTestIndexer(t, e, Config{NumVbuckets: 2, Dir: dir})
	build := newTestIndexer(t, e, Config{NumVbuckets: 2, Dir: dir})
	mustCreate(t, maint, 1, defn.IndexDefn{Name: "old", SecExprs: []string{"k"}})
	mustCreate(t, build, 2, defn.IndexDefn{Name: "new", SecExprs: []string{"k"}, Partitions: 2})
	g := newGen(2)
	g.upsert("d1", target{inst: 2, key: enc(t, 1.0)})
	g.upsert("d2", target{inst: 2, part: 1, key: enc(t, 2.0)})
	feed(t, build, g.batch())
	step(t, build)
	held, err := build.acquire() // a scan of the INIT indexer in progress
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- maint.AdoptInstance(build, 2) }()
	if err := held.release(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := scanAll(t, maint, "new"); r.Count != 2 {
		t.Fatalf("adopted index holds %v, want d1 d2", docids(r.Entries))
	}
	if err := maint.AdoptInstance(build, 2); !errors.Is(err, ErrNoSuchIndex) {
		t.Fatalf("second adopt: %v", err)
	}
	if st := build.Stats(); st.Instances != 0 {
		t.Fatalf("the INIT indexer still has %d instances", st.Instances)
	}
	// A name clash leaves the instance with its indexer, still scannable.
	mustCreate(t, build, 4, defn.IndexDefn{Name: "old", SecExprs: []string{"k"}})
	g.upsert("d3", target{inst: 4, key: enc(t, 3.0)})
	feed(t, build, g.batch())
	step(t, build)
	if err := maint.AdoptInstance(build, 4); err == nil {
		t.Fatal("adopted an index whose name the receiver has")
	}
	if r := scanAll(t, build, "old"); r.Count != 1 {
		t.Fatalf("refused index lost by its indexer: %v", docids(r.Entries))
	}
	other := newTestIndexer(t, e, Config{NumVbuckets: 2})
	mustCreate(t, other, 3, defn.IndexDefn{Name: "x", SecExprs: []string{"k"}})
	if err := maint.AdoptInstance(other, 3); err == nil {
		t.Fatal("adopted from an indexer over another directory")
	}
}
