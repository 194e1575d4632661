package indexer

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/workload/upr"
)

// viewRef is a slice's read view shared by every snapshot taken while the
// slice did not change. The last release closes the view.
type viewRef struct {
	refs  atomic.Int64
	view  engines.View
	slice *slice
}

func (r *viewRef) acquire() *viewRef {
	r.refs.Add(1)
	return r
}

func (r *viewRef) release() error {
	n := r.refs.Add(-1)
	if n > 0 {
		return nil
	}
	if n < 0 {
		panic("indexer: view released more often than acquired")
	}
	err := r.view.Close()
	r.slice.viewClosed()
	if err != nil {
		return fmt.Errorf("slice %q: close view: %w", r.slice.name, err)
	}
	return nil
}

// snapInstance is one index instance as a snapshot sees it.
type snapInstance struct {
	id    uint64
	inst  *instance
	views []*viewRef // per partition
}

// snapshot is an in-memory snapshot: a stability timestamp and, per index
// partition, a read view whose contents are exactly the mutations up to
// it. The indexer holds a reference to the latest one; a scan holds one for
// as long as it reads. The last release closes the views it alone held.
type snapshot struct {
	refs  atomic.Int64
	seq   uint64
	ts    *upr.TsVbuuid
	taken time.Time
	insts map[uint64]*snapInstance
}

func (s *snapshot) release() error {
	n := s.refs.Add(-1)
	if n > 0 {
		return nil
	}
	if n < 0 {
		panic("indexer: snapshot released more often than acquired")
	}
	var errs []error
	for _, si := range s.insts {
		for _, v := range si.views {
			errs = append(errs, v.release())
		}
	}
	return errors.Join(errs...)
}

// instanceByName finds an instance of the snapshot by index name.
func (s *snapshot) lookup(id uint64, name string) *snapInstance {
	if id != 0 {
		return s.insts[id]
	}
	for _, si := range s.insts {
		if si.inst.defn.Name == name {
			return si
		}
	}
	return nil
}

// nextSnapshot builds the snapshot following prev at ts over insts. Slices
// of instances prev does not have get a new view; so do, when renew is set,
// slices changed since prev; the others share prev's views.
func nextSnapshot(prev *snapshot, ts *upr.TsVbuuid, insts map[uint64]*instance, renew bool, now time.Time) (*snapshot, error) {
	next := &snapshot{seq: 1, ts: ts, taken: now, insts: make(map[uint64]*snapInstance, len(insts))}
	if prev != nil {
		next.seq = prev.seq + 1
	}
	next.refs.Store(1)
	var renewed []*slice
	for id, inst := range insts {
		si := &snapInstance{id: id, inst: inst, views: make([]*viewRef, len(inst.slices))}
		var old *snapInstance
		if prev != nil {
			old = prev.insts[id]
		}
		for p, sl := range inst.slices {
			if old != nil && !(renew && sl.dirty) {
				si.views[p] = old.views[p].acquire()
				continue
			}
			v, err := sl.newView()
			if err != nil {
				next.insts[id] = si
				return nil, errors.Join(err, next.releasePartial())
			}
			si.views[p] = v
			renewed = append(renewed, sl)
		}
		next.insts[id] = si
	}
	for _, sl := range renewed {
		sl.dirty = false
	}
	return next, nil
}

// releasePartial releases a snapshot whose construction failed midway.
func (s *snapshot) releasePartial() error {
	var errs []error
	for _, si := range s.insts {
		for _, v := range si.views {
			if v != nil {
				errs = append(errs, v.release())
			}
		}
	}
	return errors.Join(errs...)
}
