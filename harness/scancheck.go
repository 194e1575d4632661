package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/workload"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// scanChecker compares every answer of a scan phase's clients with the
// oracle at the snapshot vector the scan read (ScanResult.TS), in a
// goroutine of its own: a client hands over (request, result) after it has
// recorded the scan's latency and goes on with its next scan, so checking
// stays off the measured path. The queue is bounded: a checker that falls
// behind slows the clients rather than sampling, and the scan rate shows
// what checking costs.
//
// The oracle is a workload.View of the scanned index, built at a vector no
// scan can read below (the latest snapshot before the clients start) and
// moved forward as answers arrive. Snapshots only move forward, so a
// client's next scan reads at or above its last one: the per-vbucket
// minimum of every client's last checked vector is a floor below which no
// answer will come. The view forgets what is below it, and Floor tells the
// compactor how much of the bucket's history checking still needs.
type scanChecker struct {
	index  string
	oracle *workload.Oracle
	defn   defn.IndexDefn
	// wait brings the oracle's bucket up to a vector when it is a replica
	// that lags the KV node the scans' snapshots came from.
	wait func(ctx context.Context, ts *upr.TsVbuuid) error

	in   chan scanCheck
	done chan struct{}

	// Owned by the checker's goroutine until done is closed.
	view          *workload.View
	last          []*upr.TsVbuuid // each client's last checked vector
	sinceForget   int
	checked       int64
	mismatches    int64
	rebuilds      int64
	firstMismatch string
	err           error

	floor atomic.Pointer[upr.TsVbuuid]
	once  sync.Once
}

// scanCheck is one scan to check.
type scanCheck struct {
	client int
	seq    int64 // the client's scan number, from 1
	req    indexer.ScanRequest
	res    *indexer.ScanResult
}

// checkQueue bounds the scans waiting for the checker.
const checkQueue = 1024

// forgetEvery is how many checks go by between two moves of the floor.
const forgetEvery = 256

// newScanChecker builds the oracle view of d at start, a vector at or below
// every snapshot the clients' scans will read, and starts checking.
func newScanChecker(o *workload.Oracle, d defn.IndexDefn, clients int, start *upr.TsVbuuid,
	wait func(context.Context, *upr.TsVbuuid) error) (*scanChecker, error) {
	v, err := o.NewView([]defn.IndexDefn{d}, start)
	if err != nil {
		return nil, fmt.Errorf("scan check of %s: %w", d.Name, err)
	}
	k := &scanChecker{index: d.Name, oracle: o, defn: d, wait: wait, view: v,
		in: make(chan scanCheck, checkQueue), done: make(chan struct{}), last: make([]*upr.TsVbuuid, clients)}
	for i := range k.last {
		k.last[i] = start
	}
	k.floor.Store(start.Clone())
	go k.run()
	return k, nil
}

// submit hands a scan to the checker, waiting for room in the queue; false
// when ctx ended first.
func (k *scanChecker) submit(ctx context.Context, ck scanCheck) bool {
	select {
	case k.in <- ck:
		return true
	case <-ctx.Done():
		return false
	}
}

// finish waits until every submitted scan is checked. Call it once the
// clients have stopped.
func (k *scanChecker) finish() {
	k.once.Do(func() { close(k.in) })
	<-k.done
}

// Floor is a vector at or below every snapshot a scan still to be checked
// can have read.
func (k *scanChecker) Floor() *upr.TsVbuuid { return k.floor.Load() }

func (k *scanChecker) run() {
	defer close(k.done)
	for ck := range k.in {
		if k.err != nil {
			continue // drain: the clients must not block
		}
		k.err = k.check(ck)
		k.last[ck.client] = ck.res.TS
		if k.sinceForget++; k.sinceForget >= forgetEvery {
			k.sinceForget = 0
			k.forget()
		}
	}
}

// forget raises the floor to the clients' last vectors.
func (k *scanChecker) forget() {
	f := k.last[0].Clone()
	for _, ts := range k.last[1:] {
		for vb, s := range ts.Seqnos {
			f.Seqnos[vb] = min(f.Seqnos[vb], s)
		}
	}
	k.view.Forget(f)
	k.floor.Store(f)
}

// check compares one answer with the view; it returns an error only when
// the oracle cannot answer.
func (k *scanChecker) check(ck scanCheck) error {
	q := viewQuery(k.index, ck.req)
	want, err := k.view.Scan(q, ck.res.TS)
	if errors.Is(err, workload.ErrVectorAhead) && k.wait != nil {
		if err = k.wait(context.Background(), ck.res.TS); err == nil {
			want, err = k.view.Scan(q, ck.res.TS)
		}
	}
	if errors.Is(err, workload.ErrViewStale) {
		// Not expected within a scan phase (no failover, snapshots move
		// forward), but a new view at the vector is still exact.
		k.rebuilds++
		if k.view, err = k.oracle.NewView([]defn.IndexDefn{k.defn}, ck.res.TS); err == nil {
			want, err = k.view.Scan(q, ck.res.TS)
		}
	}
	if err != nil {
		return fmt.Errorf("scan check of %s: %w", k.index, err)
	}
	k.checked++
	if lines := diffAnswer(ck.res, want, q.CountOnly, 3); len(lines) > 0 {
		k.mismatches++
		if k.firstMismatch == "" {
			k.firstMismatch = fmt.Sprintf("scan %d of client %d (%s) at snapshot %s: %s",
				ck.seq, ck.client, describeScan(ck.req), describeVector(ck.res.TS), strings.Join(lines, "; "))
		}
	}
	return nil
}

