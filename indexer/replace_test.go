package indexer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/workload/defn"
)

// TestOpenSliceRemovesCrashLeftovers checks what a crash inside
// replaceEmpty can leave: the slice dir missing, the old store renamed
// aside, a new store's dir created but never given its marker. Opening the
// slice starts it empty and removes both leftovers.
func TestOpenSliceRemovesCrashLeftovers(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engines.Engine) {
		dir := t.TempDir()
		slice := filepath.Join(dir, "a", "p0")
		old, err := e.Open(slice+oldSuffix, engines.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var b engines.Batch
		b.Set(engines.Main, []byte("stale"), nil)
		if err := old.Apply(&b, engines.Sync); err != nil {
			t.Fatal(err)
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(slice+freshSuffix, 0o755); err != nil {
			t.Fatal(err)
		}
		ix := newTestIndexer(t, e, Config{NumVbuckets: 2, Dir: dir})
		mustCreate(t, ix, 1, defn.IndexDefn{Name: "a", SecExprs: []string{"k"}})
		for _, d := range []string{slice + oldSuffix, slice + freshSuffix} {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Errorf("leftover %s still there (%v)", d, err)
			}
		}
		if r := scanAll(t, ix, "a"); r.Count != 0 {
			t.Fatalf("slice reopened with %d entries, want none", r.Count)
		}
	})
}
