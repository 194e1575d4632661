package indexer

import (
	"fmt"

	"github.com/idxbench/idxbench/workload/upr"
)

// vbPoint is a position in one vbucket's history: a seqno on a branch,
// inside a snapshot.
type vbPoint struct {
	seqno  upr.Seqno
	vbuuid upr.Vbuuid
	snap   [2]upr.Seqno
}

func (p vbPoint) aligned() bool { return p.seqno == 0 || p.seqno == p.snap[1] }

func pointOf(ts *upr.TsVbuuid, vb int) vbPoint {
	return vbPoint{seqno: ts.Seqnos[vb], vbuuid: ts.Vbuuids[vb], snap: ts.Snapshots[vb]}
}

func setPoint(ts *upr.TsVbuuid, vb int, p vbPoint) {
	ts.Seqnos[vb], ts.Vbuuids[vb], ts.Snapshots[vb] = p.seqno, p.vbuuid, p.snap
}

// timekeeper follows the stream per vbucket (branch, current snapshot
// marker, last seqno received) and derives the timestamps the flusher works
// to. It is a plain state machine: the stream reader feeds it, the flush
// loop and PromoteST read it, all under the indexer's mutex.
//
// A vbucket is aligned when its last seqno is the end of its current
// snapshot: only then does the received prefix describe a state the bucket
// had, so only aligned positions may become stability timestamps.
type timekeeper struct {
	// cur is the received position per vbucket: seqno is the last one
	// received, snap the last marker (which may lie ahead of seqno when its
	// first item has not arrived yet).
	cur []vbPoint
	// aligned is the last aligned position per vbucket.
	aligned []vbPoint
	// st is the last stability timestamp promoted.
	st *upr.TsVbuuid
	// demands are the vectors waiting scans need, in the order they came;
	// usually a handful, so settle walks them.
	demands  []*demand
	demandID uint64
	// due is set when a demand became covered by the aligned
	// high-watermark and not yet by a stability timestamp: with
	// Config.STOnDemand the flusher promotes now rather than at its next
	// tick.
	due bool
	// unstamped is set when a demand was met and stamp has not run since.
	unstamped bool
}

// demand is one waiting scan's vector. missing counts the vbuckets whose
// aligned seqno is still below it; at zero the aligned high-watermark
// covers it and a promotion would serve the scan. Only seqnos count: a scan
// that needs another branch is served by the exact check at its snapshot,
// and a demand met early only makes one promotion earlier.
type demand struct {
	id      uint64
	want    []upr.Seqno
	missing int
	// metAt is when the stream covered want (stamp's clock reading), 0
	// while it has not or stamp has not run since.
	metAt int64
}

func newTimekeeper(numVbuckets int) *timekeeper {
	return &timekeeper{
		cur:     make([]vbPoint, numVbuckets),
		aligned: make([]vbPoint, numVbuckets),
		st:      upr.NewTsVbuuid(numVbuckets),
	}
}

func (tk *timekeeper) checkVb(vb upr.Vbno) error {
	if int(vb) >= len(tk.cur) {
		return fmt.Errorf("vb %d out of range [0,%d)", vb, len(tk.cur))
	}
	return nil
}

// streamBegin records that vb's stream (re)started on branch vbuuid.
func (tk *timekeeper) streamBegin(vb upr.Vbno, vbuuid upr.Vbuuid) error {
	if err := tk.checkVb(vb); err != nil {
		return err
	}
	tk.cur[vb].vbuuid = vbuuid
	tk.settle(vb)
	return nil
}

// snapshot records a snapshot marker [start, end] for vb.
func (tk *timekeeper) snapshot(vb upr.Vbno, vbuuid upr.Vbuuid, start, end upr.Seqno) error {
	if err := tk.checkVb(vb); err != nil {
		return err
	}
	c := &tk.cur[vb]
	if start > end || end < c.seqno {
		return fmt.Errorf("vb %d: snapshot marker [%d,%d] after seqno %d", vb, start, end, c.seqno)
	}
	if vbuuid != 0 {
		c.vbuuid = vbuuid
	}
	c.snap = [2]upr.Seqno{start, end}
	tk.settle(vb)
	return nil
}

// seqno records that vb's stream reached seqno (a key version or a Sync).
// Several key versions may carry one seqno (one per index instance).
func (tk *timekeeper) seqno(vb upr.Vbno, vbuuid upr.Vbuuid, seqno upr.Seqno) error {
	if err := tk.checkVb(vb); err != nil {
		return err
	}
	c := &tk.cur[vb]
	if seqno < c.seqno {
		return fmt.Errorf("vb %d: seqno %d after %d", vb, seqno, c.seqno)
	}
	if seqno > c.snap[1] {
		return fmt.Errorf("vb %d: seqno %d outside snapshot [%d,%d]", vb, seqno, c.snap[0], c.snap[1])
	}
	if vbuuid != 0 {
		c.vbuuid = vbuuid
	}
	c.seqno = seqno
	tk.settle(vb)
	return nil
}

func (tk *timekeeper) settle(vb upr.Vbno) {
	if c := tk.cur[vb]; c.seqno == c.snap[1] {
		old := tk.aligned[vb].seqno
		tk.aligned[vb] = c
		for _, d := range tk.demands {
			if w := d.want[vb]; d.missing > 0 && old < w && c.seqno >= w {
				if d.missing--; d.missing == 0 {
					tk.due, tk.unstamped = true, true
				}
			}
		}
	}
}

