package upr

import (
	"fmt"
)

// Vbno is a vbucket number, 0 ≤ Vbno < the bucket's vbucket count.
type Vbno uint16

// Seqno is a vbucket's sequence number; each mutation gets the next one.
type Seqno uint64

// Vbuuid identifies one history branch of a vbucket.
type Vbuuid uint64

// FailoverEntry says that branch Vbuuid began at Seqno.
type FailoverEntry struct {
	Vbuuid Vbuuid
	Seqno  Seqno
}

// FailoverLog lists a vbucket's branches, newest first.
type FailoverLog []FailoverEntry

// Latest is the current branch.
func (l FailoverLog) Latest() FailoverEntry { return l[0] }

// StreamRequest asks for a vbucket's mutations after Start up to End
// (inclusive). Vbuuid, SnapStart and SnapEnd describe what the requester
// already has: it holds a complete or partial snapshot [SnapStart, SnapEnd]
// of branch Vbuuid up to Start. SnapStart ≤ Start ≤ SnapEnd must hold.
type StreamRequest struct {
	Vb        Vbno
	Start     Seqno
	End       Seqno
	Vbuuid    Vbuuid
	SnapStart Seqno
	SnapEnd   Seqno
}

// Validate checks the request's own consistency.
func (r StreamRequest) Validate() error {
	if !(r.SnapStart <= r.Start && r.Start <= r.SnapEnd) {
		return fmt.Errorf("vb %d: stream request needs snapStart ≤ start ≤ snapEnd, got %d ≤ %d ≤ %d",
			r.Vb, r.SnapStart, r.Start, r.SnapEnd)
	}
	if r.End < r.Start {
		return fmt.Errorf("vb %d: stream request end %d before start %d", r.Vb, r.End, r.Start)
	}
	return nil
}

// RollbackError is the producer's answer to a stream request whose vbuuid and
// seqno are not on the vbucket's current branch: the consumer must roll back
// to Seqno (0 when the vbuuid is unknown) and ask again.
type RollbackError struct {
	Vb    Vbno
	Seqno Seqno
}

func (e *RollbackError) Error() string {
	return fmt.Sprintf("vb %d: rollback to seqno %d", e.Vb, e.Seqno)
}

// Opcode is the kind of a stream Event.
type Opcode uint8

const (
	// OpStreamBegin answers a stream request with OK; FailoverLog is set.
	OpStreamBegin Opcode = iota + 1
	// OpSnapshot is a snapshot marker [SnapStart, SnapEnd]; the events that
	// follow up to SnapEnd belong to it.
	OpSnapshot
	// OpMutation carries a document's new value.
	OpMutation
	// OpDeletion says the document was deleted.
	OpDeletion
	// OpExpiration says the document expired (a deletion for indexing).
	OpExpiration
	// OpStreamEnd closes the stream; EndReason says why.
	OpStreamEnd
	// OpRollback answers a stream request with Rollback(RollbackSeqno).
	OpRollback
)

var opNames = [...]string{"", "stream-begin", "snapshot", "mutation", "deletion", "expiration", "stream-end", "rollback"}

func (o Opcode) String() string {
	if int(o) < len(opNames) && o != 0 {
		return opNames[o]
	}
	return fmt.Sprintf("opcode(%d)", uint8(o))
}

// EndReason says why a stream ended.
type EndReason uint8

const (
	EndOK           EndReason = iota // reached the requested end seqno
	EndClosed                        // the consumer closed it
	EndStateChanged                  // the vbucket changed state (failover)
	EndDisconnected                  // the connection dropped (KV restarted)
)

func (r EndReason) String() string {
	switch r {
	case EndOK:
		return "ok"
	case EndClosed:
		return "closed"
	case EndStateChanged:
		return "state-changed"
	case EndDisconnected:
		return "disconnected"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Event is one message of a vbucket stream. It is a flat struct rather than an
// interface so a stream of millions costs no allocation per message; which
// fields are set depends on Op.
type Event struct {
	Op     Opcode
	Vb     Vbno
	Vbuuid Vbuuid
	// Seqno is set for mutations, deletions and expirations.
	Seqno Seqno
	// RevSeqno is the document's revision number.
	RevSeqno uint64
	// Key is the document id.
	Key []byte
	// Value is the document body (JSON) of a mutation.
	Value []byte
	// SnapStart, SnapEnd are set for OpSnapshot.
	SnapStart, SnapEnd Seqno
	// FailoverLog is set for OpStreamBegin.
	FailoverLog FailoverLog
	// EndReason is set for OpStreamEnd.
	EndReason EndReason
	// RollbackSeqno is set for OpRollback.
	RollbackSeqno Seqno
	// EmitNanos is when the KV simulator applied the mutation (monotonic
	// nanoseconds from the run's start), for measuring index lag.
	EmitNanos int64
}
