package workload

import (
	"fmt"
	"slices"
	"testing"

	"github.com/idxbench/idxbench/workload/upr"
)

// TestRestartIsDeterministic checks that two buckets of one seed given the
// same restart draw the same vbuuids for the same vbuckets, whatever the
// order a map hands the vbuckets over in: a replica replaying a KV node's
// restart must hold the same failover logs.
func TestRestartIsDeterministic(t *testing.T) {
	build := func() *Bucket {
		b := NewBucket(16, 42)
		for i := range 400 {
			b.Set(fmt.Sprintf("doc-%010d", i), []byte(`{}`))
		}
		return b
	}
	persisted := map[upr.Vbno]upr.Seqno{}
	probe := build()
	for vb := range 16 {
		if h := probe.HighSeqno(upr.Vbno(vb)); h > 2 && vb%2 == 0 {
			persisted[upr.Vbno(vb)] = h - 2
		}
	}
	var first []upr.FailoverLog
	for range 5 {
		b := build()
		if err := b.Restart(persisted, true); err != nil {
			t.Fatal(err)
		}
		var logs []upr.FailoverLog
		for vb := range 16 {
			logs = append(logs, b.FailoverLog(upr.Vbno(vb)))
		}
		if first == nil {
			first = logs
			continue
		}
		for vb := range logs {
			if !slices.Equal(logs[vb], first[vb]) {
				t.Fatalf("vb %d: failover log %v, an identical bucket got %v", vb, logs[vb], first[vb])
			}
		}
	}
}
