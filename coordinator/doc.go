// Package coordinator is the index coordinator: it owns index metadata
// (definitions, instance ids and states, partition maps), carries out DDL
// (create, build, drop) and, in "coordinator" stability-timestamp mode,
// promotes stability timestamps for the indexers.
//
// Metadata is persisted as one JSON file written atomically, so a restarted
// coordinator finds every index it had. DDL calls are validated before any
// state changes; a refused call changes nothing.
//
// Stability-timestamp promotion is split as elsewhere in idxbench: Promoter is
// a deterministic state machine (observe each indexer's aligned
// high-watermark, choose the next ST), and RunPromotion is the timer loop that
// drives it against live indexers.
package coordinator
