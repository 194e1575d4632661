package projector

import (
	"context"

	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// Topic names of the two streams an index node asks KV for. MAINT keeps
// every active index up to date; INIT backfills the indexes being built
// until they merge into MAINT.
const (
	TopicMaint = "MAINT"
	TopicInit  = "INIT"
)

// InstanceDefn is an index instance: an index definition with the id the
// projector tags its key versions with.
type InstanceDefn struct {
	ID   uint64
	Defn defn.IndexDefn
}

// TopicRequest asks KV for a topic: a stream of every vbucket from From,
// projected for Instances, delivered to the asking index node. It is what
// the real service calls a mutation topic request.
type TopicRequest struct {
	Topic     string
	From      *upr.TsVbuuid
	Instances []InstanceDefn
}

// Topic is a running topic as the index node receives it. Recv returns the
// key versions in stream order per vbucket (the key versions of one
// mutation in one batch), io.EOF or ErrTransportClosed after Close, and the
// KV side's error if the topic failed there. Close ends the topic on both
// sides and may be called more than once; Recv and DropInstance are not
// called after it.
type Topic interface {
	Recv(ctx context.Context) (*Batch, error)
	// DropInstance stops the topic's key versions for an instance.
	DropInstance(id uint64) error
	Close() error
}
