package projector

import "github.com/idxbench/idxbench/workload/upr"

// Command is what a KeyVersion asks the indexer to do.
type Command uint8

const (
	// Upsert sets the document's entry in the instance to Key.
	Upsert Command = iota + 1
	// Deletion removes the document's entry (the document was deleted or
	// expired).
	Deletion
	// UpsertDeletion removes the document's entry because the document no
	// longer qualifies (key field missing or WHERE false).
	UpsertDeletion
	// Sync carries no document; it advances the vbucket's seqno (used for
	// mutations that touch no index of this endpoint).
	Sync
	// StreamBegin says a vbucket stream started; Vbuuid is its branch.
	StreamBegin
	// StreamEnd says a vbucket stream ended.
	StreamEnd
	// Snapshot is a snapshot marker [SnapStart, SnapEnd].
	Snapshot
)

var commandNames = [...]string{"", "Upsert", "Deletion", "UpsertDeletion", "Sync", "StreamBegin", "StreamEnd", "Snapshot"}

func (c Command) String() string {
	if int(c) < len(commandNames) && c != 0 {
		return commandNames[c]
	}
	return "Command(?)"
}

// KeyVersion is one command for one index instance partition (or, for the
// stream-level commands Sync/StreamBegin/StreamEnd/Snapshot, for the
// endpoint as a whole, with InstID 0).
type KeyVersion struct {
	Cmd       Command
	InstID    uint64
	Partition int
	Vb        upr.Vbno
	Vbuuid    upr.Vbuuid
	Seqno     upr.Seqno
	// DocID is the document id; Key its encoded secondary key (collated, so
	// byte order is index order), nil for Deletion and UpsertDeletion.
	DocID []byte
	Key   []byte
	// SnapStart, SnapEnd are set for Snapshot.
	SnapStart, SnapEnd upr.Seqno
	// EmitNanos is the source mutation's emit time, for index lag.
	EmitNanos int64
}

// Batch is what the projector sends an indexer endpoint at once: key
// versions in stream order per vbucket. DocID and Key slices point into
// memory owned by the batch; the receiver owns the batch once it is sent.
type Batch struct {
	KVs []KeyVersion
}
