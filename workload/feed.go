package workload

import (
	"context"
	"errors"
	"fmt"

	"github.com/idxbench/idxbench/workload/upr"
)

// ErrFeedClosed is returned by a closed feed's methods.
var ErrFeedClosed = errors.New("workload: feed closed")

// Feed multiplexes vbucket streams of one bucket for one consumer, like a
// DCP connection. Per vbucket, events arrive in order: the answer to the
// request (OpStreamBegin with the failover log, or OpRollback after which
// the stream is closed), then snapshot markers each followed by their
// items, then possibly OpStreamEnd. Across vbuckets, Next serves streams
// round-robin.
//
// A stream requested inside a partial snapshot (SnapStart ≤ Start <
// SnapEnd, Start > 0) resumes it, as KV does: its first marker is
// [SnapStart, X] with X ≥ SnapEnd, so the consumer, whose state inside a
// deduplicated snapshot need not be one the bucket ever had, is consistent
// again only at X. A consumer that received a marker but none of its items
// is still at the end of the previous snapshot and should request with
// [Start, Start].
//
// Event.Key and Event.Value share the bucket's immutable history: they stay
// valid forever and must not be modified.
//
// A Feed's methods may be called from several goroutines; its state is
// guarded by the bucket's lock.
type Feed struct {
	b *Bucket
	// vbs[vb] lists vb's streams in delivery order; only the last one may be
	// open, earlier ones only have final events left to deliver.
	vbs    [][]*stream
	rr     int // round-robin cursor
	closed bool
	kick   chan struct{} // a request arrived while Next waits
	done   chan struct{} // closed by Close
}

type stream struct {
	req upr.StreamRequest
	gen uint64 // vbucket generation at request time
	// answer is the pending StreamBegin or Rollback event.
	answer *upr.Event
	// open is true while the stream may send data; final is the pending
	// StreamEnd once it is not.
	open  bool
	final *upr.Event
	// backfill: the first snapshot still has to be built (start was 0).
	backfill bool
	// sent: every item at or below it was sent or deduplicated away.
	sent upr.Seqno
	// resume is set while the first snapshot of a stream that resumes
	// inside a partial snapshot [SnapStart, SnapEnd] is still to be cut:
	// that snapshot must reach SnapEnd, so that the requester becomes
	// consistent again only where it would have been.
	resume bool
	// pending is the rest of the snapshot being sent, and pendingArena
	// the arena its bytes are in (a compaction may replace the bucket's
	// arena meanwhile): a view of the vbucket's history, or of buf if it
	// spans segments (history.view).
	pending      []item
	pendingArena arena
	buf          []item
}

func (s *stream) finished() bool { return !s.open && s.answer == nil && s.final == nil }

