package indexer

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

func decodeIDs(t *testing.T, b []byte) []uint64 {
	t.Helper()
	n, k := binary.Uvarint(b)
	if k <= 0 {
		t.Fatalf("snapshot list %x", b)
	}
	b = b[k:]
	var ids []uint64
	for range n {
		id, k := binary.Uvarint(b)
		if k <= 0 {
			t.Fatalf("snapshot list truncated")
		}
		ids = append(ids, id)
		b = b[k:]
	}
	return ids
}

// TestPersistRetention: every snapshot persists (interval 1 ns); each
// slice keeps MaxRollbacks recovery points whose meta is the snapshot's
// vector; a slice that did not change takes no new one.
func TestPersistRetention(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engines.Engine) {
		ix := newTestIndexer(t, e, Config{NumVbuckets: 8, PersistInterval: 1, MaxRollbacks: 2})
		mustCreate(t, ix, 1, defn.IndexDefn{Name: "busy", SecExprs: []string{"k"}, Partitions: 2})
		mustCreate(t, ix, 2, defn.IndexDefn{Name: "quiet", SecExprs: []string{"k"}})
		g := newGen(8)
		var snaps []*upr.TsVbuuid
		for round := range 5 {
			for i := range 10 {
				ts := []target{{inst: 1, part: i % 2, key: enc(t, float64(round*10+i))}}
				if round == 0 {
					ts = append(ts, target{inst: 2, key: enc(t, float64(i))})
				}
				g.upsert(fmt.Sprintf("d%d", i), ts...)
			}
			feed(t, ix, g.batch())
			step(t, ix)
			snaps = append(snaps, ix.SnapshotTS())
		}
		if st := ix.Stats(); st.NumPersisted != 5 {
			t.Fatalf("persisted %d rounds, want 5", st.NumPersisted)
		}
		check := func(s *slice, wantIDs []uint64, wantTS []*upr.TsVbuuid) {
			t.Helper()
			rps, err := s.store.RecoveryPoints()
			if err != nil {
				t.Fatal(err)
			}
			if len(rps) != len(wantIDs) {
				t.Fatalf("slice %s: %d recovery points, want %d", s.name, len(rps), len(wantIDs))
			}
			for i, rp := range rps {
				var ts upr.TsVbuuid
				if err := ts.UnmarshalBinary(rp.Meta); err != nil {
					t.Fatal(err)
				}
				if rp.ID != wantIDs[i] || !ts.Equal(wantTS[i]) {
					t.Fatalf("slice %s: recovery point %d at %v, want %d at %v", s.name, rp.ID, ts.Seqnos, wantIDs[i], wantTS[i].Seqnos)
				}
			}
			b, ok, err := s.store.Get(engines.Meta, metaSnapshots)
			if err != nil || !ok {
				t.Fatalf("slice %s: snapshot list: %v %v", s.name, ok, err)
			}
			if got := decodeIDs(t, b); fmt.Sprint(got) != fmt.Sprint(wantIDs) {
				t.Fatalf("slice %s: snapshot list %v, want %v", s.name, got, wantIDs)
			}
		}
		for _, s := range ix.insts[1].slices {
			check(s, []uint64{4, 5}, snaps[3:])
		}
		check(ix.insts[2].slices[0], []uint64{1}, snaps[:1])
	})
}
