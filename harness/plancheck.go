package harness

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/results"
	"github.com/idxbench/idxbench/workload"
)

// checkPlan refuses, in the planning step and before anything is created,
// a scenario that validates but cannot run on this machine with this
// workload: a document count whose bucket and oracle alone would not fit
// in memory, and a rollback of more vbuckets than the bucket has (which
// flags such as --vbuckets can bring about).
func checkPlan(sc *Scenario, spec workload.Spec, memTotal uint64) error {
	if err := spec.CheckMemory(memTotal); err != nil {
		return err
	}
	for i, p := range sc.Phases {
		if p.Type == PhaseRollback && p.Vbuckets > spec.Vbuckets {
			return fmt.Errorf("phases[%d] (%s).vbuckets: fails over %d vbuckets, the workload has %d", i, p.Label(), p.Vbuckets, spec.Vbuckets)
		}
	}
	return nil
}

// machineMemory is the machine's memory in bytes, 0 if unknown.
func machineMemory() uint64 { return results.MemTotal() }

// Rough disk costs per engine, from the built-in scenarios' measured
// disk_bytes (default, ingest, hard-docs; December, tmpfs and ext4):
//   - pebble: each persistent snapshot is a checkpoint that keeps a copy
//     of the write-ahead log: measured, about a memtable per store and
//     retained checkpoint (max_rollbacks+1) whatever the data, besides its
//     tables (about 3× the live entries with compaction debt);
//   - bbolt: each retained recovery point is a copy of the file, whose
//     pages hold the entries with their overhead and free pages: about 5×
//     the live entries' bytes per copy;
//   - badger: the LSM and value log, about 2× the live entries, and a few
//     MiB of fixed files per store;
//   - memory: nothing on disk.
type diskCost struct {
	perEntry      float64 // multiple of the entries' bytes
	perCopy       bool    // perEntry applies to each retained recovery point too
	memtables     bool    // each retained recovery point may hold a memtable-sized log
	fixedPerStore int64
}

var diskCosts = map[string]diskCost{
	"pebble": {perEntry: 3, memtables: true, fixedPerStore: 1 << 20},
	"bbolt":  {perEntry: 5, perCopy: true, fixedPerStore: 1 << 20},
	"badger": {perEntry: 2, fixedPerStore: 2 << 20},
	"memory": {},
}

// closedLoopRate stands for the mutations per second of a phase that runs
// closed loop for a duration: a high rate, so the estimate errs large.
const closedLoopRate = 20_000

// diskFootprint estimates the bytes a cell of engine takes in its data
// directory at most over the scenario; ok is false for an engine without
// a cost model.
func diskFootprint(engine string, sc *Scenario, spec workload.Spec) (int64, bool) {
	c, ok := diskCosts[engine]
	if !ok {
		return 0, false
	}
	// Documents at the peak: the load, and the inserts of every phase's
	// mutations.
	mutations := 0.0
	for _, p := range sc.Phases {
		n := float64(p.Mutations)
		switch {
		case p.Type == PhaseRollback || p.Type == PhaseRestart:
			if n == 0 {
				n = defaultRecoveryMutations
			}
		case n == 0 && p.Duration > 0 && (p.Type == PhaseIngest || p.UnderIngest):
			rate := p.Rate
			if rate == 0 {
				rate = closedLoopRate
			}
			n = rate * p.Duration.D().Seconds()
		}
		mutations += n
	}
	docs := float64(spec.Docs) + spec.Ops.Insert*mutations
	keep := sc.Indexer.MaxRollbacks
	if keep == 0 {
		keep = 5
	}
	memtable := (&engines.Options{}).EnsureDefaults().MemtableBytes
	var total float64
	for _, d := range spec.Indexes {
		stores := float64(max(d.Partitions, 1))
		live := docs * spec.EntryBytes(d)
		copies := 1.0
		if c.perCopy {
			copies += float64(keep)
		}
		total += live * c.perEntry * copies
		total += stores * float64(c.fixedPerStore)
		if c.memtables {
			// Measured: about a memtable per store and retained
			// checkpoint, whatever the data.
			total += stores * float64(keep+1) * float64(memtable)
		}
	}
	return int64(total), true
}

// checkSpace refuses a data directory whose filesystem has less free
// space than the scenario's estimated footprint on the most demanding of
// the engines; dir need not exist yet (its nearest existing ancestor's
// filesystem is the one asked).
func checkSpace(dir string, engineNames []string, sc *Scenario, spec workload.Spec) error {
	var need int64
	var which string
	for _, e := range engineNames {
		if n, ok := diskFootprint(e, sc, spec); ok && n > need {
			need, which = n, e
		}
	}
	if need == 0 {
		return nil
	}
	probe := dir
	for {
		if _, err := os.Stat(probe); err == nil {
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			return nil
		}
		probe = parent
	}
	free, err := engines.FreeBytes(probe)
	if err != nil {
		return nil // the run meets the real problem; this is an estimate
	}
	if free < need {
		return fmt.Errorf("data dir %s: the scenario needs about %s on disk for %s (a rough estimate), %s is free (--no-space-check runs anyway)",
			dir, mib(need), which, mib(free))
	}
	return nil
}

func mib(n int64) string {
	if n >= 10<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}
