package measure

import "sort"

// Unit is the resolution histograms record latencies in: a value v in a
// histogram from Histogram means v×Unit.
const Unit = unit

// Ops lists the operation types recorded so far (as of the last Tick),
// sorted.
func (r *Registry) Ops() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := make([]string, 0, len(r.ops))
	for op := range r.ops {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}
