package measure

import (
	"crypto/sha256"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRecord is the cost of one Record on a worker's own recorder.
func BenchmarkRecord(b *testing.B) {
	reg := NewRegistry(start, Options{})
	rec := reg.Recorder(0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rec.Record("scan", time.Duration(i%5000+1)*time.Microsecond)
	}
}

// BenchmarkRecordTwoOps alternates operation types, missing the last-op
// cache every time.
func BenchmarkRecordTwoOps(b *testing.B) {
	reg := NewRegistry(start, Options{})
	rec := reg.Recorder(0)
	ops := [2]string{"scan", "batch"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rec.Record(ops[i&1], time.Duration(i%5000+1)*time.Microsecond)
	}
}

// BenchmarkRecordParallel records from GOMAXPROCS workers, each with its own
// recorder, as the drivers do.
func BenchmarkRecordParallel(b *testing.B) {
	reg := NewRegistry(start, Options{})
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rec := reg.Recorder(int(next.Add(1)))
		i := 0
		for pb.Next() {
			rec.Record("scan", time.Duration(i%5000+1)*time.Microsecond)
			i++
		}
	})
}

// BenchmarkTick is the once-a-second merge with 8 workers × 4 op types.
func BenchmarkTick(b *testing.B) {
	reg := NewRegistry(start, Options{})
	for w := 0; w < 8; w++ {
		for _, op := range []string{"a", "b", "c", "d"} {
			reg.Recorder(w).Record(op, time.Millisecond)
		}
	}
	now := start
	b.ReportAllocs()
	for b.Loop() {
		for w := 0; w < 8; w++ {
			reg.Recorder(w).Record("a", time.Millisecond)
		}
		now = now.Add(time.Second)
		reg.Tick(now)
	}
}

// work stands in for a small operation being measured: hashing 256 bytes,
// about the cost of an in-memory index lookup.
func work(buf []byte) byte {
	s := sha256.Sum256(buf)
	return s[0]
}

// BenchmarkOverhead runs the same loop of small operations with no
// measurement, with counting only (histograms off), and with histograms
// on, timing each operation with time.Now as a driver does. The
// difference between "none" and "histograms" is the instrumentation's
// cost per operation.
func BenchmarkOverhead(b *testing.B) {
	buf := make([]byte, 256)
	var sink byte
	b.Run("mode=none", func(b *testing.B) {
		for b.Loop() {
			sink ^= work(buf)
		}
	})
	for _, tc := range []struct {
		name string
		opts Options
	}{{"mode=counts", Options{Disabled: true}}, {"mode=histograms", Options{}}} {
		b.Run(tc.name, func(b *testing.B) {
			rec := NewRegistry(start, tc.opts).Recorder(0)
			for b.Loop() {
				t0 := time.Now()
				sink ^= work(buf)
				rec.Record("op", time.Since(t0))
			}
		})
	}
	_ = sink
}

// BenchmarkOverheadInterleaved measures the instrumentation's cost per
// operation directly. It alternates blocks of 1000 operations run bare,
// with only the clock reads a driver makes (time.Now and time.Since), and
// with the clock reads plus Record, so drift in machine load (other
// tenants, CPU frequency) hits all three alike. It reports the clock's and
// the histogram's cost per operation, and the total as a percentage of
// the operation.
func BenchmarkOverheadInterleaved(b *testing.B) {
	buf := make([]byte, 256)
	var sink byte
	var clockSink time.Duration
	rec := NewRegistry(start, Options{}).Recorder(0)
	const block = 1000
	var bare, clock, timed time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		for i := 0; i < block; i++ {
			sink ^= work(buf)
		}
		t1 := time.Now()
		for i := 0; i < block; i++ {
			s := time.Now()
			sink ^= work(buf)
			clockSink += time.Since(s)
		}
		t2 := time.Now()
		for i := 0; i < block; i++ {
			s := time.Now()
			sink ^= work(buf)
			rec.Record("op", time.Since(s))
		}
		timed += time.Since(t2)
		clock += t2.Sub(t1)
		bare += t1.Sub(t0)
		n += block
	}
	_, _ = sink, clockSink
	per := func(d time.Duration) float64 { return float64(d) / float64(n) }
	b.ReportMetric(per(bare), "op-ns/op")
	b.ReportMetric(per(clock-bare), "clock-ns/op")
	b.ReportMetric(per(timed-clock), "record-ns/op")
	b.ReportMetric(100*float64(timed-bare)/float64(bare), "overhead-%")
}
