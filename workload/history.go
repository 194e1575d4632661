package workload

import (
	"sort"
	"unsafe"

	"github.com/idxbench/idxbench/workload/upr"
)

// A vbucket's history is a list of fixed-size segments of items rather
// than one array: appending never copies what is there, and the history
// takes the memory its items need and no more (an array that doubles would
// leave its outgrown copies behind, more than twice the items in fresh
// memory, which page faults make the source's main cost).
//
// Written items never change (except the snapEnd flag, under the bucket's
// lock), so a feed may keep a slice of a segment as the rest of the
// snapshot it is sending: a failover that truncates the history inside a
// segment continues on a copy of that segment (history.truncate), never
// writing over items a stream may still hold.
const (
	segShift = 7
	segItems = 1 << segShift // items per segment
	segMask  = segItems - 1
)

// history is a vbucket's items in ascending seqno order: item i is
// segs[i>>segShift][i&segMask]. Every segment has length segItems and
// all but the last are full. (Slices rather than pointers to arrays: a
// pointer to an array this big gets an explicit nil check, a load from
// the segment's first cache line at every access.)
type history struct {
	segs [][]item
	tail []item // the last segment, so appends need not load segs
	n    int
}

// len is the number of items.
func (h *history) len() int { return h.n }

// at is item i (i < len).
func (h *history) at(i int) *item { return &h.segs[i>>segShift][i&segMask] }

// last is the newest item (len > 0).
func (h *history) last() *item { return h.at(h.n - 1) }

// append adds it, taking new segments from s.
func (h *history) append(s *segSlab, it item) {
	if h.n&segMask == 0 {
		h.tail = s.alloc()
		h.segs = append(h.segs, h.tail)
	}
	h.tail[h.n&segMask] = it
	h.n++
}

// find returns the index of the first item with seqno ≥ s.
func (h *history) find(s upr.Seqno) int {
	return sort.Search(h.n, func(i int) bool { return h.at(i).seqno >= s })
}

// view returns items [i, j) (i < j ≤ len) as one slice with no spare
// capacity: a view of their segment if they lie in one, else a copy in
// buf's storage (reused: the caller must be done with what buf held).
func (h *history) view(i, j int, buf *[]item) []item {
	if i>>segShift == (j-1)>>segShift {
		seg := h.segs[i>>segShift]
		lo, hi := i&segMask, (j-1)&segMask+1
		return seg[lo:hi:hi]
	}
	out := (*buf)[:0]
	for k := i; k < j; {
		seg := h.segs[k>>segShift]
		end := min(j-k, segItems-k&segMask)
		out = append(out, seg[k&segMask:k&segMask+end]...)
		k += end
	}
	*buf = out
	return out[:len(out):len(out)]
}

// truncate drops the items from index n on. If the new last segment is
// partly kept, the history continues on a copy of it, so that later
// appends never write where a feed may still read the dropped items.
func (h *history) truncate(n int, s *segSlab) {
	if n >= h.n {
		return
	}
	keep := (n + segMask) >> segShift // segments holding items below n
	clear(h.segs[keep:])
	h.segs = h.segs[:keep]
	h.tail = nil
	if r := n & segMask; r != 0 {
		seg := s.alloc()
		copy(seg, h.segs[keep-1][:r])
		h.segs[keep-1] = seg
		h.tail = seg
	}
	h.n = n
}

// segSlab carves history segments from big chunks, huge-page advised
// (adviseHuge), so that the history's growth costs few page faults where
// a small allocation per segment would fault in fresh pages one by one.
// Chunks grow from small (small buckets stay small) to big ones.
type segSlab struct {
	free []item // the rest of the current chunk
	next int    // the next chunk's length, in segments
}

const (
	minSegChunk = 8
	maxSegChunk = 2048 // 12 MiB with 48-byte items
)

// alloc returns a segment: segItems zero items.
func (s *segSlab) alloc() []item {
	if len(s.free) == 0 {
		n := max(s.next, minSegChunk)
		s.next = min(2*n, maxSegChunk)
		s.free = make([]item, n*segItems)
		adviseHuge(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s.free))), uintptr(len(s.free))*unsafe.Sizeof(item{})))
	}
	seg := s.free[:segItems:segItems]
	s.free = s.free[segItems:]
	return seg
}
