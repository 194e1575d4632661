package measure

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Resources is what a phase cost the process (and the child processes it
// waited for).
type Resources struct {
	Wall time.Duration
	// CPUSeconds is user plus system time.
	CPUSeconds  float64
	UserSeconds float64
	SysSeconds  float64
	// PeakRSSBytes is the largest resident set of this process (or of a
	// waited-for child, if larger). It covers only the phase when
	// PeakRSSPhase is true — the kernel let Begin reset the high-water
	// mark — and the process's whole life so far otherwise.
	PeakRSSBytes uint64
	PeakRSSPhase bool
	// BytesWritten and BytesRead are what reached the storage layer
	// (/proc/self/io write_bytes and read_bytes): page-cache writes count
	// when they are flushed, so fsync inside the phase to be exact.
	BytesWritten uint64
	BytesRead    uint64
	// WriteCallBytes is what the process passed to write-like system calls
	// (wchar), whether or not it reached a disk.
	WriteCallBytes uint64
}

type resourceSnapshot struct {
	at                    time.Time
	user, sys             time.Duration
	writeBytes, readBytes uint64
	wchar                 uint64
}

// ResourceSpan measures resources between Begin and End.
type ResourceSpan struct {
	start     resourceSnapshot
	resetPeak bool
}

// Begin starts measuring a phase's resources.
func Begin() *ResourceSpan {
	s := &ResourceSpan{resetPeak: resetPeakRSS()}
	s.start = snapshotResources()
	return s
}

// End returns the resources used since Begin. It may be called more than
// once; each call measures from Begin.
func (s *ResourceSpan) End() Resources {
	end := snapshotResources()
	r := Resources{
		Wall:           end.at.Sub(s.start.at),
		UserSeconds:    (end.user - s.start.user).Seconds(),
		SysSeconds:     (end.sys - s.start.sys).Seconds(),
		BytesWritten:   sub(end.writeBytes, s.start.writeBytes),
		BytesRead:      sub(end.readBytes, s.start.readBytes),
		WriteCallBytes: sub(end.wchar, s.start.wchar),
		PeakRSSPhase:   s.resetPeak,
	}
	r.CPUSeconds = r.UserSeconds + r.SysSeconds
	r.PeakRSSBytes = peakRSS()
	return r
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// ProcessCPU is the user plus system time this process (and the children
// it waited for) used so far.
func ProcessCPU() time.Duration {
	s := snapshotResources()
	return s.user + s.sys
}

func snapshotResources() resourceSnapshot {
	s := resourceSnapshot{at: time.Now()}
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			s.user += time.Duration(ru.Utime.Nano())
			s.sys += time.Duration(ru.Stime.Nano())
		}
	}
	io := readKV("/proc/self/io")
	s.writeBytes, s.readBytes, s.wchar = io["write_bytes"], io["read_bytes"], io["wchar"]
	return s
}

// resetPeakRSS asks the kernel to reset VmHWM to the current RSS (Linux
// 4.0+, writing 5 to clear_refs), so the peak covers just the phase.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS is the larger of this process's VmHWM and the largest waited-for
// child's maximum RSS.
func peakRSS() uint64 {
	var peak uint64
	if kb, ok := readKV("/proc/self/status")["VmHWM"]; ok {
		peak = kb * 1024
	} else {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
			peak = uint64(ru.Maxrss) * 1024
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		peak = max(peak, uint64(ru.Maxrss)*1024)
	}
	return peak
}

// readKV reads "key: number [unit]" lines, as /proc/self/io and
// /proc/self/status have them. Unreadable files give an empty map.
func readKV(path string) map[string]uint64 {
	m := map[string]uint64{}
	data, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		f := bytes.Fields(v)
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.ParseUint(string(f[0]), 10, 64); err == nil {
			m[string(k)] = n
		}
	}
	return m
}

// ProcCounters are another process's CPU time and storage writes so far,
// read from /proc: how a cell accounts for node processes it has not
// waited for.
type ProcCounters struct {
	CPU          time.Duration
	BytesWritten uint64
	// PeakRSSBytes is the process's resident high-water mark (VmHWM),
	// since ResetProcPeak or the process's start.
	PeakRSSBytes uint64
	// RSSBytes is the process's resident set now (VmRSS).
	RSSBytes uint64
}

// ResetProcPeak resets pid's resident high-water mark, so the next
// ReadProc reports the peak from now on. It reports whether the kernel let
// it.
func ResetProcPeak(pid int) bool {
	return os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0) == nil
}

// clockTicks is the kernel's USER_HZ, in which /proc/PID/stat counts CPU
// time; Linux fixes it at 100 for user space.
const clockTicks = 100

// ReadProc reads pid's counters. ok is false when the process is gone or
// /proc cannot be read.
func ReadProc(pid int) (c ProcCounters, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return c, false
	}
	// The command name (field 2) may hold spaces; fields after it start
	// after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return c, false
	}
	f := bytes.Fields(data[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return c, false
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return c, false
	}
	c.CPU = time.Duration(ut+st) * time.Second / clockTicks
	io := readKV("/proc/" + strconv.Itoa(pid) + "/io")
	c.BytesWritten = io["write_bytes"]
	status := readKV("/proc/" + strconv.Itoa(pid) + "/status")
	c.PeakRSSBytes = status["VmHWM"] * 1024
	c.RSSBytes = status["VmRSS"] * 1024
	return c, true
}

// RSSBytes is this process's resident set now (VmRSS; 0 where /proc cannot
// be read).
func RSSBytes() uint64 { return readKV("/proc/self/status")["VmRSS"] * 1024 }
