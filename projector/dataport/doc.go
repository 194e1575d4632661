// Package dataport carries the projector's batches to an indexer over TCP:
// a Sender (a projector.Transport) at the projector, a Listener and its
// Conns (each an indexer Source) at the index node.
//
// Data flows through it in this order:
//
//	projector ──▶ Sender.Send(batch) ──▶ encode into a reused buffer ──▶ one socket write
//	   ──▶ TCP ──▶ Conn's read buffer ──▶ Conn.Recv: one frame, checksum, decode ──▶ indexer
//
// # Sessions and reconnection
//
// A TCP connection is one session of one stream. Dial opens it with a
// hello naming the stream ("MAINT", "INIT", ...) and the sender; the
// receiver answers with an acceptance or a refusal and its reason (wrong
// magic, another protocol version, a stream it does not serve), which Dial
// returns as an error wrapping ErrRefused. Listener.Accept announces every
// accepted session as a new Conn carrying the stream name and sender id;
// callers route Conns by Conn.Stream. A new session of the same stream
// from the same sender id supersedes the old: Accept closes the old Conn,
// whose Recv fails with ErrSuperseded, so a half-open connection left by a
// crashed sender never shadows its successor.
//
// The dataport does not resume anything. Within a session it guarantees
// in-order delivery of whole batches: a batch is delivered only after its
// frame arrived whole and its checksum matched, so a session that breaks
// delivers an exact prefix of the batches sent, then an error. When either
// side restarts, the sender dials again and the receiver accepts a new
// Conn. Which seqnos the new session starts from is decided above the
// dataport, by whoever requests the UPR streams again: the index node
// restarts its streams from its own restored vector, and anything the old
// session sent but did not deliver is sent again by those streams.
//
// A session ends cleanly with the end-of-stream frame that Sender.Close
// writes: Recv then returns io.EOF. A connection that ends any other way —
// closed between frames without that frame, cut inside a frame, reset —
// makes Recv fail with an error wrapping ErrCut, so an indexer never takes
// a crashed projector for a finished stream.
//
// # Backpressure
//
// Nothing between the two ends buffers without bound. A Conn reads the
// socket only inside Recv, one frame per call, through a read buffer of
// ReceiverOptions.ReadBufferSize. When the indexer stops calling Recv, the
// receiving socket's buffer fills, TCP's window closes, the sending
// socket's buffer fills and Send blocks: the projector's backpressure,
// end to end. What the sender gets out before it blocks is bounded by the
// two socket buffers (set them with SocketSendBuffer and
// SocketReceiveBuffer) plus the read buffer. The end of a Send's or a
// Recv's ctx interrupts it by moving the socket's deadline into the past.
//
// # Limits
//
// A frame's payload is at most a frame size limit, 16 MiB by default.
// The receiver announces its limit in the handshake and the sender keeps
// to the smaller of the two: Send refuses a larger batch with
// ErrFrameTooLarge and sends nothing (it never splits a batch, since the
// key versions of one mutation must arrive together). A frame header
// announcing more than the receiver's limit is a protocol error, checked
// before any of the payload is read or allocated. The limit also bounds a
// decoded batch: a key version takes at least 4 bytes on the wire, so a
// batch's KeyVersion array is at most about 30 times its frame. Stream
// names and sender ids are at most 255 bytes.
//
// # Wire format
//
// Integers in headers are big-endian; uvarint and varint are those of
// encoding/binary (varint is zigzag), and must be minimally encoded.
//
//	hello, sender to receiver:
//	  magic      4  "IXDP"
//	  version    2  protocol version, 1
//	  (the rest is version 1's)
//	  n          1  stream name length, 1..255
//	  stream     n
//	  m          1  sender id length, 0..255
//	  sender     m
//
//	reply, receiver to sender (the same layout in every version):
//	  magic      4  "IXDP"
//	  version    2  the receiver's protocol version
//	  status     1  0 accepted, 1 refused
//	  max frame  4  the receiver's frame size limit; 0 when refused
//	  n          1  reason length
//	  reason     n  why the hello was refused; empty when accepted
//
//	frame, sender to receiver, repeated:
//	  length     4  payload length, 1..limit
//	  checksum   4  CRC-32C (Castagnoli) of the payload
//	  payload    length bytes:
//	    kind     1  1 batch, 2 end of stream (nothing follows)
//	    count    uvarint, the batch's key versions, each:
//	      head       1  bits 0-2: Cmd (1 Upsert .. 7 Snapshot)
//	                    bit 3: Vb, Vbuuid, Seqno, EmitNanos are the previous key version's
//	                    bit 4: DocID is the previous key version's
//	                    bits 5-7: zero
//	      InstID     uvarint
//	      Partition  varint
//	      Vb         uvarint  } unless bit 3
//	      Vbuuid     uvarint  }
//	      Seqno      uvarint  }
//	      EmitNanos  varint   }
//	      DocID      uvarint length, bytes (unless bit 4)
//	      Key        uvarint length, bytes
//	      SnapStart  uvarint  } Snapshot only
//	      SnapEnd    uvarint  }
//
// The first key version of a batch is compared with the zero KeyVersion.
// The two flags are set exactly when they apply, so the key versions of
// one mutation (one per index, sharing the vbucket, seqno and document id)
// cost little more than their keys. The decoder accepts only what the
// encoder writes — flags that apply are set, varints are minimal, nothing
// trails the last key version — so every batch has one encoding, which
// the fuzz tests check. An empty DocID or Key arrives as nil, and
// SnapStart and SnapEnd travel only with Snapshot (they arrive zero on
// other commands). Decoded DocID and Key slices point into the frame's
// payload, one allocation per frame owned by the batch.
package dataport
