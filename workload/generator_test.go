package workload

import (
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: derive from the time)")

// testSeed returns the seed a randomized test uses and logs how to rerun
// with it.
func testSeed(t testing.TB) uint64 {
	s := *seedFlag
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed: %d (rerun: go test ./workload -run '^%s$' -seed %d)", s, t.Name(), s)
	return s
}

func smallSpec(seed uint64) Spec {
	s := DefaultSpec()
	s.Seed = seed
	s.Vbuckets = 16
	s.Docs = 500
	return s
}

func mustGen(t testing.TB, s Spec) *Generator {
	t.Helper()
	g, err := NewGenerator(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// run loads and applies n operations, returning the generator, the bucket
// and every op.
func run(t testing.TB, s Spec, n int) (*Generator, *Bucket, []Op) {
	g := mustGen(t, s)
	b := g.NewBucket(BucketOptions{Clock: func() int64 { return 0 }})
	var ops []Op
	for {
		op, ok := g.NextLoad()
		if !ok {
			break
		}
		ops = append(ops, op)
		g.Apply(b, op)
	}
	for range n {
		op := g.Next()
		ops = append(ops, op)
		g.Apply(b, op)
	}
	return g, b, ops
}

func TestGeneratorDeterminism(t *testing.T) {
	seed := testSeed(t)
	g1, b1, ops1 := run(t, smallSpec(seed), 3000)
	g2, b2, ops2 := run(t, smallSpec(seed), 3000)
	if g1.Digest() != g2.Digest() {
		t.Fatalf("same seed, different digests %s, %s", g1.Digest(), g2.Digest())
	}
	if !slices.EqualFunc(ops1, ops2, func(a, b Op) bool {
		return a.Kind == b.Kind && a.DocID == b.DocID && string(a.Value) == string(b.Value)
	}) {
		t.Fatal("same seed, different operations")
	}
	if !b1.CurrentSeqnos().Equal(b2.CurrentSeqnos()) {
		t.Fatal("same seed, different bucket seqnos or vbuuids")
	}
	g3, _, _ := run(t, smallSpec(seed+1), 3000)
	if g3.Digest() == g1.Digest() {
		t.Fatal("different seeds, same digest")
	}
	// The digest covers every op: one op less differs.
	g4, _, _ := run(t, smallSpec(seed), 2999)
	if g4.Digest() == g1.Digest() {
		t.Fatal("digest did not change with the last op")
	}
}

// TestGeneratorLiveness checks that the generator's idea of which
// documents exist matches the bucket: updates, deletes and expirations
// always find their document, and the bucket holds exactly the documents
// inserted and not removed.
func TestGeneratorLiveness(t *testing.T) {
	seed := testSeed(t)
	for _, dist := range keyDists {
		s := smallSpec(seed)
		s.KeyDist = dist
		s.Docs = 50
		s.Ops = OpMix{Insert: 0.2, Update: 0.2, Delete: 0.3, Expire: 0.3} // shrinks to nothing and back
		g := mustGen(t, s)
		b := g.NewBucket(BucketOptions{})
		g.Load(b)
		model := map[string]bool{}
		for i := range 50 {
			model[docID(uint64(i))] = true
		}
		for i := range 5000 {
			op := g.Next()
			_, seq := g.Apply(b, op)
			if seq == 0 {
				t.Fatalf("%s: op %d %v %s did not apply", dist, i, op.Kind, op.DocID)
			}
			switch op.Kind {
			case OpInsert:
				if model[op.DocID] {
					t.Fatalf("%s: insert of live %s", dist, op.DocID)
				}
				model[op.DocID] = true
			case OpUpdate:
				if !model[op.DocID] {
					t.Fatalf("%s: update of absent %s", dist, op.DocID)
				}
			default:
				if !model[op.DocID] {
					t.Fatalf("%s: %v of absent %s", dist, op.Kind, op.DocID)
				}
				delete(model, op.DocID)
			}
		}
		got, err := NewOracle(b).Expected(defn.IndexDefn{Name: "pk", IsPrimary: true}, b.CurrentSeqnos())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(model) {
			t.Fatalf("%s: bucket has %d documents, generator %d", dist, len(got), len(model))
		}
		for _, e := range got {
			if !model[e.DocID] {
				t.Fatalf("%s: bucket has %s, generator does not", dist, e.DocID)
			}
		}
	}
}

func TestGeneratorDocuments(t *testing.T) {
	seed := testSeed(t)
	s := smallSpec(seed)
	s.Docs = 4000
	s.Fields.Missing = 0.2
	g, _, ops := run(t, s, 0)
	_ = g
	missing := map[string]int{}
	fields := []string{"name", "age", "city", "active", "address", "tags", "score"}
	exact, nulls, scores := 0, 0, 0
	for _, op := range ops {
		var doc map[string]any
		if err := json.Unmarshal(op.Value, &doc); err != nil {
			t.Fatalf("%s: invalid JSON %q: %v", op.DocID, op.Value, err)
		}
		if len(op.Value) == 256 {
			exact++
		}
		for _, f := range fields {
			v, ok := doc[f]
			if !ok {
				missing[f]++
				continue
			}
			var kindOK bool
			switch f {
			case "name", "city":
				_, kindOK = v.(string)
			case "age":
				a, ok := v.(float64)
				kindOK = ok && a >= 18 && a <= 90 && a == math.Trunc(a)
			case "active":
				_, kindOK = v.(bool)
			case "address":
				m, ok := v.(map[string]any)
				_, c := m["city"].(string)
				_, z := m["zip"].(float64)
				kindOK = ok && c && z
			case "tags":
				a, ok := v.([]any)
				kindOK = ok && len(a) <= 4
			case "score":
				scores++
				if v == nil {
					nulls++
				}
				_, num := v.(float64)
				kindOK = v == nil || num
			}
			if !kindOK {
				t.Fatalf("%s: field %s = %#v has the wrong kind or range", op.DocID, f, v)
			}
		}
		if p, ok := doc["padding"].(string); ok && strings.Trim(p, padAlphabet) != "" {
			t.Fatalf("%s: padding %q", op.DocID, p)
		}
	}
	// Every body is padded to exactly 256 bytes (their natural size is
	// below that).
	if exact != len(ops) {
		t.Errorf("%d of %d bodies are 256 bytes", exact, len(ops))
	}
	n := float64(len(ops))
	for _, f := range fields {
		within(t, "missing "+f, float64(missing[f])/n, 0.2, 0.03)
	}
	within(t, "score null", float64(nulls)/float64(scores), 0.1, 0.02)
}

func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s: %.4f, want %.4f ± %.4f", what, got, want, tol)
	}
}

