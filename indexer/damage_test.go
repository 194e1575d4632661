package indexer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// largestFile returns the largest regular file under dir that is the
// engine's (not the marker or seal).
func largestFile(t *testing.T, dir string) string {
	t.Helper()
	var best string
	var size int64 = -1
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		switch d.Name() {
		case engines.MarkerFile, engines.SealFile, engines.BallastFile:
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() > size {
			best, size = path, fi.Size()
		}
		return nil
	})
	if err != nil || best == "" {
		t.Fatalf("no file to damage under %s: %v", dir, err)
	}
	return best
}

// TestDamagedSliceRebuilt: a restarted indexer whose slice store is
// damaged rebuilds that slice empty instead of failing or serving it: the
// restart vector is zero, Stats counts the rebuild, and replaying the
// streams gives the full index again. Damage found on open (a file cut
// short after a clean close, a store marked damaged while open) and
// damage met while restoring (a rollback that fails with ErrCorrupt) are
// both covered.
func TestDamagedSliceRebuilt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, sliceDir string)
	}{
		{"file cut short", func(t *testing.T, sliceDir string) {
			path := largestFile(t, sliceDir)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"marked damaged", func(t *testing.T, sliceDir string) {
			if err := engines.MarkDamaged(sliceDir, errors.New("a checksum failed while reading")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, e engines.Engine) {
				if !e.Real {
					t.Skip("the memory engine keeps nothing across a restart")
				}
				dir := t.TempDir()
				cfg := Config{Engine: e, Dir: dir, NumVbuckets: 4, PersistInterval: 1, MaxRollbacks: 2, BackIndexCacheBytes: 1 << 20}
				ix, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				d := defn.IndexDefn{Name: "i", SecExprs: []string{"a", "b"}, Partitions: 2}
				mustCreate(t, ix, 1, d)
				g := newGen(4)
				snaps, sent := rounds(t, ix, g, 3, 0)
				if err := ix.Close(); err != nil {
					t.Fatal(err)
				}
				tc.damage(t, filepath.Join(dir, "i", "p1"))

				ix2 := newTestIndexer(t, e, cfg)
				mustCreate(t, ix2, 1, d)
				if n := ix2.Stats().SlicesRebuilt; n != 1 {
					t.Fatalf("SlicesRebuilt = %d after opening one damaged slice, want 1", n)
				}
				restart, err := ix2.Recover()
				if err != nil {
					t.Fatal(err)
				}
				if restart.Sum() != 0 {
					t.Fatalf("restart at %v, want zero (the rebuilt slice holds nothing)", restart.Seqnos)
				}
				if hold := ix2.RecoveryHold(); hold == nil || !hold.Equal(snaps[2]) {
					t.Fatalf("recovery hold %v, want the intact slice's %v", hold, snaps[2].Seqnos)
				}
				for _, leftover := range []string{freshSuffix, oldSuffix} {
					if _, err := os.Stat(filepath.Join(dir, "i", "p1"+leftover)); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("leftover %s: %v", leftover, err)
					}
				}
				feed(t, ix2, replay(sent, restart))
				step(t, ix2)
				r := scanAll(t, ix2, "i")
				if !equalSeqnos(r.TS.Seqnos, g.seq) {
					t.Fatalf("after the replay at %v, stream at %v", r.TS.Seqnos, g.seq)
				}
				wantEntries(t, r, modelEntries(t, g.log, 1, false, r.TS))
			})
		})
	}
}

// failingEngine is the memory engine whose Open fails once per directory
// with openErr, and whose stores' RollbackTo fails with rollbackErr.
func failingEngine(t *testing.T, openErr, rollbackErr error) engines.Engine {
	e := engines.WrapStores(memoryEngine(t), func(dir string, s engines.Store) engines.Store {
		return rollbackFails{Store: s, err: rollbackErr}
	})
	failed := map[string]bool{}
	open := e.Open
	e.Open = func(dir string, o engines.Options) (engines.Store, error) {
		if openErr != nil && !failed[dir] && !strings.HasSuffix(dir, freshSuffix) {
			failed[dir] = true
			return nil, fmt.Errorf("open %q: %w", dir, openErr)
		}
		return open(dir, o)
	}
	return e
}

type rollbackFails struct {
	engines.Store
	err error
}

func (r rollbackFails) RollbackTo(id uint64) error {
	if r.err != nil {
		return r.err
	}
	return r.Store.RollbackTo(id)
}

