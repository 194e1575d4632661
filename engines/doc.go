// Package engines defines the storage abstraction an index slice runs on, and
// the registry adapters add themselves to.
//
// A slice keeps three keyspaces (Main, Back, Meta) in one Store. The indexer's
// flusher builds a Batch per stability timestamp and applies it atomically;
// scans read through a View taken at a snapshot; persistent snapshots are
// recovery points the store can be rolled back to, even after a restart.
//
// The interface holds only what every engine has. Abilities not every engine
// has are small optional interfaces (Compacter) found by type assertion.
// Adapters live in subpackages, register themselves by name in init, and are
// all linked by a blank import of engines/all.
package engines
