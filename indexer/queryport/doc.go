// Package queryport serves an indexer's scans over TCP: a Server in front
// of any Scanner (an *indexer.Indexer is one) and a Client whose Scan has
// the in-process Scan's signature and meaning, so a harness can put the
// network between its scan clients and the indexer without other changes.
//
// A scan flows like this: Client.Scan takes an idle connection from its
// pool (or dials one), encodes the request into a frame, writes it and
// reads the answer on the calling goroutine. On the server, each
// connection's reader goroutine decodes requests and hands them one at a
// time to the connection's goroutine, which runs Scanner.Scan and writes
// a result frame or an error frame.
//
// # Concurrency model
//
// A connection carries one scan at a time; a Client pools connections
// (keeping up to ClientOptions.MaxIdleConns idle) and is safe for
// concurrent use. With ~8 concurrent scan clients that gives better tail
// latency than multiplexing many requests over one connection:
//
//   - No head-of-line blocking. A connection delivers bytes in order, so
//     on a multiplexed one a 100-entry range scan's answer waits behind a
//     many-megabyte ScanAll result being written; that wait is the p99.
//     On its own connection each scan waits only for itself.
//   - No handoffs on the client. A multiplexed client needs a goroutine
//     that reads answers and wakes the caller waiting for each, and a lock
//     every caller's write takes; on 2 cores each such wake-up is a
//     scheduling delay in the tail. A pooled connection is written and
//     read by the scanning goroutine itself.
//   - Cancellation is closing the connection: it ends exactly one scan,
//     with no cancel frames or per-request state on either side.
//
// The cost is a connection per concurrent scan, which is cheap on loopback
// or a LAN. (Couchbase's GSI query-port client makes the same choice.)
//
// The server keeps reading a connection while its scan runs, so a client
// that closes it — its ctx ended, or it was closed — cancels the scan.
// Requests pipelined on one connection are answered in order. Close
// cancels every scan, closes listeners and connections, and waits for the
// connections' goroutines (and so for Scanner.Scan to return).
//
// # Wire format
//
// Integers are big-endian or varints (encoding/binary). Each side first
// sends a 10-byte hello, the client first:
//
//	"IXQP" | version uint16 | max frame uint32
//
// The server replies with its own hello even when the versions differ, so
// that the client can name both, then hangs up; on a bad magic it hangs up
// at once. The max frame is the largest frame that side accepts
// (ServerOptions.MaxRequestBytes, ClientOptions.MaxResultBytes): the
// client refuses locally to send a larger request, and the server answers
// a result that would not fit with an error, so neither limit tears the
// connection. Then frames follow:
//
//	length uint32 (of what follows, 1..limit) | type byte | payload
//
//	1 request  id uvarint | budget uvarint ns | InstID uvarint | Index string |
//	           Kind byte | Inclusion byte | Consistency byte |
//	           Low key | High key | Equal key | Limit varint | TS vector |
//	           Timeout varint ns
//	2 result   id uvarint | Count varint | TS vector | entries
//	3 error    id uvarint | code byte | message string
//
//	string   uvarint length | bytes
//	key      uvarint 0 for nil, else n+1 | n values, collate-encoded
//	vector   0 for nil, else 1 | uvarint vbuckets | per vbucket seqno,
//	         vbuuid, snapshot start, snapshot end as uvarints
//	entries  uvarint 0 for nil, else n+1 | n × (key | DocID string)
//
// nil and empty stay distinct at the top level, as the indexer tells them
// apart (a nil bound is no bound; an empty Equal is an error). Key values
// use projector/collate, whose encodings delimit themselves and decode to
// exactly the values the indexer returns, since its entries' keys come
// from collate.Decode in the first place. For request bounds, collate
// sends -0 as 0 and a nil array or object nested in a key as an empty
// one, which the indexer cannot tell apart (it collates bounds the same
// way); values it cannot encode (NaN, ±Inf, Go types other than JSON's)
// fail in the client, as they fail in the indexer's Scan.
//
// Decoders check every count against the bytes left and reject trailing
// bytes, so a hostile frame costs no more memory than its length, and
// decode-then-encode round-trips (see the Fuzz tests). A torn or oversized
// frame, a bad hello or an answer to another request wraps ErrProtocol.
//
// # Deadlines
//
// The request's Timeout (how long the indexer waits for a covering
// snapshot) travels as a field. The client's ctx deadline travels as the
// budget left when the request was sent, from which the server sets its
// scan's deadline on arrival (so the two clocks need not agree); the
// client also stops waiting when ctx ends, and drops the connection.
//
// # Errors
//
// The server sends the code of the first of indexer.ErrScanTimeout,
// ErrIndexRollback, ErrNoSuchIndex, ErrClosed, ErrRecovering,
// context.Canceled and context.DeadlineExceeded that its error matches
// with errors.Is (0 for none), and the error's text. The client returns a
// *RemoteError whose Error is that text and which unwraps to that
// sentinel, so errors.Is holds on both sides of the wire; a remote error
// leaves the connection usable. The client's own failures — dialing,
// I/O, protocol — wrap the cause and name the server's address; when ctx
// ends first, the error wraps ctx.Err().
package queryport
