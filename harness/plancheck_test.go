package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/enginetest"
)

func TestCheckPlan(t *testing.T) {
	sc, _, err := LoadScenario("rollback")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := EffectiveWorkload(sc, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPlan(sc, spec, 1<<40); err != nil {
		t.Fatalf("the rollback scenario on 1 TiB: %v", err)
	}
	// Too little memory for the documents: refused, stating the estimate.
	err = checkPlan(sc, spec, spec.MemoryEstimate()-1)
	if err == nil || !strings.Contains(err.Error(), "documents need about") {
		t.Errorf("memory below the estimate: %v", err)
	}
	// A rollback of more vbuckets than the workload has.
	small := spec
	small.Vbuckets = 4
	err = checkPlan(sc, small, 0)
	if err == nil || !strings.Contains(err.Error(), "the workload has 4") {
		t.Errorf("rollback over 4 vbuckets: %v", err)
	}
}

// TestCheckSpace: a data dir whose filesystem has less free space than the
// scenario's estimated footprint is refused in the planning step, the
// error stating the estimate and the free space; --no-space-check skips it.
func TestCheckSpace(t *testing.T) {
	sc, _, err := LoadScenario("ingest")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := EffectiveWorkload(sc, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() + "/not/yet"
	free, err := engines.FreeBytes(filepath.Dir(filepath.Dir(dir)))
	if err != nil {
		t.Fatal(err)
	}
	// Enough documents to need more than the free space on bbolt.
	spec.Docs = int(free/int64(spec.EntryBytes(spec.Indexes[0]))) + 1
	err = checkSpace(dir, []string{"memory", "bbolt"}, sc, spec)
	if err == nil || !strings.Contains(err.Error(), "needs about") || !strings.Contains(err.Error(), "for bbolt") ||
		!strings.Contains(err.Error(), "free") || strings.Contains(err.Error(), "\n") {
		t.Errorf("checkSpace with %d documents: %v", spec.Docs, err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("checkSpace created the data dir")
	}
	// The memory engine keeps nothing on disk.
	if err := checkSpace(dir, []string{"memory"}, sc, spec); err != nil {
		t.Errorf("memory: %v", err)
	}
	// Footprints grow with the documents, and pebble's and bbolt's with
	// the recovery points kept.
	small := spec
	small.Docs = 1000
	for _, e := range []string{"pebble", "bbolt", "badger"} {
		a, _ := diskFootprint(e, sc, small)
		b, _ := diskFootprint(e, sc, spec)
		if !(0 < a && a < b) {
			t.Errorf("%s: footprint %d for 1000 documents, %d for %d", e, a, b, spec.Docs)
		}
	}
	more := *sc
	more.Indexer.MaxRollbacks = 20
	for _, e := range []string{"pebble", "bbolt"} {
		a, _ := diskFootprint(e, sc, small)
		b, _ := diskFootprint(e, &more, small)
		if b <= a {
			t.Errorf("%s: footprint %d keeping 20 recovery points, %d keeping 5", e, b, a)
		}
	}
}

// TestPrepareRefusesASmallDisk: Prepare refuses a data dir on a filesystem
// smaller than the scenario's footprint, before anything is created there
// (root only: a small tmpfs), and runs with NoSpaceCheck.
func TestPrepareRefusesASmallDisk(t *testing.T) {
	mnt := enginetest.SmallDisk(t, 16)
	cfg := RunConfig{Engines: []string{"pebble"}, Scenario: "ingest", Dirs: []string{mnt + "/d"}, Out: t.TempDir() + "/out"}
	_, err := Prepare(cfg)
	if err == nil || !strings.Contains(err.Error(), "data dir "+mnt+"/d: the scenario needs about") || !strings.Contains(err.Error(), "MiB is free") {
		t.Fatalf("Prepare on a 16 MiB disk: %v", err)
	}
	if ents, _ := os.ReadDir(mnt); len(ents) != 0 {
		t.Errorf("a refused plan created %v", ents)
	}
	cfg.NoSpaceCheck = true
	if _, err := Prepare(cfg); err != nil {
		t.Fatalf("Prepare with NoSpaceCheck: %v", err)
	}
}
