package harness

import (
	"time"

	"github.com/idxbench/idxbench/engines"
)

// slowedEngine wraps e so every batch Apply takes (1+frac) times as long as
// it did: a known, injected regression for checking that a comparison
// (idxbench compare, a nightly gate) catches a slowdown of that size.
func slowedEngine(e engines.Engine, frac float64, sleep func(time.Duration)) engines.Engine {
	open := e.Open
	w := e
	w.Open = func(dir string, o engines.Options) (engines.Store, error) {
		s, err := open(dir, o)
		if err != nil {
			return nil, err
		}
		return &slowStore{Store: s, frac: frac, sleep: sleep, now: time.Now}, nil
	}
	return w
}

type slowStore struct {
	engines.Store
	frac  float64
	sleep func(time.Duration)
	now   func() time.Time
}

func (s *slowStore) Apply(b *engines.Batch, d engines.Durability) error {
	t := s.now()
	err := s.Store.Apply(b, d)
	s.sleep(time.Duration(float64(s.now().Sub(t)) * s.frac))
	return err
}
