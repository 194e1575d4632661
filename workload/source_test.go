package workload

import (
	"maps"
	"testing"
	"unsafe"

	"github.com/idxbench/idxbench/workload/upr"
)

func TestDocNumber(t *testing.T) {
	for id, want := range map[string]int64{
		"doc-0000000000":           0,
		"doc-0000000042":           42,
		"doc-12345678901":          12345678901,
		"doc-01234567890":          -1, // a leading zero beyond 10 digits
		"doc-000000042":            -1, // too short
		"doc-00000000x2":           -1,
		"dog-0000000042":           -1,
		"doc-99999999999999999999": -1, // too long
		"":                         -1,
	} {
		n, ok := docNumber(id)
		if ok != (want >= 0) || ok && n != uint64(want) {
			t.Errorf("docNumber(%q) = %d, %v; want %d", id, n, ok, want)
		}
		if ok && docID(n) != id {
			t.Errorf("docID(docNumber(%q)) = %q", id, docID(n))
		}
	}
}

// TestDocStates mixes generated-looking ids, which the bucket keeps by
// number, with others, across the point where a number joins the table
// (its state moves out of the map) and a failover that must roll states
// back in both places.
func TestDocStates(t *testing.T) {
	b := NewBucket(1, 1)
	rev := func(id string) (uint64, bool) {
		num, isNum := docNumber(id)
		n, dense := b.docSlotLocked(&b.vbs[0], id, num, isNum)
		m := b.vbs[0].docs[id]
		if dense {
			m = b.nums[n]
		}
		return m.rev(), m.live()
	}
	b.Set("doc-0000000002", []byte("a")) // beyond the table: in the map
	b.Set("other", []byte("b"))
	b.Set("doc-0000000000", []byte("c"))
	b.Set("doc-0000000001", []byte("d"))
	b.Set("doc-0000000002", []byte("e")) // joins the table with rev 1
	if r, live := rev("doc-0000000002"); r != 2 || !live {
		t.Fatalf("doc-0000000002: rev %d live %v, want 2 true", r, live)
	}
	if _, ok := b.vbs[0].docs["doc-0000000002"]; ok {
		t.Fatal("doc-0000000002 still in the map")
	}
	branch := b.HighSeqno(0)
	if _, _, ok := b.Delete("doc-0000000001"); !ok {
		t.Fatal("delete failed")
	}
	b.Set("other", []byte("f"))
	b.Set("doc-0000000007", []byte("g"))
	b.Set("new", []byte("h"))
	if err := b.Failover(0, branch); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]struct {
		rev  uint64
		live bool
	}{"doc-0000000001": {1, true}, "other": {1, true}, "doc-0000000007": {0, false}, "new": {0, false}, "doc-0000000002": {2, true}} {
		if r, live := rev(id); r != want.rev || live != want.live {
			t.Errorf("after failover %s: rev %d live %v, want %d %v", id, r, live, want.rev, want.live)
		}
	}
	if _, _, ok := b.Delete("new"); ok {
		t.Error("deleted a document the failover lost")
	}
	if _, s := b.Set("doc-0000000001", []byte("i")); s != branch+1 {
		t.Errorf("seqno %d, want %d", s, branch+1)
	}
	if r, _ := rev("doc-0000000001"); r != 2 {
		t.Errorf("rev %d, want 2", r)
	}
}

// TestApplyBuffered applies operations after the generator moved on to
// new slab chunks: the bucket copies them (rather than keep the chunk)
// and streams the same bytes.
func TestApplyBuffered(t *testing.T) {
	s := DefaultSpec()
	s.Docs, s.Vbuckets = 0, 4
	g, err := NewGenerator(s)
	if err != nil {
		t.Fatal(err)
	}
	b := g.NewBucket(BucketOptions{})
	ops := make([]Op, 3000) // several slab chunks
	for i := range ops {
		ops[i] = g.Next()
	}
	if c, _ := g.owned(ops[0]); c != nil {
		t.Fatal("the first op is still in the current chunk")
	}
	if c, _ := g.owned(ops[len(ops)-1]); c == nil {
		t.Fatal("the last op is not in the current chunk")
	}
	want := map[string]string{}
	for _, op := range ops {
		g.Apply(b, op)
		if op.Kind == OpInsert || op.Kind == OpUpdate {
			want[op.DocID] = string(op.Value)
		} else {
			delete(want, op.DocID)
		}
	}
	got := map[string]string{}
	streamAll(t, b, func(ev *upr.Event) {
		if ev.Op == upr.OpMutation {
			got[string(ev.Key)] = string(ev.Value)
		}
	})
	if len(got) != len(want) {
		t.Fatalf("%d live documents streamed, want %d", len(got), len(want))
	}
	for id, v := range want {
		if got[id] != v {
			t.Fatalf("%s: streamed %q, want %q", id, got[id], v)
		}
	}
}

