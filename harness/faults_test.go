package harness

import (
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
)

func TestSlowedEngineDelaysEachApplyByAFraction(t *testing.T) {
	mem, err := engines.Lookup("memory")
	if err != nil {
		t.Fatal(err)
	}
	var slept []time.Duration
	e := slowedEngine(mem, 0.1, func(d time.Duration) { slept = append(slept, d) })
	s, err := e.Open(t.TempDir(), engines.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A fake clock: each Apply appears to take 40ms.
	clock := time.Unix(0, 0)
	ss := s.(*slowStore)
	ss.now = func() time.Time { clock = clock.Add(20 * time.Millisecond); return clock }
	var b engines.Batch
	b.Set(engines.Main, []byte("k"), nil)
	for i := 0; i < 3; i++ {
		if err := s.Apply(&b, engines.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if len(slept) != 3 {
		t.Fatalf("slept %d times, want 3", len(slept))
	}
	for _, d := range slept {
		if d != 2*time.Millisecond {
			t.Fatalf("slept %s after a 20ms apply, want 2ms", d)
		}
	}
	if v, ok, _ := s.Get(engines.Main, []byte("k")); !ok || len(v) != 0 {
		t.Fatal("the wrapped store did not apply the batch")
	}
}
