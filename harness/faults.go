package harness

import (
	"sync"
	"time"

	"github.com/idxbench/idxbench/engines"
)

// slowedEngine wraps e so every batch Apply takes (1+frac) times as long as
// it did: a known, injected regression for checking that a comparison
// (idxbench compare, a nightly gate) catches a slowdown of that size.
func slowedEngine(e engines.Engine, frac float64, sleep func(time.Duration)) engines.Engine {
	return engines.WrapStores(e, func(_ string, s engines.Store) engines.Store {
		return &slowStore{Store: s, frac: frac, sleep: sleep, now: time.Now}
	})
}

type slowStore struct {
	engines.Store
	frac  float64
	sleep func(time.Duration)
	now   func() time.Time

	mu   sync.Mutex
	owed time.Duration // delay accrued but not yet slept
}

// minSleep is the least delay slept at once: shorter sleeps overshoot
// (timer granularity), which would inject more than frac; the delay owed is
// carried over until it reaches this.
const minSleep = 2 * time.Millisecond

func (s *slowStore) Apply(b *engines.Batch, d engines.Durability) error {
	t := s.now()
	err := s.Store.Apply(b, d)
	s.mu.Lock()
	s.owed += time.Duration(float64(s.now().Sub(t)) * s.frac)
	owed := s.owed
	if owed >= minSleep {
		s.owed = 0
	}
	s.mu.Unlock()
	if owed >= minSleep {
		start := s.now()
		s.sleep(owed)
		// A sleep that overshot pays back the excess from later delays.
		s.mu.Lock()
		s.owed -= s.now().Sub(start) - owed
		s.mu.Unlock()
	}
	return err
}
