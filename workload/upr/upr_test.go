package upr

import (
	"bytes"
	"strings"
	"testing"
)

func TestEventText(t *testing.T) {
	for _, tc := range []struct {
		ev   Event
		want string
	}{
		{Event{Op: OpStreamBegin, Vb: 3, Vbuuid: 9, FailoverLog: FailoverLog{{9, 40}, {7, 0}}}, "vb=3 stream-begin vbuuid=9 failover=9@40,7@0"},
		{Event{Op: OpSnapshot, Vb: 3, Vbuuid: 9, SnapStart: 1, SnapEnd: 12}, "vb=3 snapshot 1..12 vbuuid=9"},
		{Event{Op: OpMutation, Vb: 1, Seqno: 5, RevSeqno: 2, Key: []byte("k"), Value: []byte(`{"a":1}`), EmitNanos: 99}, `vb=1 mutation seq=5 rev=2 key=k value={"a":1}`},
		{Event{Op: OpMutation, Vb: 1, Seqno: 5, RevSeqno: 2, Key: []byte("k k"), Value: []byte("a\nb")}, `vb=1 mutation seq=5 rev=2 key=k k value="a\nb"`},
		{Event{Op: OpMutation, Vb: 1, Seqno: 6, Key: []byte(`"q"`), Value: nil}, `vb=1 mutation seq=6 rev=0 key="\"q\"" value=""`},
		{Event{Op: OpDeletion, Vb: 1, Seqno: 6, RevSeqno: 3, Key: []byte("k")}, "vb=1 deletion seq=6 rev=3 key=k"},
		{Event{Op: OpExpiration, Vb: 1, Seqno: 7, RevSeqno: 4, Key: []byte("k")}, "vb=1 expiration seq=7 rev=4 key=k"},
		{Event{Op: OpStreamEnd, Vb: 2, EndReason: EndStateChanged}, "vb=2 stream-end reason=state-changed"},
		{Event{Op: OpRollback, Vb: 2, RollbackSeqno: 17}, "vb=2 rollback seqno=17"},
		{Event{Op: 99, Vb: 2}, "vb=2 opcode(99)"},
	} {
		if got := tc.ev.String(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
		if strings.Contains(tc.ev.String(), "\n") {
			t.Errorf("%q spans lines", tc.ev.String())
		}
	}
}

func TestTsVbuuidBinary(t *testing.T) {
	ts := NewTsVbuuid(3)
	ts.Seqnos[1], ts.Vbuuids[1], ts.Snapshots[1] = 10, 1<<47, [2]Seqno{5, 10}
	ts.Seqnos[2] = 1 << 62
	b, _ := ts.MarshalBinary()
	var got TsVbuuid
	if err := got.UnmarshalBinary(b); err != nil || !got.Equal(ts) {
		t.Fatalf("round trip: %v, %+v", err, got)
	}
	for i := range b {
		if err := got.UnmarshalBinary(b[:i]); err == nil {
			t.Fatalf("truncated to %d bytes: no error", i)
		}
	}
	if err := got.UnmarshalBinary(append(b, 0)); err == nil {
		t.Fatal("trailing byte: no error")
	}
}

// FuzzTsVbuuidUnmarshal checks that decoding arbitrary bytes never panics
// or allocates without bound, and that whatever decodes re-encodes to the
// same bytes when they were canonical.
func FuzzTsVbuuidUnmarshal(f *testing.F) {
	ts := NewTsVbuuid(4)
	ts.Seqnos[0], ts.Vbuuids[0], ts.Snapshots[0] = 3, 77, [2]Seqno{1, 3}
	b, _ := ts.MarshalBinary()
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		var ts TsVbuuid
		if err := ts.UnmarshalBinary(data); err != nil {
			return
		}
		if ts.Len() > 1<<16 {
			t.Fatalf("decoded %d vbuckets", ts.Len())
		}
		again, err := ts.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var ts2 TsVbuuid
		if err := ts2.UnmarshalBinary(again); err != nil || !ts2.Equal(&ts) {
			t.Fatalf("re-decode: %v", err)
		}
		// Varints have non-canonical forms (padding bytes); canonical
		// input must round-trip exactly.
		if len(again) == len(data) && !bytes.Equal(again, data) {
			t.Fatalf("same length, different bytes:\n%x\n%x", data, again)
		}
	})
}

func TestRequestValidate(t *testing.T) {
	ok := []StreamRequest{{}, {Start: 5, SnapStart: 5, SnapEnd: 5, End: 5}, {Start: 5, SnapStart: 0, SnapEnd: 9, End: 100}}
	for _, r := range ok {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := []StreamRequest{{Start: 5, SnapStart: 6, SnapEnd: 9, End: 9}, {Start: 5, SnapStart: 0, SnapEnd: 4, End: 9}, {Start: 5, SnapStart: 5, SnapEnd: 5, End: 4}}
	for _, r := range bad {
		if err := r.Validate(); err == nil {
			t.Errorf("%+v: no error", r)
		}
	}
}
