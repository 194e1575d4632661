package indexer

import (
	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/upr"
)

// item is one queued data key version (Upsert, Deletion, UpsertDeletion).
// docid and key alias the projector batch the key version came in, which
// the indexer owns once received.
type item struct {
	inst  uint64
	part  int32
	vb    upr.Vbno
	cmd   projector.Command
	seqno upr.Seqno
	emit  int64
	docid []byte
	key   []byte
}

// mutationQueue holds received key versions per vbucket in seqno order
// until a stability timestamp covers them. It does no locking and no
// blocking: the indexer's mutex guards it and the stream reader applies
// backpressure from its length.
type mutationQueue struct {
	vbs   [][]item
	heads []int
	n     int
}

func newMutationQueue(numVbuckets int) *mutationQueue {
	return &mutationQueue{vbs: make([][]item, numVbuckets), heads: make([]int, numVbuckets)}
}

// len is the number of queued key versions.
func (q *mutationQueue) len() int { return q.n }

func (q *mutationQueue) push(it item) {
	q.vbs[it.vb] = append(q.vbs[it.vb], it)
	q.n++
}

// take removes, per vbucket, the queued key versions with seqno ≤ ts's and
// hands each vbucket's run to fn in seqno order. fn must not keep the slice.
func (q *mutationQueue) take(ts *upr.TsVbuuid, fn func(run []item)) int {
	taken := 0
	for vb, items := range q.vbs {
		h := q.heads[vb]
		queued := items[h:]
		k := 0
		for k < len(queued) && queued[k].seqno <= ts.Seqnos[vb] {
			k++
		}
		if k == 0 {
			continue
		}
		fn(queued[:k])
		taken += k
		h += k
		switch {
		case h == len(items):
			clear(items)
			q.vbs[vb], q.heads[vb] = items[:0], 0
		case h > len(items)/2:
			// Move the rest down so the backing array does not grow
			// without bound under a steady stream.
			m := copy(items, items[h:])
			clear(items[m:])
			q.vbs[vb], q.heads[vb] = items[:m], 0
		default:
			clear(queued[:k])
			q.heads[vb] = h
		}
	}
	q.n -= taken
	return taken
}
