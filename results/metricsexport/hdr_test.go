package metricsexport

import (
	"math"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

func TestFromHDR(t *testing.T) {
	h := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 2)
	// 90 values at 200 µs, 9 at 3 ms, 1 at 2 s (in microseconds).
	h.RecordValues(200, 90)
	h.RecordValues(3000, 9)
	h.RecordValue(2_000_000)
	got := FromHDR(ScanLatencySeconds, Labels{Index: "i"}, h, time.Microsecond, nil)
	if got.Count != 100 {
		t.Fatalf("count = %d", got.Count)
	}
	wantSum := 90*200e-6 + 9*3e-3 + 2
	if math.Abs(got.Sum-wantSum)/wantSum > 0.02 {
		t.Errorf("sum = %v, want ≈ %v", got.Sum, wantSum)
	}
	at := func(le float64) uint64 {
		for _, b := range got.Buckets {
			if b.UpperBound == le {
				return b.Count
			}
		}
		t.Fatalf("no bucket %v", le)
		return 0
	}
	for le, want := range map[float64]uint64{0.0001: 0, 0.00025: 90, 0.001: 90, 0.005: 99, 1: 99, 2.5: 100, 30: 100} {
		if c := at(le); c != want {
			t.Errorf("bucket le=%v: %d, want %d", le, c, want)
		}
	}
	if empty := FromHDR("x", Labels{}, nil, time.Microsecond, []float64{1}); empty.Count != 0 || len(empty.Buckets) != 1 {
		t.Errorf("nil histogram: %+v", empty)
	}
}
