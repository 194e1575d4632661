package workload

import (
	"fmt"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/idxbench/idxbench/workload/upr"
)

// TestDigestGolden pins the generated streams and what a bucket makes of
// them, byte for byte, for a few specs: the digests were computed before
// the source was optimized (generator slab, bucket arena, numbered
// document states) and must not change unless the stream is meant to.
func TestDigestGolden(t *testing.T) {
	want := map[string][2]string{
		"default":               {"6a9d21abb63742f3", "f13ecbe35def1f1e"},
		"uniform":               {"89ddcfa1d5171600", "917c8adce574e374"},
		"latest":                {"39ad530f8182f9d2", "adb15871224d5fe1"},
		"sequential-normal":     {"bcba4185b41a44a1", "83b663991e089fef"},
		"small-uniform-missing": {"329875cec1c04fbf", "618559f170dc30a2"},
		"big-bodies":            {"45409b1839649c86", "5c1dd6d71787ea37"},
	}
	for _, c := range goldenCases() {
		gen, stream := runGolden(t, c)
		if w := want[c.name]; gen != w[0] || stream != w[1] {
			t.Errorf("%s: generator digest %s, stream digest %s; want %s, %s", c.name, gen, stream, w[0], w[1])
		}
	}
}

type goldenCase struct {
	name string
	spec Spec
	ops  int
}

// goldenCases are the specs whose digests TestDigestGolden pins.
func goldenCases() []goldenCase {
	def := DefaultSpec()
	def.Docs = 2000
	uniform := def
	uniform.KeyDist, uniform.Seed = KeyUniform, 7
	latest := def
	latest.KeyDist, latest.Ops = KeyLatest, OpMix{Insert: 0.3, Update: 0.3, Delete: 0.2, Expire: 0.2}
	seq := def
	seq.KeyDist, seq.ValueSize = KeySequential, SizeDist{Dist: "normal", Mean: 300, Stddev: 120, Min: 20, Max: 2000}
	small := def
	small.Vbuckets, small.ValueSize, small.Fields.Missing = 8, SizeDist{Dist: "uniform", Min: 1, Max: 600}, 0.5
	big := def
	big.Docs, big.ValueSize = 300, SizeDist{Dist: "fixed", Mean: 70000}
	return []goldenCase{
		{"default", def, 20000},
		{"uniform", uniform, 20000},
		{"latest", latest, 20000},
		{"sequential-normal", seq, 20000},
		{"small-uniform-missing", small, 20000},
		{"big-bodies", big, 300},
	}
}

// runGolden drives c's generator and a bucket through load, ops, a
// compaction and a failover, and digests the generator's stream and
// everything a feed from seqno 0 sends afterwards.
func runGolden(t testing.TB, c goldenCase) (gen, stream string) {
	g, err := NewGenerator(c.spec)
	if err != nil {
		t.Fatal(err)
	}
	b := g.NewBucket(BucketOptions{Clock: func() int64 { return 0 }})
	g.Load(b)
	for range c.ops / 2 {
		g.Apply(b, g.Next())
	}
	ts := b.CurrentSeqnos()
	b.Compact(ts)
	for range c.ops / 2 {
		g.Apply(b, g.Next())
	}
	vb := 3 % upr.Vbno(b.Vbuckets())
	if err := b.Failover(vb, ts.Seqnos[vb]+(b.HighSeqno(vb)-ts.Seqnos[vb])/2); err != nil {
		t.Fatal(err)
	}
	for range c.ops / 4 {
		op := g.Next()
		g.Apply(b, op)
	}
	h := xxhash.New()
	streamAll(t, b, func(ev *upr.Event) {
		fmt.Fprintf(h, "%d %d %d %d %d %d %d %q %q\n", ev.Op, ev.Vb, ev.Vbuuid, ev.Seqno, ev.RevSeqno, ev.SnapStart, ev.SnapEnd, ev.Key, ev.Value)
	})
	return g.Digest(), fmt.Sprintf("%016x", h.Sum64())
}

// streamAll requests every vbucket of b from seqno 0 on one feed and hands
// fn each event until the feed has nothing more.
func streamAll(t testing.TB, b *Bucket, fn func(ev *upr.Event)) {
	t.Helper()
	f := b.NewFeed()
	defer f.Close()
	for vb := range b.Vbuckets() {
		if err := f.Request(upr.StreamRequest{Vb: upr.Vbno(vb), End: EndlessSeqno}); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]upr.Event, 256)
	for {
		n, err := f.Poll(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		for i := range buf[:n] {
			fn(&buf[i])
		}
	}
}
