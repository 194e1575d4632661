package harness

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/engines/enginetest"
)

// TestRunOnAFullDisk runs the ingest scenario on a small tmpfs for each
// disk engine (root only; skipped otherwise): the run must end with
// ErrCellFailed, one line naming the store's directory and "disk full", no
// panic, and the results directory written.
func TestRunOnAFullDisk(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, engine := range []string{"pebble", "badger", "bbolt"} {
		t.Run(engine, func(t *testing.T) {
			mnt := enginetest.SmallDisk(t, 64)
			out := t.TempDir() + "/out"
			p, err := Prepare(RunConfig{Engines: []string{engine}, Scenario: "ingest", Dirs: []string{mnt + "/d"}, Out: out,
				Verify: true, Quiet: true, Executable: exe, Overrides: Overrides{Docs: ptr(20000)},
				// The point is the disk filling during the run: past the
				// check of the estimated footprint before it.
				NoSpaceCheck: true})
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr strings.Builder
			_, err = p.Run(context.Background(), &stdout, &stderr)
			if !errors.Is(err, ErrCellFailed) {
				t.Fatalf("run on a full disk: %v, want ErrCellFailed\n%s", err, stderr.String())
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, "disk full") || !strings.Contains(msg, mnt) {
				t.Errorf("error %q: want one line naming the directory and the disk full", msg)
			}
			for _, bad := range []string{"panic", "goroutine ", "SIGBUS"} {
				if strings.Contains(stderr.String(), bad) {
					t.Errorf("the run printed %q:\n%s", bad, stderr.String())
				}
			}
			if _, err := os.Stat(out + "/results.json"); err != nil {
				t.Errorf("no results written: %v", err)
			}
			t.Log(msg)
		})
	}
}
