// Package enginetest is the conformance suite every engine adapter runs:
//
//	func TestConformance(t *testing.T) {
//		enginetest.Run(t, enginetest.Factory{
//			Name:    "bbolt",
//			Open:    func(dir string) (engines.Store, error) { return bbolt.Open(dir, engines.Options{}) },
//			Durable: true,
//		})
//	}
//
// Run has three parts.
//
// "datadriven" replays the scenario files under testdata/ (cockroachdb/datadriven
// format) against the engine: batches, overwrites, deletes, iteration bounds,
// views that must not see later writes, recovery point create/list/rollback/drop,
// reopen after close, rollback after reopen, destroy, and bad input (another
// engine's directory, a file instead of a directory, a non-empty foreign
// directory, unknown recovery points). Files whose name starts with
// "durable_" need a store that keeps its contents across Close and Open and
// are skipped for engines whose Factory says Durable is false. The expected
// outputs are engine-independent; -rewrite regenerates them (run it with the
// memory engine, then review the diff).
//
// "model" drives the engine and the memory reference engine with the same
// random sequence of batches, gets, views, iterations, recovery points,
// rollbacks, drops and (for durable engines) reopens, and compares every
// answer. It logs "seed: N" first; rerun a failure with
//
//	ENGINETEST_SEED=N go test ./engines/NAME -run 'TestConformance/model' -v
//
// ENGINETEST_STEPS sets the number of random steps (default 400).
//
// "concurrent" has one writer rewrite a set of keys per batch while readers
// take views, iterate and get: every view must see whole batches, and reads
// must never go back in time. Run it with -race.
//
// RunCorruption, separate from Run because it opens a store a hundred times
// or more, damages a closed store file by file (truncate, zero a page, flip
// bytes, remove) and requires each damaged copy to be refused with an error
// wrapping engines.ErrCorrupt, or to read back exactly what was written,
// and never to panic. Every adapter runs it in one line too:
//
//	func TestCorruption(t *testing.T) {
//		enginetest.RunCorruption(t, enginetest.Factory{Name: "bbolt", Open: open, Durable: true})
//	}
//
// It logs "seed: N"; ENGINETEST_SEED=N repeats the same damage.
//
// RunDiskFull (root only: it mounts a small tmpfs) fills the filesystem
// through a store until Apply fails, and requires an error wrapping
// syscall.ENOSPC or engines.ErrDiskFull, no panic or hang, a Close that
// works, and after a reopen every acknowledged batch.
package enginetest