// TestDocVbucket checks that writes to generated ids, which find their
// vbucket in the state the bucket keeps (docMeta.vb) rather than hash the
// id, land where VbOf says: on first write, on later ones, after a delete,
// and after a failover rolled states back (which forgets the vbucket).
func TestDocVbucket(t *testing.T) {
	const vbs = 64
	b := NewBucket(vbs, 1)
	check := func(id string, vb upr.Vbno, s upr.Seqno) {
		t.Helper()
		if want := VbOf(id, vbs); vb != want || s == 0 {
			t.Fatalf("%s: written to vb %d seqno %d, want vb %d", id, vb, s, want)
		}
		if got := b.HighSeqno(vb); got != s {
			t.Fatalf("%s: vb %d high seqno %d, want %d", id, vb, got, s)
		}
	}
	for round := range 3 {
		for n := range uint64(200) {
			id := docID(n)
			vb, s := b.Set(id, []byte("x"))
			check(id, vb, s)
			if int(n%3) == round {
				vb, s, ok := b.Delete(id)
				if !ok {
					t.Fatalf("delete %s failed", id)
				}
				check(id, vb, s)
			}
		}
		for vb := range upr.Vbno(vbs) {
			if h := b.HighSeqno(vb); h > 0 {
				if err := b.Failover(vb, h-1); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if m := docMeta(0).next(true, MaxVbuckets-1); m.rev() != 1 || !m.live() {
		t.Fatalf("docMeta for the last vbucket: rev %d live %v", m.rev(), m.live())
	} else if vb, ok := m.vb(); !ok || vb != MaxVbuckets-1 {
		t.Fatalf("docMeta for the last vbucket: vb %d, %v", vb, ok)
	}
}

// TestCompactKeepsChunks compacts a generated bucket again and again, at
// the current seqnos and halfway to them, and checks after each time that
// a stream from 0 sends exactly the live documents with their latest
// bodies; across the rounds Compact must both have kept arena chunks in
// place and copied out of others.
func TestCompactKeepsChunks(t *testing.T) {
	s := DefaultSpec()
	s.Docs, s.Vbuckets = 2000, 16
	g, err := NewGenerator(s)
	if err != nil {
		t.Fatal(err)
	}
	b := g.NewBucket(BucketOptions{})
	want := map[string]string{}
	apply := func(op Op) {
		g.Apply(b, op)
		if op.Kind == OpInsert || op.Kind == OpUpdate {
			want[op.DocID] = string(op.Value)
		} else {
			delete(want, op.DocID)
		}
	}
	for op, ok := g.NextLoad(); ok; op, ok = g.NextLoad() {
		apply(op)
	}
	// A feed that started before the compactions keeps streaming.
	f := b.NewFeed()
	defer f.Close()
	for vb := range b.Vbuckets() {
		if err := f.Request(upr.StreamRequest{Vb: upr.Vbno(vb), End: EndlessSeqno}); err != nil {
			t.Fatal(err)
		}
	}
	followed := map[string]string{}
	buf := make([]upr.Event, 100)
	follow := func(polls int) {
		for range polls {
			n, err := f.Poll(buf)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range buf[:n] {
				switch ev.Op {
				case upr.OpMutation:
					followed[string(ev.Key)] = string(ev.Value)
				case upr.OpDeletion, upr.OpExpiration:
					delete(followed, string(ev.Key))
				}
			}
			if n == 0 {
				return
			}
		}
	}
	kept, moved := 0, 0
	for round := range 8 {
		for range 6000 {
			apply(g.Next())
		}
		follow(20) // leave the feed partway
		before := map[*byte]bool{}
		for _, c := range b.arena.chunks {
			before[unsafe.SliceData(c)] = true
		}
		ts := b.CurrentSeqnos()
		if round%2 == 1 {
			for vb := range ts.Seqnos {
				ts.Seqnos[vb] /= 2
			}
		}
		b.Compact(ts)
		for _, c := range b.arena.chunks {
			if before[unsafe.SliceData(c)] {
				kept++
			} else {
				moved++
			}
		}
		got := map[string]string{}
		streamAll(t, b, func(ev *upr.Event) {
			if ev.Op == upr.OpMutation {
				got[string(ev.Key)] = string(ev.Value)
			}
		})
		if len(got) != len(want) {
			t.Fatalf("round %d: %d live documents streamed, want %d", round, len(got), len(want))
		}
		for id, v := range want {
			if got[id] != v {
				t.Fatalf("round %d: %s: streamed %q, want %q", round, id, got[id], v)
			}
		}
	}
	follow(1 << 30)
	if !maps.Equal(followed, want) {
		t.Fatalf("the feed that followed the compactions holds %d documents, want %d (or different bodies)", len(followed), len(want))
	}
	if kept == 0 || moved == 0 {
		t.Fatalf("compactions kept %d chunks in place and made %d new ones; want both", kept, moved)
	}
	t.Logf("compactions kept %d chunks in place and made %d new ones", kept, moved)
}
