package projector

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// discard is a Transport that hands every batch straight back to the pool,
// as an indexer that copied the key versions would.
type discard struct{ pool *BatchPool }

func (d discard) Send(_ context.Context, b *Batch) error {
	if d.pool != nil {
		d.pool.Put(b)
	}
	return nil
}

// benchDocs returns n documents of about 256 bytes in the shape the workload
// generator produces.
func benchDocs(n int) []upr.Event {
	r := rand.New(rand.NewPCG(1, 2))
	cities := []string{"Lisbon", "Oslo", "Rome", "Paris", "Berlin", "Madrid", "Vienna", "Prague"}
	evs := make([]upr.Event, n)
	for i := range evs {
		body := fmt.Sprintf(`{"name":"user_%06d","age":%d,"city":%q,"active":%t,"score":%.2f,`+
			`"address":{"street":"Main Street %d","zip":"%05d","country":"PT"},"tags":["t%d","t%d"],`+
			`"bio":"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor"}`,
			i, 18+r.IntN(60), cities[r.IntN(len(cities))], r.IntN(2) == 0, r.Float64()*1000,
			r.IntN(999), r.IntN(99999), r.IntN(20), r.IntN(20))
		evs[i] = upr.Event{Op: upr.OpMutation, Vb: upr.Vbno(i % 1024), Seqno: upr.Seqno(i + 1),
			Key: fmt.Appendf(nil, "doc-%08d", i), Value: []byte(body), EmitNanos: int64(i)}
	}
	return evs
}

func defaultBenchIndexes() []defn.IndexDefn {
	return []defn.IndexDefn{
		{Name: "by_city", SecExprs: []string{"city"}},
		{Name: "by_age_city", SecExprs: []string{"age", "city"}},
		{Name: "active_by_score", SecExprs: []string{"score"}, Where: "active = true AND age >= 30"},
		{Name: "primary", IsPrimary: true},
		{Name: "by_zip_p4", SecExprs: []string{"address.zip"}, Partitions: 4},
	}
}

// BenchmarkHandle measures the core on 256-byte documents with five
// default-style indexes; events/s = 1e9 / ns/op.
func BenchmarkHandle(b *testing.B) {
	for _, bc := range []struct {
		name    string
		indexes []defn.IndexDefn
	}{
		{"5idx", defaultBenchIndexes()},
		{"primary", defaultBenchIndexes()[3:4]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			evs := benchDocs(4096)
			b.SetBytes(int64(len(evs[0].Value)))
			pool := &BatchPool{}
			p, err := New([]Transport{discard{pool}}, Options{Pool: pool})
			if err != nil {
				b.Fatal(err)
			}
			for i, d := range bc.indexes {
				if err := p.AddInstance(mustCompile(b, uint64(i+1), d)); err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			b.ReportAllocs()
			cpu := startCPU()
			i := 0
			for b.Loop() {
				if err := p.Handle(ctx, &evs[i%len(evs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			cpu.report(b)
			b.ReportMetric(float64(p.Stats().KeyVersions)/float64(b.N), "kv/op")
		})
	}
}

// loopFeed serves n events cycling over evs, then io.EOF.
type loopFeed struct {
	evs  []upr.Event
	n, i int
}

func (f *loopFeed) Next(_ context.Context, buf []upr.Event) (int, error) {
	if f.i >= f.n {
		return 0, io.EOF
	}
	k := 0
	for k < len(buf) && f.i < f.n {
		buf[k] = f.evs[f.i%len(f.evs)]
		k++
		f.i++
	}
	return k, nil
}

// BenchmarkRun measures the edge: Run over a feed, a ChanTransport and a
// receiver goroutine that returns batches to the pool.
func BenchmarkRun(b *testing.B) {
	evs := benchDocs(4096)
	pool := &BatchPool{}
	tr := NewChanTransport(8)
	p, err := New([]Transport{tr}, Options{Pool: pool})
	if err != nil {
		b.Fatal(err)
	}
	for i, d := range defaultBenchIndexes() {
		if err := p.AddInstance(mustCompile(b, uint64(i+1), d)); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			batch, err := tr.Recv(ctx)
			if err != nil {
				return
			}
			pool.Put(batch)
		}
	}()
	b.SetBytes(int64(len(evs[0].Value)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	if err := p.Run(ctx, &loopFeed{evs: evs, n: b.N}); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu.report(b)
	cancel()
	<-done
}
