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

// nextSnapshot builds the snapshot following prev at ts over insts. A slice
// with a view in fresh gets it (fresh's views pass to the snapshot, or are
// released on failure). Slices of instances prev does not have get a new
// view; so do, when renew is set, slices changed since prev; the others
// share prev's views.
func nextSnapshot(prev *snapshot, ts *upr.TsVbuuid, insts map[uint64]*instance, fresh map[*slice]*viewRef, renew bool, now time.Time) (*snapshot, error) {
	next := &snapshot{seq: 1, ts: ts, taken: now, insts: make(map[uint64]*snapInstance, len(insts))}
	if prev != nil {
		next.seq = prev.seq + 1
	}
	next.refs.Store(1)
	fail := func(err error) (*snapshot, error) {
		errs := []error{err}
		for _, v := range fresh {
			if !next.holds(v) {
				errs = append(errs, v.release())
			}
		}
		return nil, errors.Join(append(errs, next.releasePartial())...)
	}
	var renewed []*slice
	used := 0
	for id, inst := range insts {
		si := &snapInstance{id: id, inst: inst, views: make([]*viewRef, len(inst.slices))}
		next.insts[id] = si
		var old *snapInstance
		if prev != nil {
			old = prev.insts[id]
		}
		for p, sl := range inst.slices {
			if v := fresh[sl]; v != nil {
				si.views[p] = v
				used++
				continue
			}
			if old != nil && !(renew && sl.dirty) {
				si.views[p] = old.views[p].acquire()
				continue
			}
			v, err := sl.newView()
			if err != nil {
				return fail(err)
			}
			si.views[p] = v
			renewed = append(renewed, sl)
		}
	}
	if used != len(fresh) {
		return fail(errors.New("indexer: a fresh view belongs to no instance's slice"))
	}
	for _, sl := range renewed {
		sl.dirty = false
	}
	return next, nil
}

// holds reports whether v is one of s's views.
func (s *snapshot) holds(v *viewRef) bool {
	for _, si := range s.insts {
		for _, w := range si.views {
			if w == v {
				return true
			}
		}
	}
	return false
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
