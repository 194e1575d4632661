package baseline_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	_ "github.com/idxbench/idxbench/engines/all"
	"github.com/idxbench/idxbench/engines/baseline"
	"github.com/idxbench/idxbench/engines/enginetest"
	"github.com/idxbench/idxbench/engines/memory"
)

var small = baseline.Config{Entries: 3000, BatchSize: 100, Updates: 2500, Scans: 40, ScanLen: 50, Seed: 7}

// TestSameContentsAcrossEngines runs the baseline with one seed on every
// registered engine and checks that all end with identical contents (the
// recovery point's): the stream is deterministic and each engine's rollback
// restores it.
func TestSameContentsAcrossEngines(t *testing.T) {
	var want string
	for _, name := range engines.Names() {
		t.Run(name, func(t *testing.T) {
			e, err := engines.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			s, err := e.Open(filepath.Join(t.TempDir(), "s"), engines.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			res, err := baseline.Run(context.Background(), s, small, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", res)
			if res.KVWrites != 2*int64(small.Entries) || res.EntriesPerSec <= 0 || res.ScanP99 < res.ScanP50 || res.ScanEntries <= 0 {
				t.Errorf("implausible result %+v", res)
			}
			got := enginetest.Dump(t, s)
			if want == "" {
				want = got
			} else if got != want {
				t.Errorf("contents after the run differ from %s's", engines.Names()[0])
			}
		})
	}
}

// brokenRollback pretends to roll back but keeps the updated contents.
type brokenRollback struct{ engines.Store }

func (brokenRollback) RollbackTo(uint64) error { return nil }

func TestVerifyCatchesBadRollback(t *testing.T) {
	s, err := memory.Open(t.TempDir(), engines.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = baseline.Run(context.Background(), brokenRollback{s}, small, nil)
	if err == nil {
		t.Fatal("a rollback that did nothing passed verification")
	}
	t.Log(err)
}

func TestMainOnly(t *testing.T) {
	s, err := memory.Open(t.TempDir(), engines.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg := small
	cfg.MainOnly = true
	res, err := baseline.Run(context.Background(), s, cfg, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if res.KVWrites != int64(cfg.Entries) {
		t.Fatalf("KVWrites = %d, want %d", res.KVWrites, cfg.Entries)
	}
}

func TestConfig(t *testing.T) {
	d := baseline.Config{}.WithDefaults()
	if d.Entries != 2_000_000 || d.BatchSize != 1000 || d.KeyMin != 16 || d.KeyMax != 40 || d.Updates != 500_000 || d.Scans != 1000 || d.ScanLen != 1000 {
		t.Fatalf("defaults = %+v", d)
	}
	for _, bad := range []baseline.Config{
		{Entries: -1}, {BatchSize: -5}, {KeyMin: 10, KeyMax: 5}, {Updates: -1},
	} {
		if err := bad.WithDefaults().Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, err := baseline.Run(context.Background(), nil, baseline.Config{KeyMin: 50}, nil); err == nil {
		t.Error("Run accepted an invalid config")
	}
}

// BenchmarkBaseline runs the baseline on every registered engine.
//
//	IDXBENCH_BASELINE_ENTRIES  documents to load (default 200000); updates are
//	                           a quarter of that, scans 1000 of 1000 entries
//	IDXBENCH_BASELINE_MAINONLY 1: Main entries only, as the outside
//	                           measurement wrote
//	IDXBENCH_BASELINE_SYNC     1: every batch synced
//	IDXBENCH_BASELINE_DIR      parent directory for the stores (default a
//	                           temporary directory)
//
// Example: IDXBENCH_BASELINE_ENTRIES=2000000 go test ./engines/baseline -run '^$' -bench 'Baseline/engine=bbolt' -benchtime 1x
func BenchmarkBaseline(b *testing.B) {
	cfg := baseline.Config{Entries: 200_000, Seed: 1}
	if s := os.Getenv("IDXBENCH_BASELINE_ENTRIES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("IDXBENCH_BASELINE_ENTRIES=%q: want a positive integer", s)
		}
		cfg.Entries = n
	}
	cfg.Updates = max(cfg.Entries/4, 1)
	cfg.MainOnly = os.Getenv("IDXBENCH_BASELINE_MAINONLY") == "1"
	if os.Getenv("IDXBENCH_BASELINE_SYNC") == "1" {
		cfg.Durability = engines.Sync
	}
	parent := os.Getenv("IDXBENCH_BASELINE_DIR")
	for _, name := range engines.Names() {
		b.Run("engine="+name, func(b *testing.B) {
			e, err := engines.Lookup(name)
			if err != nil {
				b.Fatal(err)
			}
			var res baseline.Result
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				root := parent
				if root == "" {
					root = b.TempDir()
				}
				dir := filepath.Join(root, fmt.Sprintf("baseline-%s-%d-%d", name, os.Getpid(), i))
				s, err := e.Open(dir, engines.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err = baseline.Run(context.Background(), s, cfg, nil)
				b.StopTimer()
				if err != nil {
					s.Close()
					b.Fatal(err)
				}
				if err := s.Destroy(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(res.EntriesPerSec, "entries/s")
			b.ReportMetric(res.KVPerSec, "kv/s")
			b.ReportMetric(float64(res.LoadCPU.Nanoseconds())/float64(res.Entries), "load_cpu_ns/entry")
			b.ReportMetric(res.UpdatesPerSec, "updates/s")
			b.ReportMetric(ms(res.RecoveryPoint), "rp_ms")
			b.ReportMetric(ms(res.Rollback), "rollback_ms")
			b.ReportMetric(float64(res.ScanP50)/float64(time.Microsecond), "scan_p50_us")
			b.ReportMetric(float64(res.ScanP99)/float64(time.Microsecond), "scan_p99_us")
			b.ReportMetric(res.WriteBytesPerEntry, "B/entry")
			b.ReportMetric(res.EngineBytesPerEntry, "engineB/entry")
			b.ReportMetric(float64(res.DiskBytes), "disk_B")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
