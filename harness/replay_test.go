package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/enginetest"
	"github.com/idxbench/idxbench/harness/measure"
)

// TestReplayReproducesTheStores records a store's calls before and after a
// mark — batches, reads, recovery points, a rollback, a reopen — and checks
// that replaying them into a fresh store gives the same contents, and that
// only the calls after the mark are counted.
func TestReplayReproducesTheStores(t *testing.T) {
	eng, err := engines.Lookup("pebble")
	if err != nil {
		t.Fatal(err)
	}
	var opts engines.Options
	opts.EnsureDefaults()
	rec := newBatchRecorder()
	w := rec.wrap(eng)
	dir := filepath.Join(t.TempDir(), "a")
	s, err := w.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(f func(b *engines.Batch)) {
		t.Helper()
		var b engines.Batch
		f(&b)
		if err := s.Apply(&b, engines.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	apply(func(b *engines.Batch) {
		for i := range 20 {
			b.Set(engines.Main, fmt.Appendf(nil, "k%02d", i), nil)
			b.Set(engines.Back, fmt.Appendf(nil, "d%02d", i), fmt.Appendf(nil, "k%02d", i))
		}
	})
	if err := s.CreateRecoveryPoint(1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	rec.mark()

	if _, _, err := s.Get(engines.Back, []byte("d03")); err != nil {
		t.Fatal(err)
	}
	apply(func(b *engines.Batch) {
		b.Delete(engines.Main, []byte("k03"))
		b.Set(engines.Main, []byte("k99"), nil)
	})
	if err := s.CreateRecoveryPoint(2, []byte("two")); err != nil {
		t.Fatal(err)
	}
	apply(func(b *engines.Batch) { b.Delete(engines.Back, []byte("d04")) })
	if err := s.RollbackTo(2); err != nil {
		t.Fatal(err)
	}
	// A reopened store continues its stream.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = w.Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	apply(func(b *engines.Batch) { b.Set(engines.Meta, []byte("ts"), []byte("v")) })
	if err := s.DropRecoveryPoint(1); err != nil {
		t.Fatal(err)
	}

	streams := rec.streams()
	rec.stop()
	// Stores opened after the recording stopped work unrecorded.
	other, err := w.Open(filepath.Join(t.TempDir(), "b"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Apply(new(engines.Batch), engines.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if len(streams) != 1 || len(streams[0].pre) != 2 || len(streams[0].timed) != 7 {
		t.Fatalf("recorded %d streams, want 1 with 2 calls before the mark and 7 after: %+v", len(streams), streams)
	}
	raw, err := eng.Open(filepath.Join(t.TempDir(), "raw"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	r, err := replayStreams([]engines.Store{raw}, streams)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Ops; n != 4 {
		t.Errorf("replay counted %d batch operations after the mark, want 4", n)
	}
	if got, want := enginetest.Dump(t, raw), enginetest.Dump(t, s); got != want {
		t.Errorf("replayed store differs:\n got %q\nwant %q", got, want)
	}
	rps, err := raw.RecoveryPoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(rps) != 1 || rps[0].ID != 2 || string(rps[0].Meta) != "two" {
		t.Errorf("replayed recovery points %+v, want only 2 (two)", rps)
	}
}

// burnStore spends cpu of CPU time in each Apply until its first read.
type burnStore struct {
	engines.Store
	burn *bool
	cpu  time.Duration
}

func (s burnStore) Apply(b *engines.Batch, d engines.Durability) error {
	if *s.burn {
		for t0 := measure.ProcessCPU(); measure.ProcessCPU()-t0 < s.cpu; {
		}
	}
	return s.Store.Apply(b, d)
}

func (s burnStore) Get(ks engines.Keyspace, key []byte) ([]byte, bool, error) {
	*s.burn = false
	return s.Store.Get(ks, key)
}

// TestReplayCPUTimesTheMeasuredCalls: the raw side's CPU time covers the
// calls its wall time covers, not the untimed replay of the calls before
// the phase (pipeline_to_raw_cpu_ratio compares like with like). The
// prefix's batches burn 0.4 s of CPU; the measured ones none.
func TestReplayCPUTimesTheMeasuredCalls(t *testing.T) {
	eng, _ := engines.Lookup("memory")
	var opts engines.Options
	opts.EnsureDefaults()
	inner, err := eng.Open(filepath.Join(t.TempDir(), "s"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	burn := true
	store := burnStore{Store: inner, burn: &burn, cpu: 100 * time.Millisecond}
	batch := func(k string) *engines.Batch {
		var b engines.Batch
		b.Set(engines.Main, []byte(k), nil)
		return &b
	}
	var pre, timed []recordedOp
	for i := range 4 {
		pre = append(pre, recordedOp{kind: recApply, b: batch(fmt.Sprint("p", i))})
		timed = append(timed, recordedOp{kind: recApply, b: batch(fmt.Sprint("t", i))})
	}
	// The burn stops when the measured calls start: their first call is a
	// read, which switches it off.
	timed = append([]recordedOp{{kind: recGet, id: uint64(engines.Main), meta: []byte("x")}}, timed...)
	r, err := replayStreams([]engines.Store{store}, []replayStream{{pre: pre, timed: timed}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 4 {
		t.Errorf("ops = %d, want 4", r.Ops)
	}
	if r.CPU >= 200*time.Millisecond {
		t.Errorf("raw replay CPU = %v over calls that burn none: the untimed prefix (0.4 s of CPU) was counted", r.CPU)
	}
}

// TestCPUProfilePerPhase: a cell with a profile directory writes one CPU
// profile per phase, and one of a raw_ratio phase's replay.
func TestCPUProfilePerPhase(t *testing.T) {
	dir := t.TempDir()
	scen := []byte(`
name: profiled
workload: {docs: 500, vbuckets: 8}
phases:
  - type: load
  - {type: ingest, mutations: 1000, raw_ratio: true}
`)
	job := CellJob{Engine: "memory", DataDir: t.TempDir(), DirLabel: "d0", Cores: 2, Scenario: scen, Quiet: true, ProfileDir: dir}
	cell, err := RunCell(context.Background(), job, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if r := cell.Phase("ingest").Metrics["pipeline_to_raw_ratio"]; r <= 0 {
		t.Errorf("pipeline_to_raw_ratio = %v", r)
	}
	for _, phase := range []string{"load", "ingest", "ingest-raw-replay"} {
		b, err := os.ReadFile(filepath.Join(dir, "memory-d0-c2-r0-"+phase+".pprof"))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("profile of %s is not a gzipped pprof profile (%d bytes)", phase, len(b))
		}
	}
}