// NewFeed opens a feed with no streams.
func (b *Bucket) NewFeed() *Feed {
	return &Feed{
		b:    b,
		vbs:  make([][]*stream, len(b.vbs)),
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
}

// Request opens a stream. It fails only if the request is malformed
// (snapStart ≤ start ≤ snapEnd violated, end before start), the vbucket is
// out of range or already has an open stream on this feed, or the feed is
// closed. The answer — OpStreamBegin or OpRollback — arrives as the
// stream's first event. The answer is decided now, against the bucket's
// state at this call.
func (f *Feed) Request(req upr.StreamRequest) error {
	if int(req.Vb) >= len(f.vbs) {
		return fmt.Errorf("stream request: vb %d out of range (%d vbuckets)", req.Vb, len(f.vbs))
	}
	if err := req.Validate(); err != nil {
		return fmt.Errorf("stream request: %w", err)
	}
	b := f.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if f.closed {
		return ErrFeedClosed
	}
	v := &b.vbs[req.Vb]
	if ss := f.vbs[req.Vb]; len(ss) > 0 {
		last := ss[len(ss)-1]
		f.checkGenLocked(last, v)
		if last.open {
			return fmt.Errorf("stream request: vb %d already has an open stream", req.Vb)
		}
	}
	s := &stream{req: req, gen: v.gen}
	if seq, rb := rollbackSeqno(v.log, v.high, req); rb {
		s.answer = &upr.Event{Op: upr.OpRollback, Vb: req.Vb, Vbuuid: v.log[0].Vbuuid, RollbackSeqno: seq}
	} else {
		s.answer = &upr.Event{Op: upr.OpStreamBegin, Vb: req.Vb, Vbuuid: v.log[0].Vbuuid, FailoverLog: append(upr.FailoverLog(nil), v.log...)}
		s.open = true
		s.backfill = req.Start == 0
		s.sent = req.Start
		s.resume = req.Start > 0 && req.SnapEnd > req.Start
	}
	f.vbs[req.Vb] = append(f.vbs[req.Vb], s)
	select {
	case f.kick <- struct{}{}:
	default:
	}
	return nil
}

// CloseStream closes vb's open stream. Its undelivered items are dropped; if
// its answer was already delivered, an OpStreamEnd(EndClosed) follows as its
// last event, else the stream vanishes without a trace. The vbucket may be
// requested again at once.
func (f *Feed) CloseStream(vb upr.Vbno) error {
	if int(vb) >= len(f.vbs) {
		return fmt.Errorf("close stream: vb %d out of range (%d vbuckets)", vb, len(f.vbs))
	}
	b := f.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if f.closed {
		return ErrFeedClosed
	}
	ss := f.vbs[vb]
	if len(ss) == 0 || !ss[len(ss)-1].open {
		return fmt.Errorf("close stream: vb %d has no open stream", vb)
	}
	s := ss[len(ss)-1]
	if s.answer != nil {
		f.vbs[vb] = ss[:len(ss)-1]
		return nil
	}
	s.open, s.pending = false, nil
	s.final = &upr.Event{Op: upr.OpStreamEnd, Vb: vb, Vbuuid: b.vbs[vb].log[0].Vbuuid, EndReason: upr.EndClosed}
	return nil
}

// Close closes the feed and all its streams; Next returns ErrFeedClosed.
func (f *Feed) Close() error {
	f.b.mu.Lock()
	defer f.b.mu.Unlock()
	if !f.closed {
		f.closed = true
		clear(f.vbs)
		close(f.done)
	}
	return nil
}

// Next fills buf with at least one event, blocking until one is available,
// ctx is done (ctx.Err()) or the feed is closed (ErrFeedClosed). Events
// available are returned even when ctx is already done.
func (f *Feed) Next(ctx context.Context, buf []upr.Event) (int, error) {
	if len(buf) == 0 {
		return 0, errors.New("feed: Next needs a non-empty buffer")
	}
	for {
		n, wake, err := f.poll(buf)
		if n > 0 || err != nil {
			return n, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-wake:
		case <-f.kick:
		case <-f.done:
		}
	}
}

// Poll is Next without blocking: it returns 0 events when none is available.
func (f *Feed) Poll(buf []upr.Event) (int, error) {
	n, _, err := f.poll(buf)
	return n, err
}

func (f *Feed) poll(buf []upr.Event) (int, <-chan struct{}, error) {
	b := f.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if f.closed {
		return 0, nil, ErrFeedClosed
	}
	n := f.fillLocked(buf)
	if n > 0 {
		return n, nil, nil
	}
	return 0, b.waitLocked(), nil
}

// fillLocked serves the vbuckets round-robin, at most quota events from one
// vbucket per turn, until buf is full or no stream has anything.
func (f *Feed) fillLocked(buf []upr.Event) int {
	quota := max(16, len(buf)/8)
	nvb := len(f.vbs)
	n := 0
	for progress := true; progress && n < len(buf); {
		progress = false
		start := f.rr
		for k := 0; k < nvb && n < len(buf); k++ {
			vb := (start + k) % nvb
			if len(f.vbs[vb]) == 0 {
				continue
			}
			m := f.emitVbLocked(upr.Vbno(vb), buf[n:min(len(buf), n+quota)])
			if m > 0 {
				n += m
				progress = true
				f.rr = (vb + 1) % nvb
			}
		}
	}
	return n
}

// emitVbLocked fills buf with vb's next events.
func (f *Feed) emitVbLocked(vb upr.Vbno, buf []upr.Event) int {
	n := 0
	for n < len(buf) && len(f.vbs[vb]) > 0 {
		s := f.vbs[vb][0]
		n += f.emitLocked(s, buf[n:])
		if !s.finished() {
			break
		}
		f.vbs[vb] = f.vbs[vb][1:]
	}
	if len(f.vbs[vb]) == 0 {
		f.vbs[vb] = nil
	}
	return n
}

// checkGenLocked ends s if its vbucket failed over, or KV restarted, since
// it was requested.
func (f *Feed) checkGenLocked(s *stream, v *vbucket) {
	if s.open && s.gen != v.gen {
		s.open, s.pending = false, nil
		s.final = &upr.Event{Op: upr.OpStreamEnd, Vb: s.req.Vb, Vbuuid: v.log[0].Vbuuid, EndReason: v.ended}
	}
}

// emitLocked fills buf with s's next events: the answer, then snapshots,
// then the final StreamEnd.
func (f *Feed) emitLocked(s *stream, buf []upr.Event) int {
	vb := s.req.Vb
	v := &f.b.vbs[vb]
	n := 0
	if s.answer != nil {
		buf[n] = *s.answer
		s.answer = nil
		n++
	}
	f.checkGenLocked(s, v)
	for s.open && n < len(buf) {
		if len(s.pending) > 0 {
			k := min(len(s.pending), len(buf)-n)
			vbuuid := v.log[0].Vbuuid
			for i := range s.pending[:k] {
				it := &s.pending[i]
				buf[n] = upr.Event{
					Op: it.op, Vb: vb, Vbuuid: vbuuid, Seqno: it.seqno, RevSeqno: it.rev,
					Key: s.pendingArena.key(it), Value: s.pendingArena.value(it), EmitNanos: it.emit,
				}
				n++
			}
			s.pending = s.pending[k:]
			continue
		}
		if !s.backfill && s.sent >= s.req.End {
			s.open = false
			s.final = &upr.Event{Op: upr.OpStreamEnd, Vb: vb, Vbuuid: v.log[0].Vbuuid, EndReason: upr.EndOK}
			break
		}
		switch f.nextSnapshotLocked(s, v, &buf[n]) {
		case cutMarker:
			n++
		case cutNothing:
			return f.finalLocked(s, buf, n)
		}
	}
	return f.finalLocked(s, buf, n)
}

func (f *Feed) finalLocked(s *stream, buf []upr.Event, n int) int {
	if !s.open && s.final != nil && n < len(buf) {
		buf[n] = *s.final
		s.final = nil
		n++
	}
	return n
}

// cut is what nextSnapshotLocked did.
type cut int

const (
	cutNothing cut = iota // nothing to send now
	cutMarker             // wrote a marker; its items are pending
	cutAgain              // moved the stream's position; look again
)

// nextSnapshotLocked cuts s's next snapshot from v's history and writes its
// marker to ev. The marker's SnapEnd is the seqno of the snapshot's last
// item.
func (f *Feed) nextSnapshotLocked(s *stream, v *vbucket, ev *upr.Event) cut {
	if s.backfill {
		// Backfill: every document's latest version at or below the limit
		// once, tombstones included (as KV's disk backfill does), so the
		// snapshot ends at the limit itself even when its last mutation was
		// a deletion, and request_plus consumers reach the current seqno.
		s.backfill = false
		limit := min(s.req.End, v.high)
		s.pending, s.pendingArena = f.b.dedupLocked(&v.items, v.items.find(limit+1)), f.b.arena
		if len(s.pending) == 0 {
			// Nothing yet (or, below a compaction, nothing left): an empty
			// vbucket sends no backfill snapshot.
			s.sent = limit
			return cutAgain
		}
		s.sent = limit
		*ev = upr.Event{Op: upr.OpSnapshot, Vb: s.req.Vb, Vbuuid: v.log[0].Vbuuid,
			SnapStart: 0, SnapEnd: s.pending[len(s.pending)-1].seqno}
		return cutMarker
	}
	if v.high <= s.sent {
		return cutNothing
	}
	h := &v.items
	i := h.find(s.sent + 1)
	if h.at(i).seqno > s.req.End {
		s.sent = s.req.End
		return cutAgain
	}
	// The group runs to the end of the bucket's snapshot, or of what there
	// is, or the stream's end; and for a resumed partial snapshot at least
	// to the requester's SnapEnd.
	j := i
	for j+1 < h.len() && h.at(j+1).seqno <= s.req.End &&
		(!h.at(j).snapEnd || s.resume && h.at(j).seqno < s.req.SnapEnd) {
		j++
	}
	// pending is empty, so its copy buffer is free.
	group := h.view(i, j+1, &s.buf)
	start := s.sent + 1
	if s.resume {
		start = s.req.SnapStart
		s.resume = false
	}
	s.sent = group[len(group)-1].seqno
	if j+1 < h.len() && h.at(j+1).seqno > s.req.End {
		s.sent = s.req.End
	}
	s.pending, s.pendingArena = group, f.b.arena
	*ev = upr.Event{Op: upr.OpSnapshot, Vb: s.req.Vb, Vbuuid: v.log[0].Vbuuid,
		SnapStart: start, SnapEnd: group[len(group)-1].seqno}
	return cutMarker
}
