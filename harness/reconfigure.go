package harness

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/workload/upr"
)

func init() {
	registerPhase(PhaseReconfig, phaseKind{
		settings: []string{"st_mode", "st_on_demand", "verify_on_open"},
		validate: func(p *Phase, at string) error {
			switch p.STMode {
			case "", indexer.ModeLocal, indexer.ModeCoordinator:
			default:
				return fmt.Errorf("%s.st_mode: %q is not local or coordinator", at, p.STMode)
			}
			switch p.VerifyOnOpen {
			case "", indexer.VerifyNone, indexer.VerifyQuick, indexer.VerifyFull:
			default:
				return fmt.Errorf("%s.verify_on_open: %q is not none, quick or full", at, p.VerifyOnOpen)
			}
			if p.STMode == "" && p.STOnDemand == nil && p.VerifyOnOpen == "" {
				return fmt.Errorf("%s: a reconfigure phase needs st_mode, st_on_demand or verify_on_open", at)
			}
			if p.STMode == indexer.ModeCoordinator && p.STOnDemand != nil && *p.STOnDemand {
				return fmt.Errorf("%s.st_on_demand: needs st_mode local (the coordinator chooses every stability timestamp)", at)
			}
			return nil
		},
		refs: func(_ *Phase, at string, st *indexRefs) error {
			if st.topology == TopologyProcs {
				return fmt.Errorf("%s: a reconfigure phase restarts the index node in the cell's process with other settings; run it with --topology inproc", at)
			}
			if st.indexNodes > 1 {
				return fmt.Errorf("%s: a reconfigure phase restarts one index node; this topology has %d", at, st.indexNodes)
			}
			return nil
		},
		run: metricsOnly((*cellRun).reconfigure),
	})
}

// restarterWith is the index node that can reopen with other settings: the
// in-process node.Node. A procs topology's index node builds its indexer
// from the scenario alone, so it cannot.
type restarterWith interface {
	RestartWith(ctx context.Context, insts []indexer.InstanceDefn, change func(*indexer.Config)) (time.Duration, *upr.TsVbuuid, error)
}

// reconfigure restarts the index node cleanly with the phase's settings
// (ST mode, ST on demand, verification on open), so the phases after it
// run under them and one scenario's results show
// the settings side by side. Switching to coordinator mode starts the
// in-process promotion beside the indexer (node.Config.Promote). It waits
// for a round of persistent snapshots first, so the restart replays only
// what came after it, and returns once the index caught up with KV.
// Metrics: open_ms (with verify_on_open, the checks are part of it),
// catch_up_ms (streams resumed → caught up), recovery_ms (both),
// slices_rebuilt, and the settings now in force
// (st_mode_coordinator, st_on_demand as 0 or 1).
func (c *cellRun) reconfigure(ctx context.Context, ph Phase, m map[string]float64) error {
	rw, ok := c.p.ix.(restarterWith)
	if !ok {
		return errors.New("reconfigure phase: the index node cannot change its settings in this topology; use --topology inproc")
	}
	if err := c.p.ix.Start(ctx); err != nil {
		return err
	}
	if c.p.ix.Config().PersistInterval > 0 {
		if _, err := c.waitPersisted(ctx); err != nil {
			return err
		}
	}
	change := func(cfg *indexer.Config) {
		if ph.STMode != "" {
			cfg.STMode = ph.STMode
		}
		if ph.STOnDemand != nil {
			cfg.STOnDemand = *ph.STOnDemand
		}
		if ph.VerifyOnOpen != "" {
			cfg.VerifyOnOpen = ph.VerifyOnOpen
		}
	}
	start := time.Now()
	open, _, err := c.p.restartWith(ctx, func(ctx context.Context, defns []indexer.InstanceDefn) (time.Duration, *upr.TsVbuuid, error) {
		return rw.RestartWith(ctx, defns, change)
	})
	if err != nil {
		return fmt.Errorf("reconfigure: %w", err)
	}
	resumed := time.Now()
	m["open_ms"] = ms(open)
	if err := c.p.waitCaughtUp(ctx, catchUpTimeout); err != nil {
		return err
	}
	m["catch_up_ms"] = ms(time.Since(resumed))
	m["recovery_ms"] = ms(time.Since(start))
	// The restart opened a new indexer, whose count started at zero.
	st, _ := c.p.ix.Stats()
	m["slices_rebuilt"] = float64(st.SlicesRebuilt)
	cfg := c.p.ix.Config()
	c.p.cfg.settings.STMode, c.p.cfg.settings.STOnDemand, c.p.cfg.settings.VerifyOnOpen = cfg.STMode, cfg.STOnDemand, cfg.VerifyOnOpen
	m["st_mode_coordinator"], m["st_on_demand"] = 0, 0
	if cfg.STMode == indexer.ModeCoordinator {
		m["st_mode_coordinator"] = 1
	}
	if cfg.STOnDemand {
		m["st_on_demand"] = 1
	}
	return nil
}
