// Package baseline is the raw-engine baseline: it writes the entry stream an
// index slice produces straight into an engines.Store, with no pipeline in
// front, so the pipeline's own cost can later be read off against it.
//
// Run goes through five phases on one store:
//
//  1. load: Entries new documents, each a Main put (key ++ docid → ∅) and a
//     Back put (docid → key), BatchSize documents per atomic batch;
//  2. recovery point 1, timed;
//  3. Updates updates of random documents, each deleting the old Main entry,
//     putting the new one and overwriting the Back entry (the flusher knows
//     the old key from its back-index read; here the generator remembers it,
//     so no engine read is involved);
//  4. rollback to recovery point 1, timed, then verified: the Main and Back
//     keyspaces hold exactly Entries entries and a sample of documents has
//     the pre-update keys;
//  5. Scans bounded range scans: open a view, seek a random key, read ScanLen
//     Main entries, close; latency in an HDR histogram.
//
// Keys are 16-40 random bytes by default. A document's key at version v is
// a pure function of (seed, docid, v), so the generator keeps one uint32
// version per document rather than the keys themselves.
package baseline
