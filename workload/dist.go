package workload

import (
	"math"
	"math/rand/v2"
)

// zipf draws ranks 0..n-1 with P(rank k) ∝ 1/(k+1)^theta, theta in (0,1),
// by the method of Gray et al., "Quickly Generating Billion-Record
// Synthetic Databases" (SIGMOD 1994), as YCSB does. n may change: the zeta
// sum is adjusted incrementally, O(1) per item added or removed.
//
// A generator's n wanders up and down by one (inserts, removals), so the
// terms that enter and leave the zeta sum and eta's n-dependent part are
// remembered for recent n (powCache) rather than recomputed with math.Pow:
// the same values, so the same draws, at a fraction of the cost.
type zipf struct {
	theta, alpha float64
	zeta2, zetan float64
	eta          float64
	n            uint64   // items the zeta sum covers
	etaN         uint64   // items eta was computed for
	terms        powCache // k ↦ k^-theta
	etaTerms     powCache // n ↦ 1 - (2/n)^(1-theta)
}

// powCache remembers a function of k ≥ 1 for recently used k, direct
// mapped: slot k mod powCacheSize holds f(k) if its tag is k.
type powCache struct {
	tag [powCacheSize]uint64 // 0: empty (k is never 0)
	val [powCacheSize]float64
}

const powCacheSize = 1024

// get returns f(k), from the cache if k is there.
func (c *powCache) get(k uint64, f func(uint64) float64) float64 {
	i := k % powCacheSize
	if c.tag[i] == k {
		return c.val[i]
	}
	v := f(k)
	c.tag[i], c.val[i] = k, v
	return v
}

// term is k's term of the zeta sum, k^-theta.
func (z *zipf) term(k uint64) float64 {
	return z.terms.get(k, func(k uint64) float64 { return math.Pow(float64(k), -z.theta) })
}

func newZipf(n uint64, theta float64) *zipf {
	z := &zipf{theta: theta, alpha: 1 / (1 - theta)}
	z.zeta2 = 1 + math.Pow(0.5, theta)
	z.grow(n)
	return z
}

// grow extends the distribution to n items.
func (z *zipf) grow(n uint64) {
	for z.n < n {
		z.n++
		z.zetan += z.term(z.n)
	}
}

// resize sets the number of items, extending or shrinking the zeta sum by
// the terms that enter or leave it.
func (z *zipf) resize(n uint64) {
	z.grow(n)
	for z.n > n {
		z.zetan -= z.term(z.n)
		z.n--
	}
}

// sample draws a rank in [0, n) for the current n (n ≥ 1).
func (z *zipf) sample(r *rand.Rand) uint64 {
	n := z.n
	if n == 1 {
		return 0
	}
	if z.etaN != n {
		num := z.etaTerms.get(n, func(n uint64) float64 { return 1 - math.Pow(2/float64(n), 1-z.theta) })
		z.eta = num / (1 - z.zeta2/z.zetan)
		z.etaN = n
	}
	u := r.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < z.zeta2 {
		return 1
	}
	k := uint64(float64(n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	return min(k, n-1)
}

// alias samples a fixed discrete distribution in O(1) per draw (Vose's
// alias method): cell i keeps itself with probability prob[i], else yields
// alias[i].
type alias struct {
	prob  []float64
	alias []uint32
}

// newZipfAlias tabulates zipf(n, theta) for O(1) sampling; ranks come out
// as in zipf.sample's distribution.
func newZipfAlias(n int, theta float64) *alias {
	w := make([]float64, n)
	sum := 0.0
	for k := range w {
		w[k] = math.Pow(float64(k+1), -theta)
		sum += w[k]
	}
	a := &alias{prob: make([]float64, n), alias: make([]uint32, n)}
	scaled := make([]float64, n)
	var small, large []int
	for k := range w {
		scaled[k] = w[k] / sum * float64(n)
		if scaled[k] < 1 {
			small = append(small, k)
		} else {
			large = append(large, k)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.prob[s], a.alias[s] = scaled[s], uint32(l)
		scaled[l] += scaled[s] - 1
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, k := range append(small, large...) {
		a.prob[k], a.alias[k] = 1, uint32(k)
	}
	return a
}

func (a *alias) sample(r *rand.Rand) int {
	x := r.Uint64()
	i := int((x >> 32) * uint64(len(a.prob)) >> 32)
	// The low 32 bits decide between the cell and its alias.
	if float64(uint32(x))/(1<<32) < a.prob[i] {
		return i
	}
	return int(a.alias[i])
}
