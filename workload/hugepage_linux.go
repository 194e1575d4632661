package workload

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHuge asks the kernel to back the 2 MiB-aligned interior of b,
// fresh memory not yet touched, with transparent huge pages. Filling the
// history's chunks is the source's main cost after the CPU work, and most
// of it is page faults on fresh memory: with huge pages there are 512×
// fewer. It is advice only (THP may be off): errors are ignored.
func adviseHuge(b []byte) {
	const huge = 2 << 20
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	start := (p + huge - 1) &^ (huge - 1)
	end := (p + uintptr(len(b))) &^ (huge - 1)
	if end > start {
		_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), start-p)), end-start), unix.MADV_HUGEPAGE)
	}
}
