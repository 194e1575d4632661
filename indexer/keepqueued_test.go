package indexer

import (
	"testing"

	"github.com/idxbench/idxbench/workload/upr"
)

// TestKeepQueued checks which vbuckets' queued key versions a rollback with
// RollbackQueues keep keeps, and where their streams restart.
func TestKeepQueued(t *testing.T) {
	vec := func(seqnos ...upr.Seqno) *upr.TsVbuuid {
		ts := upr.NewTsVbuuid(len(seqnos))
		for vb, s := range seqnos {
			ts.Seqnos[vb], ts.Vbuuids[vb], ts.Snapshots[vb] = s, 7, [2]upr.Seqno{s, s}
		}
		return ts
	}
	// Queued past the flushed vector 4,2,4,4,4: vb 0 seqnos 5..8, vb 1
	// 3..4, vb 2 5..6, vb 3 5..6, vb 4 5..6.
	old := newMutationQueue(5)
	for _, x := range [][2]int{{0, 5}, {0, 6}, {0, 7}, {0, 8}, {1, 3}, {1, 4}, {2, 5}, {2, 6}, {3, 5}, {3, 6}, {4, 5}, {4, 6}} {
		old.push(item{vb: upr.Vbno(x[0]), seqno: upr.Seqno(x[1])})
	}
	flushed := vec(4, 2, 4, 4, 4)
	restart := vec(4, 1, 4, 3, 4) // vb 1 and 3 went back past the queue's start
	hold := vec(4, 2, 4, 3, 4)
	aligned := vec(7, 4, 6, 6, 6) // vb 0 received seqno 8 inside an open snapshot
	points := map[upr.Vbno]upr.Seqno{2: 5, 4: 6}
	q := newMutationQueue(5)
	from, kept := keepQueued(old, q, restart, hold, flushed, aligned, points)
	// vb 0: kept to its last complete snapshot (5..7), 8 is sent again.
	// vb 1: restart ≠ hold (a slice is ahead): nothing kept. vb 2: its
	// snapshot passes the rollback point 5: nothing kept. vb 3: restored
	// below the queue's start: nothing kept. vb 4: within its point.
	want := map[int][]upr.Seqno{0: {5, 6, 7}, 4: {5, 6}}
	if kept != 5 || q.len() != 5 {
		t.Fatalf("kept %d, queue %d; want 5", kept, q.len())
	}
	for vb := range 5 {
		var got []upr.Seqno
		for _, it := range q.vbs[vb] {
			got = append(got, it.seqno)
		}
		if len(got) != len(want[vb]) {
			t.Errorf("vb %d kept %v, want %v", vb, got, want[vb])
			continue
		}
		for i := range got {
			if got[i] != want[vb][i] {
				t.Errorf("vb %d kept %v, want %v", vb, got, want[vb])
			}
		}
	}
	wantFrom := []upr.Seqno{7, 1, 4, 3, 6}
	for vb, s := range wantFrom {
		if from.Seqnos[vb] != s || !from.SnapAligned() {
			t.Errorf("streams restart from %v, want %v (aligned)", from.Seqnos, wantFrom)
			break
		}
	}
}
