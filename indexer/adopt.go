package indexer

import (
	"errors"
	"fmt"
)

// AdoptInstance moves instance id, with its open slices, from another
// indexer into ix. It is how an initial build hands the indexes its INIT
// stream built to the MAINT indexer without closing their stores (an engine
// that keeps nothing across Close, like the memory engine, would lose
// them). The slices keep their contents, vectors and recovery points; the
// instance is ACTIVE in ix from its next flush on. Neither indexer may be
// running, and both must share a data directory and engine. If ix cannot
// take the instance, it stays with from.
func (ix *Indexer) AdoptInstance(from *Indexer, id uint64) error {
	if ix.running.Load() || from.running.Load() {
		return errors.New("adopt instance: stop Run on both indexers first")
	}
	if ix.cfg.Dir != from.cfg.Dir || ix.cfg.Engine.Name != from.cfg.Engine.Name {
		return fmt.Errorf("adopt instance %d: indexers differ in data dir or engine", id)
	}
	from.flushMu.Lock()
	inst := from.insts[id]
	from.flushMu.Unlock()
	if inst == nil {
		return fmt.Errorf("adopt instance %d: %w", id, ErrNoSuchIndex)
	}
	if err := ix.canTake(inst); err != nil {
		return err
	}

	from.flushMu.Lock()
	if from.insts[id] != inst {
		from.flushMu.Unlock()
		return fmt.Errorf("adopt index %q: it changed in the source indexer meanwhile", inst.defn.Name)
	}
	delete(from.insts, id)
	err := from.publish(from.snap.ts, false)
	from.flushMu.Unlock()
	if err != nil {
		return fmt.Errorf("adopt index %q: %w", inst.defn.Name, err)
	}
	for _, s := range inst.slices {
		<-s.noViews() // scans of the old indexer finish first
	}

	ix.flushMu.Lock()
	err = ix.canTakeLocked(inst)
	if err == nil {
		prev := inst.state
		inst.state = StateActive
		ix.insts[id] = inst
		if err = ix.publish(ix.snap.ts, false); err != nil {
			delete(ix.insts, id)
			inst.state = prev
		}
	}
	ix.flushMu.Unlock()
	if err != nil {
		// Give it back rather than leave its stores open and orphaned.
		from.flushMu.Lock()
		from.insts[id] = inst
		perr := from.publish(from.snap.ts, false)
		from.flushMu.Unlock()
		return errors.Join(fmt.Errorf("adopt index %q: %w", inst.defn.Name, err), perr)
	}
	ix.cfg.Logger.Info("index adopted", "index", inst.defn.Name, "inst", id)
	return nil
}

func (ix *Indexer) canTake(inst *instance) error {
	ix.flushMu.Lock()
	defer ix.flushMu.Unlock()
	return ix.canTakeLocked(inst)
}

// canTakeLocked checks ix may add inst; the caller holds flushMu.
func (ix *Indexer) canTakeLocked(inst *instance) error {
	if err := ix.ddlAllowed(); err != nil {
		return fmt.Errorf("adopt index %q: %w", inst.defn.Name, err)
	}
	if _, dup := ix.insts[inst.id]; dup {
		return fmt.Errorf("adopt index %q: instance %d exists", inst.defn.Name, inst.id)
	}
	for _, in := range ix.insts {
		if in.defn.Name == inst.defn.Name {
			return fmt.Errorf("adopt index %q: an index of that name exists (instance %d)", inst.defn.Name, in.id)
		}
	}
	return nil
}
