// Package engines defines the storage abstraction an index slice runs on, and
// the registry adapters add themselves to.
//
// A slice keeps three keyspaces (Main, Back, Meta) in one Store. The indexer's
// flusher builds a Batch per stability timestamp and applies it atomically;
// scans read through a View taken at a snapshot; persistent snapshots are
// recovery points the store can be rolled back to, even after a restart.
//
// Faults and damage have one vocabulary across engines: errors wrap
// ErrCorrupt (the files are damaged: a caller may rebuild the store),
// ErrDiskFull with syscall.ENOSPC (no room; nothing lost) or ErrFailed (the
// adapter contained an engine panic; reopen), and name the store's
// directory. Adapters share the means: Seal on a clean Close and
// CheckIntegrity on Open (sizes and checksums of the files, before the
// engine maps any), MarkDamaged and NoteDamage (damage found while open is
// refused by the next Open), a SpaceGuard and its DiskSpace pool (free
// space kept for writes an engine cannot fail safely), and Failure (a
// panic contained at the adapter boundary). enginetest.RunCorruption and
// RunDiskFull check every adapter against them.
//
// The interface holds only what every engine has. Abilities not every engine
// has are small optional interfaces (Compacter) found by type assertion.
// Adapters live in subpackages, register themselves by name in init, and are
// all linked by a blank import of engines/all.
package engines