// TestOnlyDamageRebuilds: a slice is rebuilt only when its store is
// damaged, and only when the directory is the engine's. A full disk or an
// I/O error — even reported together with corruption — fails the index
// creation, naming the slice, and leaves the directory as it was; so does
// a directory another engine owns.
func TestOnlyDamageRebuilds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		openErr error
		owner   string // the marker's engine; "" the memory engine's
		rebuilt bool
	}{
		{name: "corrupt", openErr: engines.ErrCorrupt, rebuilt: true},
		{name: "disk full", openErr: fmt.Errorf("%w: %w", engines.ErrDiskFull, syscall.ENOSPC)},
		{name: "corrupt but the disk is full", openErr: fmt.Errorf("%w: %w", engines.ErrCorrupt, syscall.ENOSPC)},
		{name: "corrupt but an I/O error", openErr: fmt.Errorf("%w: %w", engines.ErrCorrupt, syscall.EIO)},
		{name: "corrupt, another engine's directory", openErr: engines.ErrCorrupt, owner: "pebble"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sliceDir := filepath.Join(dir, "i", "p0")
			owner := tc.owner
			if owner == "" {
				owner = memoryEngine(t).Name
			}
			if _, err := engines.ClaimDir(sliceDir, owner); err != nil {
				t.Fatal(err)
			}
			canary := filepath.Join(sliceDir, "canary")
			if err := os.WriteFile(canary, []byte("keep"), 0o644); err != nil {
				t.Fatal(err)
			}
			ix := newTestIndexer(t, failingEngine(t, tc.openErr, nil), Config{Dir: dir})
			err := ix.CreateInstance(InstanceDefn{ID: 1, Defn: defn.IndexDefn{Name: "i", SecExprs: []string{"a"}}})
			_, cerr := os.Stat(canary)
			switch {
			case tc.rebuilt && err != nil:
				t.Fatalf("create: %v", err)
			case tc.rebuilt && !errors.Is(cerr, fs.ErrNotExist):
				t.Fatalf("the damaged store was not replaced: %v", cerr)
			case tc.rebuilt && ix.Stats().SlicesRebuilt != 1:
				t.Fatalf("SlicesRebuilt = %d, want 1", ix.Stats().SlicesRebuilt)
			case !tc.rebuilt && (err == nil || !strings.Contains(err.Error(), `"i/p0"`)):
				t.Fatalf("create = %v, want an error naming the slice", err)
			case !tc.rebuilt && cerr != nil:
				t.Fatalf("the directory was touched: %v", cerr)
			case !tc.rebuilt && ix.Stats().SlicesRebuilt != 0:
				t.Fatalf("SlicesRebuilt = %d, want 0", ix.Stats().SlicesRebuilt)
			}
			if owner, err := engines.ReadMarker(sliceDir); err != nil || (tc.owner != "" && owner != tc.owner) {
				t.Fatalf("marker after: %q, %v", owner, err)
			}
		})
	}
}

// TestRollbackMeetsDamage: a slice whose rollback reports damage is
// rebuilt empty during the rollback flow instead of failing it: its
// restore vector is zero, and the replay restores it.
func TestRollbackMeetsDamage(t *testing.T) {
	e := failingEngine(t, nil, fmt.Errorf("roll back: %w", engines.ErrCorrupt))
	ix := newTestIndexer(t, e, Config{NumVbuckets: 4, PersistInterval: 1, MaxRollbacks: 3})
	mustCreate(t, ix, 1, defn.IndexDefn{Name: "i", SecExprs: []string{"a", "b"}, Partitions: 2})
	g := newGen(4)
	_, sent := rounds(t, ix, g, 3, 0)
	restart, err := ix.Rollback(map[upr.Vbno]upr.Seqno{0: 1000, 1: 1000, 2: 1000, 3: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if restart.Sum() != 0 {
		t.Fatalf("restart at %v, want zero", restart.Seqnos)
	}
	if n := ix.Stats().SlicesRebuilt; n != 2 {
		t.Fatalf("SlicesRebuilt = %d, want 2 (both partitions' rollbacks failed)", n)
	}
	feed(t, ix, replay(sent, restart))
	step(t, ix)
	r := scanAll(t, ix, "i")
	if !equalSeqnos(r.TS.Seqnos, g.seq) {
		t.Fatalf("after the replay at %v, stream at %v", r.TS.Seqnos, g.seq)
	}
	wantEntries(t, r, modelEntries(t, g.log, 1, false, r.TS))
}

// TestJoinJobErrors: one cause failing many slices is reported once with
// the other slices' names; different causes are all kept.
func TestJoinJobErrors(t *testing.T) {
	full := func(s string) error {
		return fmt.Errorf("slice %q: apply: %w: %w", s, engines.ErrDiskFull, syscall.ENOSPC)
	}
	job := func(name string, err error) *sliceJob { return &sliceJob{s: &slice{name: name}, err: err} }
	for _, tc := range []struct {
		name string
		jobs []*sliceJob
		want []string // substrings, in order
		is   []error
	}{
		{name: "none", jobs: []*sliceJob{job("a/p0", nil)}},
		{name: "one", jobs: []*sliceJob{job("a/p0", full("a/p0"))}, want: []string{`slice "a/p0"`}, is: []error{syscall.ENOSPC}},
		{
			name: "one cause, three slices",
			jobs: []*sliceJob{job("a/p0", full("a/p0")), job("a/p1", nil), job("a/p2", full("a/p2")), job("b/p0", full("b/p0"))},
			want: []string{`slice "a/p0"`, "the same in 2 more slices: a/p2, b/p0"},
			is:   []error{engines.ErrDiskFull},
		},
		{
			name: "two causes",
			jobs: []*sliceJob{job("a/p0", full("a/p0")), job("a/p1", fmt.Errorf("a/p1: %w", engines.ErrCorrupt)), job("a/p2", full("a/p2"))},
			want: []string{`slice "a/p0"`, "the same in 1 more slices: a/p2", "a/p1: store is corrupt"},
			is:   []error{engines.ErrDiskFull, engines.ErrCorrupt},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := joinJobErrors(tc.jobs)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("joinJobErrors = %v, want nil", err)
				}
				return
			}
			msg := err.Error()
			at := 0
			for _, w := range tc.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("error %q lacks %q (in order)", msg, w)
				}
				at += i
			}
			if strings.Count(msg, "no space left") > 1 {
				t.Errorf("the disk-full cause repeats: %q", msg)
			}
			for _, is := range tc.is {
				if !errors.Is(err, is) {
					t.Errorf("error does not wrap %v", is)
				}
			}
		})
	}
}