func TestValueSizes(t *testing.T) {
	seed := testSeed(t)
	for _, tc := range []struct {
		size     SizeDist
		min, max int
		mean     float64
	}{
		{SizeDist{Dist: "fixed", Mean: 1000}, 1000, 1000, 1000},
		{SizeDist{Dist: "uniform", Min: 300, Max: 700}, 300, 700, 500},
		{SizeDist{Dist: "normal", Mean: 600, Stddev: 50, Min: 400, Max: 800}, 400, 800, 600},
		// Bodies never shrink below their natural size.
		{SizeDist{Dist: "fixed", Mean: 10}, 2, 220, -1},
	} {
		s := smallSpec(seed)
		s.Docs = 2000
		s.ValueSize = tc.size
		_, _, ops := run(t, s, 0)
		sum := 0
		for _, op := range ops {
			n := len(op.Value)
			if n < tc.min || n > tc.max {
				t.Fatalf("%+v: size %d outside [%d, %d]", tc.size, n, tc.min, tc.max)
			}
			sum += n
		}
		if tc.mean > 0 {
			within(t, tc.size.Dist+" mean size", float64(sum)/float64(len(ops)), tc.mean, tc.mean*0.03)
		}
	}
}

func TestOpMix(t *testing.T) {
	seed := testSeed(t)
	s := smallSpec(seed)
	s.Docs = 1000
	_, _, ops := run(t, s, 40000)
	counts := map[OpKind]float64{}
	for _, op := range ops[1000:] {
		counts[op.Kind]++
	}
	n := 40000.0
	within(t, "insert", counts[OpInsert]/n, 0.1, 0.01)
	within(t, "update", counts[OpUpdate]/n, 0.8, 0.01)
	within(t, "delete", counts[OpDelete]/n, 0.05, 0.01)
	within(t, "expire", counts[OpExpire]/n, 0.05, 0.01)
}