// addDemand registers the vector a waiting scan needs and returns its id
// for dropDemand. When the aligned high-watermark already covers it but the
// stability timestamp does not, the demand is due at once.
func (tk *timekeeper) addDemand(ts *upr.TsVbuuid) uint64 {
	tk.demandID++
	d := &demand{id: tk.demandID, want: append([]upr.Seqno(nil), ts.Seqnos...)}
	stable := true
	for vb, w := range d.want {
		if tk.aligned[vb].seqno < w {
			d.missing++
		}
		if tk.st.Seqnos[vb] < w {
			stable = false
		}
	}
	tk.demands = append(tk.demands, d)
	if d.missing == 0 {
		tk.unstamped = true
		if !stable {
			tk.due = true
		}
	}
	return d.id
}

// stamp records now as the time every demand met since the last stamp was
// met. The caller passes its clock's reading, so the timekeeper reads none.
func (tk *timekeeper) stamp(now int64) {
	if !tk.unstamped {
		return
	}
	tk.unstamped = false
	for _, d := range tk.demands {
		if d.missing == 0 && d.metAt == 0 {
			d.metAt = now
		}
	}
}

// demandMet returns when the demand's vector was covered by the stream
// (its stamp), 0 when it was not or is unknown.
func (tk *timekeeper) demandMet(id uint64) int64 {
	for _, d := range tk.demands {
		if d.id == id {
			return d.metAt
		}
	}
	return 0
}

// dropDemand forgets a demand (its scan was served, timed out or failed).
func (tk *timekeeper) dropDemand(id uint64) {
	for i, d := range tk.demands {
		if d.id == id {
			tk.demands = append(tk.demands[:i], tk.demands[i+1:]...)
			return
		}
	}
}

// recount recomputes every demand's missing vbuckets after the aligned
// positions moved other than forward (a reset).
func (tk *timekeeper) recount() {
	tk.due, tk.unstamped = false, false
	for _, d := range tk.demands {
		d.missing, d.metAt = 0, 0
		for vb, w := range d.want {
			if tk.aligned[vb].seqno < w {
				d.missing++
			}
		}
	}
}

// hwt is the high-watermark timestamp: everything received.
func (tk *timekeeper) hwt() *upr.TsVbuuid {
	ts := upr.NewTsVbuuid(len(tk.cur))
	for vb, c := range tk.cur {
		if c.seqno == tk.aligned[vb].seqno {
			// Everything received is a complete snapshot; a marker whose
			// items have not come yet changes nothing received.
			c = tk.aligned[vb]
		}
		setPoint(ts, vb, c)
	}
	return ts
}

// alignedHWT is the high-watermark cut back, per vbucket, to the last
// complete snapshot received. It is snapshot-aligned.
func (tk *timekeeper) alignedHWT() *upr.TsVbuuid {
	ts := upr.NewTsVbuuid(len(tk.aligned))
	for vb, a := range tk.aligned {
		setPoint(ts, vb, a)
	}
	return ts
}

// promoteLocal makes the aligned high-watermark the new stability timestamp
// when it moved past the last one, and returns it (nil when it did not move).
func (tk *timekeeper) promoteLocal() *upr.TsVbuuid {
	moved := false
	for vb, a := range tk.aligned {
		// A branch seen at seqno 0 alone is no progress.
		if p := pointOf(tk.st, vb); a.seqno != p.seqno || a.seqno != 0 && a.vbuuid != p.vbuuid {
			moved = true
			break
		}
	}
	// Whether or not it moves, the stability timestamp now covers every
	// demand the aligned high-watermark covers.
	tk.due = false
	if !moved {
		return nil
	}
	tk.st = tk.alignedHWT()
	return tk.st.Clone()
}

// promote merges a stability timestamp chosen elsewhere (the coordinator)
// into the current one and returns the result. ts must be snapshot-aligned
// and within what was received. Per vbucket, an entry on the current
// branch that is behind the current ST changes nothing (promotions may
// arrive late); an entry on another branch replaces it.
func (tk *timekeeper) promote(ts *upr.TsVbuuid) (*upr.TsVbuuid, error) {
	if ts.Len() != len(tk.cur) {
		return nil, fmt.Errorf("stability timestamp over %d vbuckets, want %d", ts.Len(), len(tk.cur))
	}
	if !ts.SnapAligned() {
		return nil, fmt.Errorf("stability timestamp is not snapshot-aligned")
	}
	next := tk.st.Clone()
	for vb := range tk.cur {
		p := pointOf(ts, vb)
		c := tk.cur[vb]
		if p.seqno > c.seqno {
			return nil, fmt.Errorf("stability timestamp vb %d seqno %d is ahead of the received %d", vb, p.seqno, c.seqno)
		}
		if p.seqno != 0 && c.vbuuid != 0 && p.vbuuid != c.vbuuid {
			return nil, fmt.Errorf("stability timestamp vb %d is on branch %d, the stream on %d", vb, p.vbuuid, c.vbuuid)
		}
		old := pointOf(next, vb)
		if p == (vbPoint{}) || p.vbuuid == old.vbuuid && p.seqno <= old.seqno {
			continue
		}
		setPoint(next, vb, p)
	}
	tk.st = next
	return next.Clone(), nil
}

// reset restarts every vbucket at ts (a rollback or a restart): received,
// aligned and stable are all ts, which must be snapshot-aligned.
func (tk *timekeeper) reset(ts *upr.TsVbuuid) {
	for vb := range tk.cur {
		p := pointOf(ts, vb)
		tk.cur[vb], tk.aligned[vb] = p, p
	}
	tk.st = ts.Clone()
	tk.recount()
}