// viewQuery is req as the oracle view asks it.
func viewQuery(index string, req indexer.ScanRequest) workload.Query {
	q := workload.Query{Index: index, Limit: req.Limit, CountOnly: req.Kind == indexer.ScanCount}
	switch {
	case req.Kind == indexer.ScanAll:
	case req.Kind == indexer.ScanLookup || req.Kind == indexer.ScanCount && req.Equal != nil:
		q.Low, q.High, q.LowInclusive, q.HighInclusive = req.Equal, req.Equal, true, true
	default:
		q.Low, q.High = req.Low, req.High
		q.LowInclusive = req.Inclusion&indexer.IncludeLow != 0
		q.HighInclusive = req.Inclusion&indexer.IncludeHigh != 0
	}
	return q
}

// diffAnswer describes up to most differences between a scan's result and
// the oracle's answer, in index order; none when they agree.
func diffAnswer(res *indexer.ScanResult, want workload.Answer, countOnly bool, most int) []string {
	if countOnly {
		if res.Count != want.Count {
			return []string{fmt.Sprintf("count %d, oracle %d", res.Count, want.Count)}
		}
		return nil
	}
	var lines []string
	got := res.Entries
	if res.Count != len(got) {
		lines = append(lines, fmt.Sprintf("count %d with %d entries", res.Count, len(got)))
	}
	entry := func(es []defn.Entry, i int) string {
		if i >= len(es) {
			return "nothing"
		}
		return es[i].DocID + " " + fmtKey(es[i].Key)
	}
	for i := 0; i < max(len(got), len(want.Entries)) && len(lines) < most; i++ {
		if i < len(got) && i < len(want.Entries) && got[i].DocID == want.Entries[i].DocID &&
			workload.CompareKeys(got[i].Key, want.Entries[i].Key) == 0 {
			continue
		}
		lines = append(lines, fmt.Sprintf("entry %d: index %s, oracle %s", i, entry(got, i), entry(want.Entries, i)))
	}
	if len(lines) > 0 && len(got) != len(want.Entries) {
		lines = append(lines, fmt.Sprintf("%d entries, oracle %d", len(got), len(want.Entries)))
	}
	return lines
}

// describeScan is a scan request in one line, for a mismatch report.
func describeScan(req indexer.ScanRequest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", req.Kind, req.Consistency)
	switch {
	case req.Equal != nil:
		fmt.Fprintf(&b, " equal %s", fmtKey(req.Equal))
	case req.Kind != indexer.ScanAll:
		low, high := "unbounded", "unbounded"
		if req.Low != nil {
			low = fmtKey(req.Low)
		}
		if req.High != nil {
			high = fmtKey(req.High)
		}
		fmt.Fprintf(&b, " low %s high %s inclusion %s", low, high, req.Inclusion)
	}
	if req.Limit > 0 {
		fmt.Fprintf(&b, " limit %d", req.Limit)
	}
	return b.String()
}

// describeVector is a snapshot vector in short: its seqno sum and its
// first vbuckets.
func describeVector(ts *upr.TsVbuuid) string {
	const show = 4
	var b strings.Builder
	fmt.Fprintf(&b, "seqno sum %d [", ts.Sum())
	for vb, s := range ts.Seqnos[:min(show, len(ts.Seqnos))] {
		if vb > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d", s)
	}
	if len(ts.Seqnos) > show {
		b.WriteString(" …")
	}
	b.WriteByte(']')
	return b.String()
}

// scanVerdict is what a scan phase found: request_plus and at_plus scans
// that read a snapshot older than the bucket when they were issued, and,
// when checking, answers that differ from the oracle.
type scanVerdict struct {
	Consistency indexer.Consistency
	Scans       int64
	// Stale counts the consistent scans that missed an earlier mutation.
	Stale int64
	// Checking is set when every answer was compared with the oracle.
	Checking      bool
	Checked       int64
	Mismatches    int64
	FirstMismatch string
}

// Judged reports whether the phase has anything to verify.
func (v scanVerdict) Judged() bool { return v.Checking || v.Consistency != indexer.AnyConsistency }

// OK reports whether every scan passed.
func (v scanVerdict) OK() bool {
	return v.Stale == 0 && v.Mismatches == 0 && (!v.Checking || v.Checked == v.Scans)
}

func (v scanVerdict) String() string {
	var parts []string
	if v.Stale > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d %s scans read a snapshot older than the bucket at request time", v.Stale, v.Scans, v.Consistency))
	}
	if v.Mismatches > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d scans differ from the oracle; first: %s", v.Mismatches, v.Checked, v.FirstMismatch))
	}
	if v.Checking && v.Checked != v.Scans {
		parts = append(parts, fmt.Sprintf("%d of %d scans were checked", v.Checked, v.Scans))
	}
	if len(parts) > 0 {
		return strings.Join(parts, " | ")
	}
	var ok []string
	if v.Consistency != indexer.AnyConsistency {
		ok = append(ok, fmt.Sprintf("%d %s scans all saw every mutation applied before them", v.Scans, v.Consistency))
	}
	if v.Checking {
		ok = append(ok, fmt.Sprintf("%d scans equal the oracle at their snapshot vectors", v.Checked))
	}
	return "ok: " + strings.Join(ok, "; ")
}