// TestKeyDistributions checks each distribution's shape on a key space
// that does not change (updates only).
func TestKeyDistributions(t *testing.T) {
	seed := testSeed(t)
	const docs, draws = 1000, 200000
	for _, dist := range keyDists {
		s := smallSpec(seed)
		s.Docs = docs
		s.KeyDist = dist
		s.Ops = OpMix{Update: 1}
		s.ValueSize = SizeDist{Dist: "fixed", Mean: 1}
		g := mustGen(t, s)
		for {
			if _, ok := g.NextLoad(); !ok {
				break
			}
		}
		counts := make([]float64, docs)
		var order []int
		for range draws {
			op := g.Next()
			var id int
			for _, c := range strings.TrimPrefix(op.DocID, "doc-") {
				id = id*10 + int(c-'0')
			}
			counts[id]++
			if len(order) < 2*docs {
				order = append(order, id)
			}
		}
		switch dist {
		case KeyUniform:
			// Chi-square over 1000 cells: mean 999, sd ≈ 45; 1200 is > 4 sd.
			exp := float64(draws) / docs
			chi := 0.0
			for _, c := range counts {
				chi += (c - exp) * (c - exp) / exp
			}
			if chi > 1200 {
				t.Errorf("uniform: chi-square %.0f over %d cells", chi, docs)
			}
		case KeyZipfian, KeyLatest:
			zeta := 0.0
			for k := 1; k <= docs; k++ {
				zeta += math.Pow(float64(k), -s.ZipfTheta)
			}
			hot, second, tenth := 0, 1, 9
			if dist == KeyLatest {
				hot, second, tenth = docs-1, docs-2, docs-10
			}
			within(t, dist+" P(rank 1)", counts[hot]/draws, 1/zeta, 0.01)
			within(t, dist+" P(rank 2)", counts[second]/draws, math.Pow(2, -s.ZipfTheta)/zeta, 0.01)
			within(t, dist+" P(rank 10)", counts[tenth]/draws, math.Pow(10, -s.ZipfTheta)/zeta, 0.005)
		case KeySequential:
			for i, id := range order {
				if id != i%docs {
					t.Fatalf("sequential: draw %d is %d", i, id)
				}
			}
		}
	}
}

func TestOpenLoop(t *testing.T) {
	s := smallSpec(1)
	s.Rate = 4000
	g := mustGen(t, s)
	g.Load(g.NewBucket(BucketOptions{}))
	for i := range 1000 {
		op := g.Next()
		want := time.Duration(i) * time.Second / 4000
		if d := op.Intended - want; d < -time.Microsecond || d > time.Microsecond {
			t.Fatalf("op %d intended at %v, want %v", i, op.Intended, want)
		}
	}
	s.Rate = 0
	g = mustGen(t, s)
	g.Load(g.NewBucket(BucketOptions{}))
	if op := g.Next(); op.Intended != 0 {
		t.Fatalf("closed loop op intended at %v", op.Intended)
	}
}

func TestNextBeforeLoadPanics(t *testing.T) {
	g := mustGen(t, smallSpec(1))
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	g.Next()
}

func TestZipfGrowth(t *testing.T) {
	// Growing a distribution gives the same zeta as building it at once.
	a, b := newZipf(10, 0.9), newZipf(5000, 0.9)
	a.resize(5000)
	if math.Abs(a.zetan-b.zetan) > 1e-9 {
		t.Fatalf("zeta %v after growth, %v built", a.zetan, b.zetan)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		if k := a.sample(r); k >= 5000 {
			t.Fatalf("rank %d out of range", k)
		}
	}
	one := newZipf(1, 0.9)
	if one.sample(r) != 0 {
		t.Fatal("n=1 must give rank 0")
	}
}

