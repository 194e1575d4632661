package indexer

import (
	"bytes"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/upr"
)

func TestTimekeeperAlignment(t *testing.T) {
	tk := newTimekeeper(2)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tk.streamBegin(0, 7))
	must(tk.snapshot(0, 7, 1, 3))
	must(tk.seqno(0, 7, 1))
	must(tk.seqno(0, 7, 2))
	if got := tk.alignedHWT().Seqnos[0]; got != 0 {
		t.Fatalf("aligned vb0 = %d inside snapshot [1,3], want 0", got)
	}
	if st := tk.promoteLocal(); st != nil {
		t.Fatalf("promoted %v with nothing aligned", st.Seqnos)
	}
	if h := tk.hwt(); h.Seqnos[0] != 2 || h.Snapshots[0] != [2]upr.Seqno{1, 3} || h.SnapAligned() {
		t.Fatalf("hwt = %v %v, want seqno 2 in [1,3], unaligned", h.Seqnos, h.Snapshots)
	}
	must(tk.seqno(0, 7, 3))
	st := tk.promoteLocal()
	if st == nil || st.Seqnos[0] != 3 || st.Vbuuids[0] != 7 || !st.SnapAligned() {
		t.Fatalf("promoted %+v, want vb0 at 3 on 7", st)
	}
	if again := tk.promoteLocal(); again != nil {
		t.Fatalf("promoted again without progress: %v", again.Seqnos)
	}
	// A marker whose items have not come changes nothing received.
	must(tk.snapshot(0, 7, 4, 9))
	if h := tk.hwt(); h.Seqnos[0] != 3 || !h.SnapAligned() {
		t.Fatalf("hwt after bare marker = %v %v, want aligned at 3", h.Seqnos, h.Snapshots)
	}
	// Several key versions share a seqno; going backwards is an error.
	must(tk.seqno(0, 7, 4))
	must(tk.seqno(0, 7, 4))
	if err := tk.seqno(0, 7, 3); err == nil {
		t.Fatal("seqno going backwards accepted")
	}
	if err := tk.seqno(0, 7, 10); err == nil {
		t.Fatal("seqno past the snapshot end accepted")
	}
	if err := tk.seqno(2, 7, 1); err == nil {
		t.Fatal("vb out of range accepted")
	}
}

func TestTimekeeperPromote(t *testing.T) {
	tk := newTimekeeper(2)
	for vb := upr.Vbno(0); vb < 2; vb++ {
		_ = tk.streamBegin(vb, 5)
		_ = tk.snapshot(vb, 5, 1, 2)
		_ = tk.seqno(vb, 5, 1)
		_ = tk.seqno(vb, 5, 2)
		_ = tk.snapshot(vb, 5, 3, 4)
		_ = tk.seqno(vb, 5, 3)
	}
	unaligned := tk.hwt()
	if _, err := tk.promote(unaligned); err == nil || !strings.Contains(err.Error(), "aligned") {
		t.Fatalf("promote unaligned: %v", err)
	}
	ahead := tk.alignedHWT()
	ahead.Seqnos[1], ahead.Snapshots[1] = 4, [2]upr.Seqno{3, 4}
	if _, err := tk.promote(ahead); err == nil || !strings.Contains(err.Error(), "ahead") {
		t.Fatalf("promote ahead: %v", err)
	}
	wrong := tk.alignedHWT()
	wrong.Vbuuids[0] = 6
	if _, err := tk.promote(wrong); err == nil || !strings.Contains(err.Error(), "branch") {
		t.Fatalf("promote on another branch: %v", err)
	}
	st, err := tk.promote(tk.alignedHWT())
	if err != nil || st.Seqnos[0] != 2 || st.Seqnos[1] != 2 {
		t.Fatalf("promote = %v, %v", st, err)
	}
	// A late, older promotion changes nothing.
	old := upr.NewTsVbuuid(2)
	old.Seqnos[0], old.Vbuuids[0], old.Snapshots[0] = 0, 0, [2]upr.Seqno{}
	if st, err := tk.promote(old); err != nil || st.Seqnos[0] != 2 {
		t.Fatalf("promote older = %v, %v", st, err)
	}
}

func TestMutationQueueTake(t *testing.T) {
	q := newMutationQueue(2)
	for s := upr.Seqno(1); s <= 10; s++ {
		q.push(item{vb: 0, seqno: s})
		if s%2 == 0 {
			q.push(item{vb: 1, seqno: s})
		}
	}
	if q.len() != 15 {
		t.Fatalf("len = %d, want 15", q.len())
	}
	ts := upr.NewTsVbuuid(2)
	ts.Seqnos[0], ts.Seqnos[1] = 3, 6
	var got []upr.Seqno
	n := q.take(ts, func(run []item) {
		for _, it := range run {
			got = append(got, upr.Seqno(it.vb)*100+it.seqno)
		}
	})
	want := []upr.Seqno{1, 2, 3, 102, 104, 106}
	if n != len(want) || q.len() != 15-len(want) || !equalSeqnos(got, want) {
		t.Fatalf("take = %v (n=%d, left %d), want %v", got, n, q.len(), want)
	}
	ts.Seqnos[0], ts.Seqnos[1] = 10, 10
	got = got[:0]
	q.take(ts, func(run []item) {
		for _, it := range run {
			got = append(got, upr.Seqno(it.vb)*100+it.seqno)
		}
	})
	want = []upr.Seqno{4, 5, 6, 7, 8, 9, 10, 108, 110}
	if !equalSeqnos(got, want) || q.len() != 0 {
		t.Fatalf("second take = %v (left %d), want %v", got, q.len(), want)
	}
}

