package harness

import (
	"context"
	"strings"
	"testing"
)

// TestCrashTestRestartsAfterATruncatedFile: after each kill a store file
// is cut short; every restart must verify (nothing else lost), damage met
// at open is rebuilt from zero and reported, and each line of output is
// one line — no panic, no signal, no goroutine dump.
func TestCrashTestRestartsAfterATruncatedFile(t *testing.T) {
	for _, engine := range []string{"pebble", "badger", "bbolt"} {
		t.Run(engine, func(t *testing.T) {
			cfg := testCrashConfig(t, engine, 2)
			cfg.Damage = DamageTruncate
			var out strings.Builder
			sum, err := RunCrashTest(context.Background(), cfg, &out)
			t.Log(out.String())
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if n := strings.Count(out.String(), "before the restart, cut "); n != cfg.Cycles {
				t.Errorf("%d files cut short, want one per kill (%d)", n, cfg.Cycles)
			}
			if len(sum.Recoveries) != cfg.Cycles+1 {
				t.Fatalf("%d recoveries, want %d", len(sum.Recoveries), cfg.Cycles+1)
			}
			var rebuilt int64
			for _, r := range sum.Recoveries {
				if r.Entries == 0 {
					t.Errorf("cycle %d verified no entries", r.Cycle)
				}
				rebuilt += r.Rebuilt
			}
			// bbolt's largest file is its one data file: cut short, it is
			// refused at open (not mapped: no SIGBUS) and rebuilt.
			if engine == "bbolt" && rebuilt == 0 {
				t.Errorf("no slice rebuilt after %d data files were cut short", cfg.Cycles)
			}
			for _, bad := range []string{"panic", "goroutine ", "SIGBUS", "FAILED"} {
				if strings.Contains(out.String(), bad) {
					t.Errorf("output holds %q", bad)
				}
			}
		})
	}
}
