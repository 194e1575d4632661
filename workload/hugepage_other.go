//go:build !linux

package workload

// adviseHuge is a no-op where transparent huge pages are not known.
func adviseHuge([]byte) {}
