package coordinator

import (
	"context"
	"fmt"
	"time"

	"github.com/idxbench/idxbench/workload/upr"
)

// Promoter chooses stability timestamps in coordinator mode: it collects each
// indexer's snapshot-aligned high-watermark and promotes, per vbucket, the
// lowest seqno every indexer has reached, so every indexer can flush to the
// same ST and scans across indexers see one consistent vector. It is a plain
// state machine; RunPromotion drives it on a timer.
type Promoter struct {
	nodes    []*upr.TsVbuuid // last aligned HWT observed per indexer
	promoted *upr.TsVbuuid   // last ST chosen
}

// NewPromoter returns a promoter for n indexers over vbuckets vbuckets.
func NewPromoter(n, vbuckets int) *Promoter {
	return &Promoter{nodes: make([]*upr.TsVbuuid, n), promoted: upr.NewTsVbuuid(vbuckets)}
}

// Observe records indexer node's aligned high-watermark timestamp. ts must be
// snapshot-aligned.
func (p *Promoter) Observe(node int, ts *upr.TsVbuuid) error {
	if node < 0 || node >= len(p.nodes) {
		return fmt.Errorf("promoter: node %d out of range [0,%d)", node, len(p.nodes))
	}
	if ts.Len() != p.promoted.Len() {
		return fmt.Errorf("promoter: node %d sent a vector over %d vbuckets, want %d", node, ts.Len(), p.promoted.Len())
	}
	if !ts.SnapAligned() {
		return fmt.Errorf("promoter: node %d sent a vector that is not snapshot-aligned", node)
	}
	p.nodes[node] = ts.Clone()
	return nil
}

// Next returns the next stability timestamp, or nil when it would not advance
// past the last one (or some indexer has not reported yet). Per vbucket it
// takes the lowest seqno over the indexers; a vbucket whose indexers disagree
// on the branch (vbuuid) stays where it was until they agree.
func (p *Promoter) Next() *upr.TsVbuuid {
	for _, n := range p.nodes {
		if n == nil {
			return nil
		}
	}
	st := p.promoted.Clone()
	advanced := false
	for vb := 0; vb < st.Len(); vb++ {
		low := p.nodes[0]
		agree := true
		for _, n := range p.nodes[1:] {
			if n.Vbuuids[vb] != low.Vbuuids[vb] {
				agree = false
				break
			}
			if n.Seqnos[vb] < low.Seqnos[vb] {
				low = n
			}
		}
		if !agree {
			continue
		}
		// A branch change (rollback) may move a vbucket backwards; follow it.
		if low.Seqnos[vb] != st.Seqnos[vb] || low.Vbuuids[vb] != st.Vbuuids[vb] {
			st.Seqnos[vb] = low.Seqnos[vb]
			st.Vbuuids[vb] = low.Vbuuids[vb]
			st.Snapshots[vb] = low.Snapshots[vb]
			advanced = true
		}
	}
	if !advanced {
		return nil
	}
	p.promoted = st
	return st.Clone()
}

// Node is what the coordinator needs of an indexer in coordinator mode.
// *indexer.Indexer implements it.
type Node interface {
	// AlignedHWT is the indexer's high-watermark timestamp cut back, per
	// vbucket, to the last complete snapshot it has received.
	AlignedHWT() *upr.TsVbuuid
	// PromoteST tells the indexer it may flush up to and snapshot at ts.
	PromoteST(ts *upr.TsVbuuid) error
}

// RunPromotion collects the nodes' aligned high-watermarks every interval and
// broadcasts each new stability timestamp, until ctx is done.
func RunPromotion(ctx context.Context, interval time.Duration, vbuckets int, nodes []Node) error {
	p := NewPromoter(len(nodes), vbuckets)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for i, n := range nodes {
			if err := p.Observe(i, n.AlignedHWT()); err != nil {
				return err
			}
		}
		st := p.Next()
		if st == nil {
			continue
		}
		for i, n := range nodes {
			if err := n.PromoteST(st); err != nil {
				return fmt.Errorf("promote stability timestamp on indexer %d: %w", i, err)
			}
		}
	}
}
