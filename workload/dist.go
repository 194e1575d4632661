package workload

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

// zipf draws ranks 0..n-1 with P(rank k) ∝ 1/(k+1)^theta, theta in (0,1),
// by the method of Gray et al., "Quickly Generating Billion-Record
// Synthetic Databases" (SIGMOD 1994), as YCSB does. n may grow: the zeta
// sum is extended incrementally, so a growing key space costs O(1)
// amortized per new key.
type zipf struct {
	theta, alpha float64
	zeta2, zetan float64
	eta          float64
	n            uint64 // items the zeta sum covers
	etaN         uint64 // items eta was computed for
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
		z.zetan += math.Pow(float64(z.n), -z.theta)
	}
}

// sample draws a rank in [0, n) for the current n (n ≥ 1).
func (z *zipf) sample(r *rand.Rand) uint64 {
	n := z.n
	if n == 1 {
		return 0
	}
	if z.etaN != n {
		z.eta = (1 - math.Pow(2/float64(n), 1-z.theta)) / (1 - z.zeta2/z.zetan)
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

// bitset tracks which document ids are live.
type bitset []uint64

func (b *bitset) set(i uint64) {
	for uint64(len(*b)) <= i/64 {
		*b = append(*b, 0)
	}
	(*b)[i/64] |= 1 << (i % 64)
}

func (b bitset) clear(i uint64) { b[i/64] &^= 1 << (i % 64) }

func (b bitset) has(i uint64) bool { return i/64 < uint64(len(b)) && b[i/64]&(1<<(i%64)) != 0 }

// nextSet returns the first set bit at or after i, wrapping around below n;
// ok is false if no bit below n is set.
func (b bitset) nextSet(i, n uint64) (uint64, bool) {
	for pass := 0; pass < 2; pass++ {
		for i < n {
			w := b[i/64] >> (i % 64)
			if w != 0 {
				j := i + uint64(bits.TrailingZeros64(w))
				if j < n {
					return j, true
				}
				break
			}
			i = (i/64 + 1) * 64
		}
		i = 0
	}
	return 0, false
}
