package queryport

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/idxbench/idxbench/indexer"
)

// BenchmarkScan compares in-process scans of a real indexer (memory
// engine) with the same scans through the query port on loopback: a Range
// returning 100 entries and a Count of 2000, from one goroutine, and the
// Range from 8 concurrent clients with their p50 and p99 latencies.
func BenchmarkScan(b *testing.B) {
	ix := fedIndexer(b, 2000)
	_, addr := serve(b, ix, ServerOptions{})
	c := dial(b, addr, ClientOptions{})
	scanners := []struct {
		name string
		scan func(context.Context, indexer.ScanRequest) (*indexer.ScanResult, error)
	}{
		{"inproc", ix.Scan},
		{"queryport", c.Scan},
	}
	reqs := []struct {
		name  string
		req   indexer.ScanRequest
		count int
	}{
		{"range100", indexer.ScanRequest{Index: "by_city", Kind: indexer.ScanRange,
			Low: []any{"paris"}, High: []any{"paris"}, Inclusion: indexer.IncludeBoth}, 100},
		{"count", indexer.ScanRequest{Index: "by_city", Kind: indexer.ScanCount}, 2000},
	}
	ctx := context.Background()
	for _, r := range reqs {
		for _, s := range scanners {
			b.Run(r.name+"/"+s.name, func(b *testing.B) {
				for b.Loop() {
					res, err := s.scan(ctx, r.req)
					if err != nil {
						b.Fatal(err)
					}
					if res.Count != r.count {
						b.Fatalf("count %d, want %d", res.Count, r.count)
					}
				}
			})
		}
	}
	for _, s := range scanners {
		b.Run("range100-8clients/"+s.name, func(b *testing.B) {
			var mu sync.Mutex
			var lat []time.Duration
			// RunParallel runs parallelism × GOMAXPROCS goroutines.
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((8 + procs - 1) / procs)
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					start := time.Now()
					if _, err := s.scan(ctx, reqs[0].req); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			if len(lat) > 0 {
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
				b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
			}
		})
	}
}
