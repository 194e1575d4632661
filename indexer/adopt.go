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
// running, and both must share a data directory and engine.
func (ix *Indexer) AdoptInstance(from *Indexer, id uint64) error {
	if ix.running.Load() || from.running.Load() {
		return errors.New("adopt instance: stop Run on both indexers first")
	}
	if ix.cfg.Dir != from.cfg.Dir || ix.cfg.Engine.Name != from.cfg.Engine.Name {
		return fmt.Errorf("adopt instance %d: indexers differ in data dir or engine", id)
	}
	from.flushMu.Lock()
	inst := from.insts[id]
	if inst == nil {
		from.flushMu.Unlock()
		return fmt.Errorf("adopt instance %d: %w", id, ErrNoSuchIndex)
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
	defer ix.flushMu.Unlock()
	if err := ix.ddlAllowed(); err != nil {
		return fmt.Errorf("adopt index %q: %w", inst.defn.Name, err)
	}
	if _, dup := ix.insts[id]; dup {
		return fmt.Errorf("adopt index %q: instance %d exists", inst.defn.Name, id)
	}
	for _, in := range ix.insts {
		if in.defn.Name == inst.defn.Name {
			return fmt.Errorf("adopt index %q: an index of that name exists (instance %d)", inst.defn.Name, in.id)
		}
	}
	inst.state = StateActive
	ix.insts[id] = inst
	if err := ix.publish(ix.snap.ts, false); err != nil {
		delete(ix.insts, id)
		return fmt.Errorf("adopt index %q: %w", inst.defn.Name, err)
	}
	ix.cfg.Logger.Info("index adopted", "index", inst.defn.Name, "inst", id)
	return nil
}