func TestDocID(t *testing.T) {
	for id, want := range map[uint64]string{0: "doc-0000000000", 42: "doc-0000000042", 12345678901: "doc-12345678901"} {
		if got := docID(id); got != want {
			t.Errorf("docID(%d) = %q, want %q", id, got, want)
		}
	}
}

func TestVbOf(t *testing.T) {
	// KV's hash, (crc32 >> 16) & 0x7fff, for 1024 vbuckets; values from
	// Python's zlib.crc32.
	for k, want := range map[string]upr.Vbno{"foo": 115, "hello": 528, "doc-0000000000": 101} {
		if got := NewBucket(1024, 1).VbOf(k); got != want {
			t.Errorf("VbOf(%q) = %d, want %d", k, got, want)
		}
	}
	counts := make([]int, 64)
	for i := range 64000 {
		counts[VbOf(docID(uint64(i)), 64)]++
	}
	for vb, c := range counts {
		if c < 800 || c > 1200 {
			t.Errorf("vb %d got %d of 64000 documents", vb, c)
		}
	}
}

func TestZipfShrink(t *testing.T) {
	a, b := newZipf(5000, 0.99), newZipf(100, 0.99)
	a.resize(100)
	if math.Abs(a.zetan-b.zetan) > 1e-9 || a.n != 100 {
		t.Fatalf("zeta %v (n %d) after shrinking, %v built", a.zetan, a.n, b.zetan)
	}
}

func TestAliasZipf(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 0))
	const n, draws = 50, 200000
	a := newZipfAlias(n, 0.8)
	counts := make([]float64, n)
	for range draws {
		counts[a.sample(r)]++
	}
	zeta := 0.0
	for k := 1; k <= n; k++ {
		zeta += math.Pow(float64(k), -0.8)
	}
	for _, k := range []int{0, 1, 9, 49} {
		within(t, "alias P(rank)", counts[k]/draws, math.Pow(float64(k+1), -0.8)/zeta, 0.005)
	}
}

// TestZipfCached checks that remembering terms (powCache) changes nothing:
// along a random walk of n, with jumps past the cache's reach, the zeta
// sum, eta and every draw are bit for bit those of the plain formulas.
func TestZipfCached(t *testing.T) {
	seed := testSeed(t)
	walk := rand.New(rand.NewPCG(seed, 1))
	theta := 0.99 // a variable: constant arithmetic would be exact
	z := newZipf(0, theta)
	var zetan float64
	var n, zetaN uint64
	zeta2 := 1 + math.Pow(0.5, theta)
	for step := range 20000 {
		switch x := walk.IntN(100); {
		case x == 0:
			n += uint64(walk.IntN(5 * powCacheSize)) // a jump past the cache
		case x == 1 && n > 3*powCacheSize:
			n -= uint64(walk.IntN(3 * powCacheSize))
		case x < 50:
			n++
		case n > 1:
			n--
		}
		n = max(n, 1)
		z.resize(n)
		// The reference: the same sums in the same order, from math.Pow.
		for ; zetaN < n; zetaN++ {
			zetan += math.Pow(float64(zetaN+1), -theta)
		}
		for ; zetaN > n; zetaN-- {
			zetan -= math.Pow(float64(zetaN), -theta)
		}
		if z.zetan != zetan {
			t.Fatalf("step %d, n %d: zeta %v, want %v", step, n, z.zetan, zetan)
		}
		r1 := rand.New(rand.NewPCG(uint64(step), 2))
		r2 := rand.New(rand.NewPCG(uint64(step), 2))
		got := z.sample(r1)
		want := uint64(0)
		if n > 1 {
			eta := (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/zetan)
			if math.Float64bits(z.eta) != math.Float64bits(eta) { // NaN for n = 2
				t.Fatalf("step %d, n %d: eta %v, want %v", step, n, z.eta, eta)
			}
			u := r2.Float64()
			switch uz := u * zetan; {
			case uz < 1:
			case uz < zeta2:
				want = 1
			default:
				want = min(uint64(float64(n)*math.Pow(eta*u-eta+1, 1/(1-theta))), n-1)
			}
		}
		if got != want {
			t.Fatalf("step %d, n %d: drew %d, want %d", step, n, got, want)
		}
	}
}
