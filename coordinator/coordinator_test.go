package coordinator

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

func TestDDLRefusals(t *testing.T) {
	c, _ := Open("")
	if _, err := c.Create(defn.IndexDefn{Name: "a", SecExprs: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		do   func() error
		want error
	}{
		{"duplicate", func() error { _, err := c.Create(defn.IndexDefn{Name: "a", SecExprs: []string{"y"}}); return err }, ErrIndexExists},
		{"drop unknown", func() error { _, err := c.Drop("nope"); return err }, ErrIndexNotFound},
		{"build non-deferred", func() error { _, err := c.Build("a"); return err }, ErrBadTransition},
		{"active to initial", func() error {
			if err := c.SetState("a", Active); err != nil {
				return err
			}
			return c.SetState("a", Initial)
		}, ErrBadTransition},
		{"drop in recovery", func() error {
			c.SetRecovery(true)
			defer c.SetRecovery(false)
			_, err := c.Drop("a")
			return err
		}, ErrInRecovery},
	}
	for _, tc := range cases {
		if err := tc.do(); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, bad := range []defn.IndexDefn{
		{Name: ""},
		{Name: "p", IsPrimary: true, SecExprs: []string{"x"}},
		{Name: "k"},
		{Name: "path", SecExprs: []string{"a..b"}},
		{Name: "where", SecExprs: []string{"a"}, Where: "a ~ 3"},
	} {
		if _, err := c.Create(bad); err == nil {
			t.Errorf("Create(%+v) accepted a bad definition", bad)
		}
	}
}

func TestCorruptMetadataIsReportedNotReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "coordinator.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil {
		t.Fatal("Open accepted corrupt metadata")
	}
	data, _ := os.ReadFile(path)
	if string(data) != "{not json" {
		t.Fatal("Open changed the corrupt file")
	}
}

func ts(seqnos []upr.Seqno, vbuuids []upr.Vbuuid) *upr.TsVbuuid {
	t := upr.NewTsVbuuid(len(seqnos))
	for i := range seqnos {
		t.Seqnos[i] = seqnos[i]
		t.Vbuuids[i] = vbuuids[i]
		t.Snapshots[i] = [2]upr.Seqno{0, seqnos[i]}
	}
	return t
}

func TestPromoterTakesPerVbucketMinimum(t *testing.T) {
	p := NewPromoter(2, 3)
	if err := p.Observe(0, ts([]upr.Seqno{5, 9, 2}, []upr.Vbuuid{1, 1, 1})); err != nil {
		t.Fatal(err)
	}
	if st := p.Next(); st != nil {
		t.Fatalf("promoted %v before every indexer reported", st.Seqnos)
	}
	if err := p.Observe(1, ts([]upr.Seqno{7, 3, 2}, []upr.Vbuuid{1, 1, 1})); err != nil {
		t.Fatal(err)
	}
	st := p.Next()
	if st == nil || st.Seqnos[0] != 5 || st.Seqnos[1] != 3 || st.Seqnos[2] != 2 {
		t.Fatalf("got %v, want [5 3 2]", st)
	}
	if st := p.Next(); st != nil {
		t.Fatalf("promoted again without progress: %v", st.Seqnos)
	}
	// Indexers disagree on vb 1's branch: it stays put, vb 0 advances.
	p.Observe(0, ts([]upr.Seqno{8, 4, 2}, []upr.Vbuuid{1, 2, 1}))
	p.Observe(1, ts([]upr.Seqno{9, 4, 2}, []upr.Vbuuid{1, 1, 1}))
	st = p.Next()
	if st == nil || st.Seqnos[0] != 8 || st.Seqnos[1] != 3 || st.Vbuuids[1] != 1 {
		t.Fatalf("got %v %v, want seqnos [8 3 2] with vb1 on branch 1", st.Seqnos, st.Vbuuids)
	}
	unaligned := ts([]upr.Seqno{1, 1, 1}, []upr.Vbuuid{1, 1, 1})
	unaligned.Snapshots[0] = [2]upr.Seqno{0, 4}
	if err := p.Observe(0, unaligned); err == nil {
		t.Fatal("Observe accepted an unaligned vector")
	}
}
