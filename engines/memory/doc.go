// Package memory is the reference engine: the oracle every other engine is
// checked against, written to be trusted by reading rather than to be fast.
//
// Each keyspace is a google/btree BTreeG of key/value pairs kept in byte
// order. Apply takes the store's lock and applies a batch's operations in
// order, so readers see all of a batch or none of it. A view and a recovery
// point are both Clone()s of the trees: O(1) copy-on-write snapshots that
// later writes never disturb. Rollback replaces the trees by clones of the
// recovery point's and forgets the newer points.
//
// The engine keeps nothing across Close: it claims its directory (writes the
// IDXBENCH-STORE marker, so foreign-directory checks behave as for any other
// engine) but stores no data there. A store reopened after Close is empty and
// has no recovery points; the conformance suite knows this through
// enginetest.Factory.Durable. It registers itself as "memory" with Real false,
// so `idxbench run` skips it unless asked.
package memory
