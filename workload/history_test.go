package workload

import (
	"testing"

	"github.com/idxbench/idxbench/workload/upr"
)

// TestHistory checks the segmented history against a plain slice: item
// access, find, views inside and across segments, and that truncation
// never writes over items a view still holds.
func TestHistory(t *testing.T) {
	var (
		h     history
		s     segSlab
		model []item
		buf   []item
	)
	push := func(seqno upr.Seqno) {
		it := item{seqno: seqno, rev: uint64(seqno) * 3}
		h.append(&s, it)
		model = append(model, it)
	}
	check := func(when string) {
		t.Helper()
		if h.len() != len(model) {
			t.Fatalf("%s: len %d, want %d", when, h.len(), len(model))
		}
		for i := range model {
			if *h.at(i) != model[i] {
				t.Fatalf("%s: item %d is %+v, want %+v", when, i, *h.at(i), model[i])
			}
		}
	}
	n := 5*segItems + 17
	for i := range n {
		push(upr.Seqno(2*i + 2)) // even seqnos from 2
	}
	check("after appends")
	for _, s := range []upr.Seqno{0, 1, 2, 3, upr.Seqno(2 * segItems), upr.Seqno(2*n + 1), upr.Seqno(2*n + 2), 1 << 40} {
		want := 0
		for want < len(model) && model[want].seqno < s {
			want++
		}
		if got := h.find(s); got != want {
			t.Errorf("find(%d) = %d, want %d", s, got, want)
		}
	}
	for _, r := range [][2]int{{0, 1}, {0, segItems}, {segItems - 1, segItems + 1}, {3, 3*segItems + 5}, {n - 1, n}, {0, n}} {
		v := h.view(r[0], r[1], &buf)
		if len(v) != r[1]-r[0] || cap(v) != len(v) {
			t.Fatalf("view %v: len %d cap %d", r, len(v), cap(v))
		}
		for k := range v {
			if v[k] != model[r[0]+k] {
				t.Fatalf("view %v: item %d is %+v, want %+v", r, k, v[k], model[r[0]+k])
			}
		}
	}

	// Truncate inside a segment while a view holds the dropped items,
	// then append over them: the view must not change.
	cut := 3*segItems + 9
	held := h.view(cut-4, cut+4, &buf)
	heldCopy := append([]item(nil), held...)
	h.truncate(cut, &s)
	model = model[:cut]
	check("after truncate")
	for i := range 2 * segItems {
		push(upr.Seqno(1_000_000 + i))
	}
	check("after appending past the cut")
	for k := range held {
		if held[k] != heldCopy[k] {
			t.Fatalf("a view's item %d changed after truncate and append: %+v, was %+v", k, held[k], heldCopy[k])
		}
	}

	// Truncate at a segment boundary and to nothing.
	h.truncate(2*segItems, &s)
	model = model[:2*segItems]
	push(7)
	check("after truncating at a boundary")
	h.truncate(0, &s)
	model = model[:0]
	check("after truncating to nothing")
	push(9)
	check("after appending to an emptied history")
}
