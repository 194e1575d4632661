package metricsexport

import (
	"sort"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// LatencyBuckets returns bucket upper bounds, in seconds, suited to index
// operations: from 100 µs (an in-memory scan) to 30 s (a persistent
// snapshot of a big slice on a slow disk).
func LatencyBuckets() []float64 {
	return []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
		0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
}

// FromHDR turns an HDR histogram whose values are in unit (measure's are
// microseconds) into a Prometheus histogram with the given bucket bounds in
// seconds (LatencyBuckets when nil). A value lands in the first bucket
// whose bound is at least the top of its HDR bucket, so counts are never
// placed below where they belong; the sum uses each HDR bucket's midpoint.
func FromHDR(name string, labels Labels, h *hdrhistogram.Histogram, unit time.Duration, bounds []float64) Histogram {
	if bounds == nil {
		bounds = LatencyBuckets()
	}
	bounds = append([]float64(nil), bounds...)
	sort.Float64s(bounds)
	out := Histogram{Name: name, Labels: labels, Buckets: make([]Bucket, len(bounds))}
	for i, b := range bounds {
		out.Buckets[i].UpperBound = b
	}
	if h == nil {
		return out
	}
	scale := unit.Seconds()
	counts := make([]uint64, len(bounds))
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		n := uint64(bar.Count)
		out.Count += n
		out.Sum += float64(n) * scale * float64(bar.From+bar.To) / 2
		top := float64(bar.To) * scale
		if i := sort.SearchFloat64s(bounds, top); i < len(bounds) {
			counts[i] += n
		}
	}
	var cum uint64
	for i := range counts {
		cum += counts[i]
		out.Buckets[i].Count = cum
	}
	return out
}
