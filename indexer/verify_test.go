package indexer

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// TestVerifyOnOpen: a slice whose store the indexer's own checks find
// inconsistent is rebuilt from zero when VerifyOnOpen asks for the check
// that finds it, and served as it is when it does not; a healthy slice
// passes every level. After the rebuild, replaying the streams gives the
// model's index.
func TestVerifyOnOpen(t *testing.T) {
	// write puts raw key-values into a closed slice's store.
	write := func(t *testing.T, e engines.Engine, dir string, fill func(b *engines.Batch)) {
		t.Helper()
		st, err := e.Open(dir, *new(engines.Options).EnsureDefaults())
		if err != nil {
			t.Fatal(err)
		}
		var b engines.Batch
		fill(&b)
		if err := st.Apply(&b, engines.Sync); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		// damage changes the closed slice i/p1 (nil: leaves it healthy).
		damage func(t *testing.T, e engines.Engine, dir string)
		// rebuiltAt is the lowest level that finds it ("" none does).
		rebuiltAt string
	}{
		{"healthy", nil, ""},
		{"back entry without main entry", func(t *testing.T, e engines.Engine, dir string) {
			write(t, e, dir, func(b *engines.Batch) { b.Set(engines.Back, []byte("ghost"), enc(t, 1.0, 2.0)) })
		}, VerifyFull},
		{"main entry without back entry", func(t *testing.T, e engines.Engine, dir string) {
			write(t, e, dir, func(b *engines.Batch) {
				b.Set(engines.Main, appendMainKey(nil, enc(t, 9.0, 9.0), []byte("orphan")), nil)
			})
		}, VerifyFull},
		{"stored vector malformed", func(t *testing.T, e engines.Engine, dir string) {
			ts := upr.NewTsVbuuid(4)
			ts.Seqnos[0], ts.Vbuuids[0], ts.Snapshots[0] = 9, 7, [2]upr.Seqno{1, 3}
			b, err := ts.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			write(t, e, dir, func(bt *engines.Batch) { bt.Set(engines.Meta, metaTS, b) })
		}, VerifyQuick},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, e engines.Engine) {
				if !e.Real {
					t.Skip("the memory engine keeps nothing across a restart")
				}
				// The level that finds the damage and the one below it
				// (a healthy store: both checking levels).
				levels := []string{VerifyQuick, VerifyFull}
				if tc.rebuiltAt == VerifyQuick {
					levels = []string{VerifyNone, VerifyQuick}
				}
				for _, level := range levels {
					t.Run(level, func(t *testing.T) {
						dir := t.TempDir()
						cfg := Config{Engine: e, Dir: dir, NumVbuckets: 4, PersistInterval: 1, MaxRollbacks: 2}
						ix, err := New(cfg)
						if err != nil {
							t.Fatal(err)
						}
						d := defn.IndexDefn{Name: "i", SecExprs: []string{"a", "b"}, Partitions: 2}
						mustCreate(t, ix, 1, d)
						g := newGen(4)
						_, sent := rounds(t, ix, g, 3, 0)
						if err := ix.Close(); err != nil {
							t.Fatal(err)
						}
						if tc.damage != nil {
							tc.damage(t, e, filepath.Join(dir, "i", "p1"))
						}
						cfg.VerifyOnOpen = level
						rec := &recorder{}
						cfg.Recorder = rec
						ix2 := newTestIndexer(t, e, cfg)
						mustCreate(t, ix2, 1, d)
						want := int64(0)
						if tc.rebuiltAt != "" && (level == VerifyFull || level == tc.rebuiltAt) {
							want = 1
						}
						if n := ix2.Stats().SlicesRebuilt; n != want {
							t.Fatalf("SlicesRebuilt = %d with verify_on_open %s, want %d", n, level, want)
						}
						if level != VerifyNone && want == 0 && rec.count("verify_on_open") != 2 {
							t.Fatalf("verify_on_open timed %d times, want once per slice (2)", rec.count("verify_on_open"))
						}
						if want == 0 {
							return // served as it is: what a check did not find stays
						}
						restart, err := ix2.Recover()
						if err != nil {
							t.Fatal(err)
						}
						if restart.Sum() != 0 {
							t.Fatalf("restart at %v, want zero (the rebuilt slice holds nothing)", restart.Seqnos)
						}
						feed(t, ix2, replay(sent, restart))
						step(t, ix2)
						r := scanAll(t, ix2, "i")
						wantEntries(t, r, modelEntries(t, g.log, 1, false, r.TS))
					})
				}
			})
		})
	}
}

func TestVerifyOnOpenSetting(t *testing.T) {
	cfg := Config{Engine: memoryEngine(t), Dir: t.TempDir(), VerifyOnOpen: "thorough"}
	if err := cfg.EnsureDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "verify on open") {
		t.Fatalf("verify on open %q: %v", cfg.VerifyOnOpen, err)
	}
	var def Config
	if s := def.EnsureDefaults().String(); !strings.Contains(s, "verify_on_open=none") {
		t.Fatalf("String() = %q lacks the default verify_on_open", s)
	}
}

func TestCheckVector(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(ts *upr.TsVbuuid)
		ok   bool
	}{
		{"zero", func(*upr.TsVbuuid) {}, true},
		{"aligned", func(ts *upr.TsVbuuid) { ts.Seqnos[1], ts.Vbuuids[1], ts.Snapshots[1] = 5, 3, [2]upr.Seqno{4, 5} }, true},
		{"inside a snapshot", func(ts *upr.TsVbuuid) { ts.Seqnos[1], ts.Vbuuids[1], ts.Snapshots[1] = 4, 3, [2]upr.Seqno{4, 9} }, true},
		{"past the snapshot", func(ts *upr.TsVbuuid) { ts.Seqnos[1], ts.Vbuuids[1], ts.Snapshots[1] = 6, 3, [2]upr.Seqno{4, 5} }, false},
		{"snapshot backwards", func(ts *upr.TsVbuuid) { ts.Snapshots[0] = [2]upr.Seqno{5, 4} }, false},
		{"no branch", func(ts *upr.TsVbuuid) { ts.Seqnos[0], ts.Snapshots[0] = 2, [2]upr.Seqno{1, 2} }, false},
	} {
		ts := upr.NewTsVbuuid(2)
		tc.set(ts)
		if err := checkVector(ts); (err == nil) != tc.ok {
			t.Errorf("%s: checkVector = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
