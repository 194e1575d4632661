package projector

import (
	"syscall"
	"testing"
	"time"
)

// cpuTimer measures the process's CPU time (user + system, all threads, so
// GC work counts) across a benchmark loop. On a shared machine ns/op
// measures the wait for a core as well; cpu-ns/op does not.
type cpuTimer struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuTimer { return cpuTimer{processCPU()} }

// report adds the cpu-ns/op metric for b.N operations.
func (c cpuTimer) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
	}
}

// StartCPU is startCPU for the external test package: call the returned
// function after the loop.
func StartCPU() func(b *testing.B) { return startCPU().report }
