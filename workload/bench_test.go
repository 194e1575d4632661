package workload

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/idxbench/idxbench/workload/upr"
)

// BenchmarkGenerateApply measures the source's speed, the figure issue 3
// asks for (≥ 1 M mutations/s on one core): generating an operation
// (256-byte JSON bodies, default mix and key distribution) and applying it
// to the bucket, history and all. compact=never is exactly that, as a run
// uses the source; the other variants also compact the history every so
// many operations, as a run's oracle may (Oracle.Forget) to bound memory,
// and include that cost. Reports mutations/s (wall clock) and
// mutations/cpu-s (process CPU time, GC and page faults included; the
// steadier figure on a shared machine).
//
//	go test ./workload -run '^$' -bench GenerateApply -cpu 1 -benchtime 2000000x
func BenchmarkGenerateApply(b *testing.B) {
	for _, every := range []int{0, 1 << 16, 1 << 20} {
		name := "compact=never"
		if every > 0 {
			name = fmt.Sprintf("compact=%d", every)
		}
		b.Run(name, func(b *testing.B) { benchmarkGenerateApply(b, every) })
	}
}

func benchmarkGenerateApply(b *testing.B, compactEvery int) {
	s := DefaultSpec()
	s.Docs = 100_000
	g, err := NewGenerator(s)
	if err != nil {
		b.Fatal(err)
	}
	bk := g.NewBucket(BucketOptions{})
	g.Load(bk)
	b.ReportAllocs()
	b.SetBytes(256)
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		g.Apply(bk, g.Next())
		if compactEvery > 0 && i%compactEvery == compactEvery-1 {
			bk.Compact(bk.CurrentSeqnos())
		}
	}
	reportRates(b, cpu0)
}

// reportRates reports mutations per wall-clock second and per CPU second
// of the whole process (GC included). On a shared machine the second is
// the steadier figure for "on one core".
func reportRates(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "mutations/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "mutations/cpu-s")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFeed measures a consumer draining one stream per vbucket while
// the generator feeds the bucket, on one goroutine: apply 256 operations,
// poll everything.
func BenchmarkFeed(b *testing.B) {
	s := DefaultSpec()
	s.Docs = 0
	s.Ops = OpMix{Insert: 0.2, Update: 0.8}
	g, err := NewGenerator(s)
	if err != nil {
		b.Fatal(err)
	}
	bk := g.NewBucket(BucketOptions{})
	f := bk.NewFeed()
	for vb := range bk.Vbuckets() {
		if err := f.Request(upr.StreamRequest{Vb: upr.Vbno(vb), End: EndlessSeqno}); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]upr.Event, 512)
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i += 256 {
		for range 256 {
			g.Apply(bk, g.Next())
		}
		for {
			n, err := f.Poll(buf)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
	}
	reportRates(b, cpu0)
}

// BenchmarkGenerate measures the generator alone (Next, no bucket): the
// share of GenerateApply that is building operations.
func BenchmarkGenerate(b *testing.B) {
	s := DefaultSpec()
	s.Docs = 100_000
	g, err := NewGenerator(s)
	if err != nil {
		b.Fatal(err)
	}
	for _, ok := g.NextLoad(); ok; _, ok = g.NextLoad() {
	}
	b.ReportAllocs()
	b.SetBytes(256)
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		g.Next()
	}
	reportRates(b, cpu0)
}
