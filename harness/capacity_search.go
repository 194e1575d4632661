package harness

import (
	"math"
	"slices"
)

// searchStep is one rate a search tried and its verdict.
type searchStep struct {
	rate float64
	pass bool
}

// Reasons a search stops (results.Capacity.Stop).
const (
	stopConverged   = "converged"
	stopMaxRate     = "max_rate"
	stopNothing     = "nothing_sustainable"
	stopBound       = "bound"
	stopSearchSteps = "step_limit"
)

// rateSearch decides which rate to try next from the verdicts so far. It is
// a plain state machine, so the search's logic is tested without running a
// pipeline: next says the rate of the next step, observe takes its verdict.
type rateSearch struct {
	start, growth, maxRate, precision float64

	// lo is the highest rate that passed (0: none yet); hi the lowest
	// that failed above lo (0: none).
	lo, hi     float64
	lastFailed bool
	steps      []searchStep
	stop       string
}

// next returns the next rate to try, or false when the search is over
// (stop says why).
func (s *rateSearch) next() (float64, bool) {
	if s.stop != "" {
		return 0, false
	}
	if len(s.steps) >= maxSearchSteps {
		s.stop = stopSearchSteps
		return 0, false
	}
	var r float64
	switch {
	case s.lo == 0 && s.hi == 0:
		r = s.start
	case s.hi == 0: // rising: every step so far passed
		if s.maxRate > 0 && s.lo >= s.maxRate {
			s.stop = stopMaxRate
			return 0, false
		}
		r = s.lo * s.growth
		if s.maxRate > 0 {
			r = min(r, s.maxRate)
		}
	case s.lo == 0: // falling: nothing passed yet
		r = s.hi / s.growth
		if r < minSearchRate {
			s.stop = stopNothing
			return 0, false
		}
	case s.lastFailed: // back off to the last pass, to see it still holds
		r = s.lo
	case s.hi <= s.lo*(1+s.precision):
		s.stop = stopConverged
		return 0, false
	default: // bisect, geometrically
		r = math.Sqrt(s.lo * s.hi)
	}
	return r, true
}

// observe records the verdict of a step at rate.
func (s *rateSearch) observe(rate float64, pass bool) {
	s.steps = append(s.steps, searchStep{rate, pass})
	s.lastFailed = !pass
	if pass {
		s.lo = max(s.lo, rate)
		if s.hi != 0 && s.hi <= s.lo {
			// A pass at or above an earlier failure: that failure was
			// noise, so the search rises again.
			s.hi = 0
		}
		return
	}
	if s.hi == 0 || rate < s.hi {
		s.hi = rate
	}
	if s.lo >= s.hi {
		// The last pass no longer holds (the data grew, or it was noise):
		// search down from the failure.
		s.lo = 0
	}
}

// sustainableRate is the split between passing and failing steps that
// misclassifies the fewest — failures at or below it plus passes above it —
// and how many it misclassifies. The candidates are 0 and every passing
// rate. Equally good splits mean the steps disagree (a noisy machine, a
// system that slowed as the search went on): of those the lower median is
// the answer, neither the most pessimistic (often 0 though steps passed)
// nor the most optimistic, and misclassified says how much to trust it.
func sustainableRate(steps []searchStep) (rate float64, misclassified int) {
	cands := []float64{0}
	for _, st := range steps {
		if st.pass && !slices.Contains(cands, st.rate) {
			cands = append(cands, st.rate)
		}
	}
	slices.Sort(cands)
	var tied []float64
	best := -1
	for _, c := range cands {
		miss := 0
		for _, st := range steps {
			if st.pass && st.rate > c || !st.pass && st.rate <= c {
				miss++
			}
		}
		switch {
		case best < 0 || miss < best:
			best, tied = miss, []float64{c}
		case miss == best:
			tied = append(tied, c)
		}
	}
	return tied[(len(tied)-1)/2], best
}