func equalSeqnos(a, b []upr.Seqno) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMainKey(t *testing.T) {
	for _, tc := range []struct{ key, doc string }{
		{"", ""}, {"\x06abc\x00\x01", "doc-1"}, {"\x05\x80", strings.Repeat("x", 300)},
	} {
		k := appendMainKey(nil, []byte(tc.key), []byte(tc.doc))
		ek, d, err := splitMainKey(k)
		if err != nil || string(ek) != tc.key || string(d) != tc.doc {
			t.Errorf("split(append(%q, %q)) = %q, %q, %v", tc.key, tc.doc, ek, d, err)
		}
	}
	if _, _, err := splitMainKey([]byte{0x00, 0x05}); err == nil {
		t.Error("split of a key with a too-long docid length succeeded")
	}
	if _, _, err := splitMainKey([]byte{1}); err == nil {
		t.Error("split of a one-byte key succeeded")
	}
}

func TestScanBoundsEmpty(t *testing.T) {
	for _, req := range []ScanRequest{
		{Kind: ScanRange, Low: []any{5.0}, High: []any{5.0}, Inclusion: IncludeLow},
		{Kind: ScanRange, Low: []any{5.0}, High: []any{5.0}, Inclusion: IncludeHigh},
		{Kind: ScanRange, Low: []any{6.0}, High: []any{5.0}, Inclusion: IncludeBoth},
	} {
		_, _, empty, err := scanBounds(req)
		if err != nil || !empty {
			t.Errorf("bounds(%+v) empty=%v err=%v, want empty", req, empty, err)
		}
	}
	lo, hi, empty, err := scanBounds(ScanRequest{Kind: ScanRange, Low: []any{5.0}, High: []any{5.0}, Inclusion: IncludeBoth})
	if err != nil || empty || bytes.Compare(lo, hi) >= 0 {
		t.Errorf("[5,5] bounds = %x %x empty=%v err=%v", lo, hi, empty, err)
	}
	if _, _, _, err := scanBounds(ScanRequest{Kind: ScanLookup}); err == nil {
		t.Error("lookup without a key accepted")
	}
}

func TestConfig(t *testing.T) {
	var c Config
	c.EnsureDefaults()
	if err := c.Validate(); err == nil {
		t.Fatal("config without engine validated")
	}
	c.Engine = memoryEngine(t)
	c.Dir = t.TempDir()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if s := c.String(); !strings.Contains(s, "snapshot_interval=200ms") || !strings.Contains(s, "queue_size=262144") {
		t.Fatalf("String() = %q", s)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.SnapshotInterval = 5e6 },
		func(c *Config) { c.STMode = "raft" },
		func(c *Config) { c.NumVbuckets = -1 },
		func(c *Config) { c.Dir = "" },
	} {
		cc := c
		bad(&cc)
		if err := cc.Validate(); err == nil {
			t.Errorf("bad config %s validated", cc)
		}
	}
}

var _ = projector.Upsert

func TestBackCache(t *testing.T) {
	c := newBackCache(2*(1+3+backCacheEntryOverhead), true)
	if k, known := c.get([]byte("a")); !known || k != nil {
		t.Fatalf("complete cache miss = %q, %v; want known absent", k, known)
	}
	c.put([]byte("a"), []byte("k01"))
	c.put([]byte("b"), []byte("k02"))
	if k, known := c.get([]byte("a")); !known || string(k) != "k01" {
		t.Fatalf("get a = %q, %v", k, known)
	}
	c.put([]byte("a"), nil)
	if k, known := c.get([]byte("a")); !known || k != nil {
		t.Fatalf("deleted a = %q, %v", k, known)
	}
	c.put([]byte("a"), []byte("k03"))
	c.put([]byte("c"), []byte("k04")) // over the bound: empties, incomplete
	if _, known := c.get([]byte("b")); known {
		t.Fatal("overflowed cache still claims to know")
	}
	c.put([]byte("d"), []byte("k05"))
	if k, known := c.get([]byte("d")); !known || string(k) != "k05" {
		t.Fatalf("refilled d = %q, %v", k, known)
	}
	var off *backCache
	off.put([]byte("x"), []byte("y"))
	if _, known := off.get([]byte("x")); known {
		t.Fatal("nil cache knows something")
	}
	if newBackCache(0, true) != nil {
		t.Fatal("zero bound made a cache")
	}
}
