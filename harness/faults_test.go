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
	// A fake clock: each Apply appears to take 20ms, a sleep takes what it
	// is asked.
	clock := time.Unix(0, 0)
	ss := s.(*slowStore)
	ss.now = func() time.Time { return clock }
	ss.sleep = func(d time.Duration) { slept = append(slept, d); clock = clock.Add(d) }
	var b engines.Batch
	b.Set(engines.Main, []byte("k"), nil)
	applyTaking := func(d time.Duration) {
		ss.Store = &timedStore{Store: ss.Store.(*timedStore).Store, clock: &clock, took: d}
		if err := s.Apply(&b, engines.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	ss.Store = &timedStore{Store: ss.Store, clock: &clock}
	for i := 0; i < 3; i++ {
		applyTaking(20 * time.Millisecond)
	}
	if len(slept) != 3 || slept[0] != 2*time.Millisecond {
		t.Fatalf("slept %v after three 20ms applies, want 2ms each", slept)
	}
	// Short applies accrue their delay until it is worth a sleep.
	slept = nil
	for i := 0; i < 40; i++ {
		applyTaking(time.Millisecond)
	}
	var total time.Duration
	for _, d := range slept {
		if d < minSleep {
			t.Fatalf("slept %s, less than %s", d, minSleep)
		}
		total += d
	}
	if total != 4*time.Millisecond {
		t.Fatalf("40 applies of 1ms slept %s in all, want 4ms", total)
	}
	if v, ok, _ := s.Get(engines.Main, []byte("k")); !ok || len(v) != 0 {
		t.Fatal("the wrapped store did not apply the batch")
	}
}

// timedStore advances a fake clock by took on every Apply.
type timedStore struct {
	engines.Store
	clock *time.Time
	took  time.Duration
}

func (s *timedStore) Apply(b *engines.Batch, d engines.Durability) error {
	*s.clock = s.clock.Add(s.took)
	return s.Store.Apply(b, d)
}
