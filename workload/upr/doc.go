// Package upr holds the types of the UPR (DCP) change-stream protocol between
// a KV bucket and its consumers — stream requests and their answers
// (StreamBegin with the failover log, or Rollback), snapshot markers,
// mutations, deletions, expirations and stream ends, all as one flat Event —
// and the timestamp vectors (TsVbuuid) the indexer keeps: high-watermarks,
// stability timestamps and the vectors persistent snapshots are taken at.
//
// It imports nothing of the project, so the workload, projector, indexer and
// coordinator can all speak it.
package upr
