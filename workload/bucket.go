package workload

import (
	"context"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/idxbench/idxbench/workload/upr"
)

// MaxVbuckets is the largest vbucket count a bucket may have, as in KV.
const MaxVbuckets = 1024

// EndlessSeqno is the End of a stream request that never ends by itself.
const EndlessSeqno = upr.Seqno(^uint64(0))

// DefaultSnapshotItems is how many mutations of one vbucket a snapshot holds
// at most when BucketOptions.SnapshotItems is zero.
const DefaultSnapshotItems = 64

// BucketOptions tunes a Bucket. The zero value works.
type BucketOptions struct {
	// Clock returns monotonic nanoseconds; Bucket.Now and every event's
	// EmitNanos come from it. Default: nanoseconds since NewBucket, from the
	// runtime's monotonic clock. Tests inject a fake clock for determinism.
	// The bucket calls it under its lock for every mutation; Now calls it
	// directly, so a clock used from several goroutines must be safe for
	// that.
	Clock func() int64
	// SnapshotItems closes a vbucket's open snapshot after that many
	// mutations. Default DefaultSnapshotItems.
	SnapshotItems int
}

// Bucket simulates a KV bucket: documents hashed to vbuckets, each vbucket
// with its own seqnos, history and failover log. It is a deterministic state
// machine driven by calls: the same calls with the same seed produce the same
// seqnos, vbuuids and stream contents (EmitNanos aside, which come from the
// clock). It is safe for one writer (Set, Delete, Expire, Failover, Compact)
// and any number of concurrent readers (feeds, the oracle, CurrentSeqnos).
//
// Every vbucket keeps its full mutation history on the current branch, so a
// stream may start at any seqno and the oracle can answer for any vector.
// Compact deduplicates history below a vector to bound memory, as KV does.
// Until then a mutation costs about len(docid)+len(value)+48 bytes (see
// history).
//
// The hot path (Set) is built for speed, since the source must outrun every
// engine: keys and values go to one bucket-wide append-only arena (a
// Generator's own operations are not even copied: the bucket keeps the
// chunk the generator built them in), and generated document ids
// ("doc-" and 10 digits) find their revision in a table indexed by their
// number rather than in a map.
//
// Snapshots: the bucket closes a vbucket's open snapshot after
// SnapshotItems mutations; a stream sends such closed snapshots as they
// are. A stream that catches up with the vbucket's high seqno sends what
// the open snapshot holds so far as a snapshot of its own, ending at the
// high seqno, and continues with a new marker when more mutations arrive;
// so the last item of every snapshot a stream sends has seqno SnapEnd, and a
// consumer that has received it is snapshot-aligned.
type Bucket struct {
	clock     func() int64
	snapItems int

	// failovers counts Failover calls, so a reader can tell without the
	// lock that no vbucket has failed over since it last looked.
	failovers atomic.Uint64

	mu   sync.Mutex
	rng  *rand.Rand // vbuuids for new branches
	vbs  []vbucket
	wake chan struct{} // closed on the next change; nil when no one waits

	// arena holds the keys and values of every vbucket's history.
	arena arena
	// segs is where the vbuckets' history segments come from.
	segs segSlab
	// nums[n] is the state of document "doc-" n (docNumber) for every n
	// below len(nums); other ids are in their vbucket's docs map. The
	// table only grows by appending the next number, so generated ids,
	// which are dense from 0, all land in it.
	nums []docMeta
	// seen and epoch are dedup's scratch: seen[n] == epoch marks document
	// number n as met in the current dedup.
	seen  []uint32
	epoch uint32
}

type vbucket struct {
	log   upr.FailoverLog // newest first
	items history         // current branch history, ascending seqno
	high  upr.Seqno
	// inSnap counts the mutations of the open snapshot.
	inSnap int
	// gen changes at every failover and KV restart so open streams
	// notice; ended is why they end.
	gen   uint64
	ended upr.EndReason
	// compacted: history at or below it is deduplicated.
	compacted upr.Seqno
	// docs holds the state of the vbucket's documents whose ids have no
	// place in Bucket.nums; nil until there is one.
	docs map[string]docMeta
	// everUUIDs lists every vbuuid the vbucket ever had, oldest first,
	// including branches a failover dropped from the log (for tests and
	// debugging output).
	everUUIDs []upr.Vbuuid
}

// docMeta is a document's latest revision, whether that revision is a
// mutation (live) rather than a deletion or expiration, and, if known, the
// document's vbucket (so that writes to a known generated id skip hashing
// it): rev<<metaRevShift | (vb+1)<<1 | live, vb+1 = 0 when unknown. The
// zero value is a document that does not exist.
type docMeta uint64

const metaRevShift = 12 // 11 bits for vb+1 ≤ MaxVbuckets

func (m docMeta) rev() uint64 { return uint64(m >> metaRevShift) }
func (m docMeta) live() bool  { return m&1 != 0 }

// vb returns the document's vbucket, if m records it.
func (m docMeta) vb() (upr.Vbno, bool) {
	x := uint64(m>>1) & (1<<(metaRevShift-1) - 1)
	return upr.Vbno(x - 1), x != 0
}

// makeDocMeta is the state of a document at revision rev, live or not; its
// vbucket is not recorded.
func makeDocMeta(rev uint64, live bool) docMeta {
	return docMeta(rev<<metaRevShift | b2u(live))
}

// next is the state after a new revision, live or not, of a document in
// vbucket vb.
func (m docMeta) next(live bool, vb upr.Vbno) docMeta {
	return makeDocMeta(m.rev()+1, live) | docMeta(uint64(vb)+1)<<1
}

// docNumber parses a generated document id, "doc-" and at least 10
// digits, without leading zeros beyond 10 digits, as docID formats them;
// ok is false for every other id. Each number has exactly one such id.
func docNumber(id string) (n uint64, ok bool) {
	const prefix = "doc-"
	if len(id) < len(prefix)+10 || len(id) > len(prefix)+19 || id[:len(prefix)] != prefix {
		return 0, false
	}
	d := id[len(prefix):]
	if len(d) > 10 && d[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(d); i++ {
		c := d[i] - '0'
		if c > 9 {
			return 0, false
		}
		n = n*10 + uint64(c)
	}
	return n, true
}

// bytesOf views an immutable string as bytes without copying, for
// read-only use.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// item is one entry of a vbucket's history. Its document id and body live
// in the bucket's arena, so items hold no pointers: the garbage collector
// never scans the history and growing it copies plain memory. Items and
// arena bytes are never modified once written (except the snapEnd flag,
// under the bucket's lock), so events may share the bytes.
type item struct {
	seqno upr.Seqno
	rev   uint64
	emit  int64
	chunk uint32 // arena chunk holding key then value
	off   uint32
	klen  uint32
	vlen  uint32
	// num is 1 + the key's docNumber, or 0 if it has none (or one too
	// big): dedup tells documents apart without reading their keys.
	num     uint32
	op      upr.Opcode
	snapEnd bool // last item of a closed snapshot
}

// arena is append-only storage for the keys and values of a bucket's
// history: a table of chunks whose written bytes never change, so a slice
// of it stays valid forever. An item names its chunk by index; the table
// only grows (a copy of its header sees every chunk its items name) until
// Compact replaces it. Failover leaves the lost items' bytes in place;
// Compact makes a new arena of the chunks still mostly in use and copies
// what it keeps of the others.
//
// Chunks are of two kinds: the arena's own, which add fills, and adopted
// ones, written by a Generator, that hold operations' ids and bodies
// back to back; the arena refers to those where they are.
type arena struct {
	chunks [][]byte
	own    int // index of the own chunk add fills; -1 for none
	shared int // index of the last adopted chunk; -1 for none
	sizes  chunkSizes
}

func newArena() arena { return arena{own: -1, shared: -1} }

// chunkSizes sizes the successive chunks of an arena or a generator's
// slab: small at first, so that small buckets stay small, doubling up to
// big ones that huge pages can back (adviseHuge).
type chunkSizes struct{ next int }

const (
	minChunk = 64 << 10
	maxChunk = 32 << 20
)

// alloc returns an empty chunk with room for at least n bytes.
func (c *chunkSizes) alloc(n int) []byte {
	size := max(c.next, minChunk)
	c.next = min(2*size, maxChunk)
	b := make([]byte, 0, max(size, n))
	adviseHuge(b[:cap(b)])
	return b
}

// add appends key and value to the arena and returns where they are.
func (a *arena) add(key, value []byte) (chunk, off uint32) {
	n := len(key) + len(value)
	if a.own < 0 || cap(a.chunks[a.own])-len(a.chunks[a.own]) < n {
		a.own = len(a.chunks)
		a.chunks = append(a.chunks, a.sizes.alloc(n))
	}
	c := &a.chunks[a.own]
	off = uint32(len(*c))
	*c = append(*c, key...)
	*c = append(*c, value...)
	return uint32(a.own), off
}

// adopt returns the index of chunk, whose bytes below any offset an item
// will name are written and never change, adding it to the table unless
// it is the chunk adopted last.
func (a *arena) adopt(chunk []byte) uint32 {
	if a.shared < 0 || unsafe.SliceData(a.chunks[a.shared]) != unsafe.SliceData(chunk) {
		a.shared = len(a.chunks)
		a.chunks = append(a.chunks, chunk[:cap(chunk)])
	}
	return uint32(a.shared)
}

// key is it's document id, a view into the arena.
func (a *arena) key(it *item) []byte {
	end := it.off + it.klen
	return a.chunks[it.chunk][it.off:end:end]
}

// value is it's body (nil for deletions and expirations), a view into the
// arena with no spare capacity, so an append by a consumer copies.
func (a *arena) value(it *item) []byte {
	if it.op != upr.OpMutation {
		return nil
	}
	start := it.off + it.klen
	end := start + it.vlen
	return a.chunks[it.chunk][start:end:end]
}

// NewBucket returns an empty bucket with the given number of vbuckets (1 to
// MaxVbuckets; it panics otherwise, a programming error) whose vbuuids derive
// from seed.
func NewBucket(vbuckets int, seed uint64) *Bucket {
	return NewBucketWithOptions(vbuckets, seed, BucketOptions{})
}

// NewBucketWithOptions is NewBucket with options.
func NewBucketWithOptions(vbuckets int, seed uint64, opts BucketOptions) *Bucket {
	if vbuckets < 1 || vbuckets > MaxVbuckets {
		panic(fmt.Sprintf("workload: %d vbuckets is out of range 1..%d", vbuckets, MaxVbuckets))
	}
	b := &Bucket{
		clock:     opts.Clock,
		snapItems: opts.SnapshotItems,
		rng:       rand.New(rand.NewPCG(seed, 0x6b76_6275_636b_6574)), // "kvbucket"
		vbs:       make([]vbucket, vbuckets),
		arena:     newArena(),
	}
	if b.clock == nil {
		start := time.Now()
		b.clock = func() int64 { return int64(time.Since(start)) }
	}
	if b.snapItems <= 0 {
		b.snapItems = DefaultSnapshotItems
	}
	for i := range b.vbs {
		b.vbs[i].log = upr.FailoverLog{{Vbuuid: b.newVbuuid(nil), Seqno: 0}}
		b.vbs[i].everUUIDs = []upr.Vbuuid{b.vbs[i].log[0].Vbuuid}
	}
	return b
}

// newVbuuid draws a non-zero vbuuid not already in log.
func (b *Bucket) newVbuuid(log upr.FailoverLog) upr.Vbuuid {
	for {
		u := upr.Vbuuid(b.rng.Uint64() >> 16) // 48 bits, like KV's
		if u != 0 && !slices.ContainsFunc(log, func(e upr.FailoverEntry) bool { return e.Vbuuid == u }) {
			return u
		}
	}
}

// Vbuckets is the bucket's vbucket count.
func (b *Bucket) Vbuckets() int { return len(b.vbs) }

// Now is the bucket's clock: monotonic nanoseconds since NewBucket unless a
// clock was injected. Events carry it as EmitNanos.
func (b *Bucket) Now() int64 { return b.clock() }

// VbOf maps a document id to its vbucket the way KV clients do: bits 16..30
// of the CRC32 (IEEE) of the id, modulo the vbucket count.
func (b *Bucket) VbOf(docid string) upr.Vbno {
	return VbOf(docid, len(b.vbs))
}

// VbOf is Bucket.VbOf for a bucket of n vbuckets.
func VbOf(docid string, n int) upr.Vbno {
	h := crc32.ChecksumIEEE(bytesOf(docid))
	return upr.Vbno(((h >> 16) & 0x7fff) % uint32(n))
}

// Set inserts or updates a document and returns its vbucket and new seqno.
// The bucket copies value.
func (b *Bucket) Set(docid string, value []byte) (upr.Vbno, upr.Seqno) {
	vb, s, _ := b.write(docid, value, upr.OpMutation, nil, 0)
	return vb, s
}

// Delete deletes a document; false (and no seqno) if it does not exist.
func (b *Bucket) Delete(docid string) (upr.Vbno, upr.Seqno, bool) {
	return b.write(docid, nil, upr.OpDeletion, nil, 0)
}

// Expire expires a document now (KV's expiry pager, made immediate); false
// if it does not exist. Streams send it as an expiration.
func (b *Bucket) Expire(docid string) (upr.Vbno, upr.Seqno, bool) {
	return b.write(docid, nil, upr.OpExpiration, nil, 0)
}

// write appends a mutation (op OpMutation: Set) or a removal of a live
// document (Delete, Expire; false if there is none). With chunk nil the
// bucket copies docid and value; otherwise they already lie back to back
// at chunk[off:], which the bucket keeps instead (see arena.adopt).
func (b *Bucket) write(docid string, value []byte, op upr.Opcode, chunk []byte, off uint32) (upr.Vbno, upr.Seqno, bool) {
	num, isNum := docNumber(docid)
	// No defer: it costs a few percent of the source's speed here.
	b.mu.Lock()
	vb, known := upr.Vbno(0), false
	if isNum && num < uint64(len(b.nums)) {
		vb, known = b.nums[num].vb()
	}
	if !known {
		vb = b.VbOf(docid)
	}
	v := &b.vbs[vb]
	n, dense := b.docSlotLocked(v, docid, num, isNum)
	var m docMeta
	if dense {
		m = b.nums[n]
	} else {
		m = v.docs[docid]
	}
	if op != upr.OpMutation && !m.live() {
		b.mu.Unlock()
		return vb, 0, false
	}
	m = m.next(op == upr.OpMutation, vb)
	if dense {
		b.nums[n] = m
	} else {
		if v.docs == nil {
			v.docs = make(map[string]docMeta)
		}
		v.docs[docid] = m
	}
	it := item{op: op, rev: m.rev(), klen: uint32(len(docid)), vlen: uint32(len(value))}
	if isNum && num < math.MaxUint32 {
		it.num = uint32(num + 1)
	}
	if chunk == nil {
		it.chunk, it.off = b.arena.add(bytesOf(docid), value)
	} else {
		it.chunk, it.off = b.arena.adopt(chunk), off
	}
	seqno := b.appendLocked(v, it)
	b.mu.Unlock()
	return vb, seqno, true
}

// docSlotLocked says where docid's state is kept: b.nums[n] if dense, else
// v.docs[docid]. n, ok are docNumber(docid). When docid's number is the
// next one, the table grows by it, and its state moves there from the map
// if it was in it.
func (b *Bucket) docSlotLocked(v *vbucket, docid string, n uint64, ok bool) (uint64, bool) {
	switch {
	case !ok || n > uint64(len(b.nums)):
		return 0, false
	case n == uint64(len(b.nums)):
		var m docMeta
		if len(v.docs) > 0 {
			if m = v.docs[docid]; m != 0 {
				delete(v.docs, docid)
			}
		}
		b.nums = append(b.nums, m)
	}
	return n, true
}

// appendLocked appends it, whose key and value are in the arena, to v's
// history as the next seqno.
func (b *Bucket) appendLocked(v *vbucket, it item) upr.Seqno {
	v.high++
	it.seqno = v.high
	it.emit = b.clock()
	v.inSnap++
	if v.inSnap >= b.snapItems {
		it.snapEnd = true
		v.inSnap = 0
	}
	v.items.append(&b.segs, it)
	b.signalLocked()
	return it.seqno
}

// signalLocked wakes every feed waiting for a change.
func (b *Bucket) signalLocked() {
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
}

// waitLocked returns a channel closed at the next change.
func (b *Bucket) waitLocked() <-chan struct{} {
	if b.wake == nil {
		b.wake = make(chan struct{})
	}
	return b.wake
}

// HighSeqno is a vbucket's current seqno.
func (b *Bucket) HighSeqno(vb upr.Vbno) upr.Seqno {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.vbs[vb].high
}

// CurrentSeqnos is KV's "current seqnos" vector, what request_plus scans
// wait for: per vbucket the high seqno and the current vbuuid. Its snapshot
// per vbucket is [seqno, seqno], so the vector counts as snapshot-aligned.
func (b *Bucket) CurrentSeqnos() *upr.TsVbuuid {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := upr.NewTsVbuuid(len(b.vbs))
	for i := range b.vbs {
		v := &b.vbs[i]
		ts.Seqnos[i] = v.high
		ts.Vbuuids[i] = v.log[0].Vbuuid
		ts.Snapshots[i] = [2]upr.Seqno{v.high, v.high}
	}
	return ts
}

// WaitSeqnos blocks until every vbucket's high seqno reaches ts's (a
// replica of another bucket catching up with a vector read elsewhere), or
// ctx is done.
func (b *Bucket) WaitSeqnos(ctx context.Context, ts *upr.TsVbuuid) error {
	for {
		b.mu.Lock()
		behind := false
		for vb := range min(len(b.vbs), ts.Len()) {
			if b.vbs[vb].high < ts.Seqnos[vb] {
				behind = true
				break
			}
		}
		var wake <-chan struct{}
		if behind {
			wake = b.waitLocked()
		}
		b.mu.Unlock()
		if !behind {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// HistoryLen is how many items the vbuckets' histories hold together: what
// Compact bounds.
func (b *Bucket) HistoryLen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for i := range b.vbs {
		n += b.vbs[i].items.len()
	}
	return n
}

// FailoverLog is a copy of a vbucket's failover log, newest first.
func (b *Bucket) FailoverLog(vb upr.Vbno) upr.FailoverLog {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.vbs[vb].log)
}

// Failover simulates a failover of vbucket vb to a replica that had its
// history up to branchSeqno: mutations above it are lost, a new branch (new
// vbuuid) starts at branchSeqno, and the failover log drops branches that
// began above it. Open streams of vb end with EndStateChanged. It fails if
// vb is out of range, branchSeqno is above the high seqno, or the history
// below branchSeqno was compacted.
func (b *Bucket) Failover(vb upr.Vbno, branchSeqno upr.Seqno) error {
	if int(vb) >= len(b.vbs) {
		return fmt.Errorf("failover vb %d: out of range (%d vbuckets)", vb, len(b.vbs))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	v := &b.vbs[vb]
	if branchSeqno > v.high {
		return fmt.Errorf("failover vb %d: branch seqno %d is above the high seqno %d", vb, branchSeqno, v.high)
	}
	if branchSeqno < v.compacted {
		return fmt.Errorf("failover vb %d: history below seqno %d is compacted, cannot branch at %d", vb, v.compacted, branchSeqno)
	}
	b.truncateLocked(v, branchSeqno)
	b.newBranchLocked(v, branchSeqno)
	v.gen++
	v.ended = upr.EndStateChanged
	b.failovers.Add(1)
	b.signalLocked()
	return nil
}

// truncateLocked drops v's history above seqno: the documents it changed
// go back to what the rest of the history says, and the next mutation
// starts a new snapshot.
func (b *Bucket) truncateLocked(v *vbucket, seqno upr.Seqno) {
	n := v.items.find(seqno + 1)
	b.forgetDocsLocked(v, n)
	v.items.truncate(n, &b.segs)
	if n > 0 {
		v.items.last().snapEnd = true
	}
	v.inSnap = 0
	v.high = seqno
}

// newBranchLocked starts a new branch (a new vbuuid) of v at seqno; the
// failover log drops the branches that began above it.
func (b *Bucket) newBranchLocked(v *vbucket, seqno upr.Seqno) {
	v.log = slices.DeleteFunc(slices.Clone(v.log), func(e upr.FailoverEntry) bool { return e.Seqno > seqno })
	u := b.newVbuuid(v.log)
	v.log = slices.Insert(v.log, 0, upr.FailoverEntry{Vbuuid: u, Seqno: seqno})
	v.everUUIDs = append(v.everUUIDs, u)
}

// Restart simulates a restart of the KV process (memcached): every open
// stream of every vbucket ends with EndDisconnected, as the connection
// carrying it drops. A clean restart (persisted empty) loses nothing.
// After a crash, each vbucket in persisted comes back with its history up
// to the seqno given, the mutations above it that were never persisted
// being lost; with newEntry the vbucket starts a new failover-log entry
// there (a new vbuuid, as after a failover), so a consumer past it is
// answered with Rollback. Without newEntry the vbuuid stays, and the lost
// seqnos are given again to new mutations: a consumer that already holds
// the lost ones cannot tell, once the vbucket's high seqno has passed
// its own, that its history is not KV's. It fails, changing nothing, if
// a vbucket is out of range, a seqno is above its high seqno or in
// compacted history, or, without newEntry, below the start of the current
// branch (the failover log would name a branch that began past the high
// seqno).
func (b *Bucket) Restart(persisted map[upr.Vbno]upr.Seqno, newEntry bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for vb, s := range persisted {
		if int(vb) >= len(b.vbs) {
			return fmt.Errorf("kv restart: vb %d out of range (%d vbuckets)", vb, len(b.vbs))
		}
		v := &b.vbs[vb]
		switch {
		case s > v.high:
			return fmt.Errorf("kv restart vb %d: persisted seqno %d is above the high seqno %d", vb, s, v.high)
		case s < v.compacted:
			return fmt.Errorf("kv restart vb %d: history below seqno %d is compacted, cannot lose it back to %d", vb, v.compacted, s)
		case !newEntry && s < v.log[0].Seqno:
			return fmt.Errorf("kv restart vb %d: persisted seqno %d is below the current branch's start %d; a loss that deep needs a failover-log entry",
				vb, s, v.log[0].Seqno)
		}
	}
	lost := false
	// In vbucket order: new vbuuids are drawn in turn, and a replica
	// replaying the restart must draw the same ones for the same vbuckets.
	for _, vb := range slices.Sorted(maps.Keys(persisted)) {
		s := persisted[vb]
		v := &b.vbs[vb]
		lost = lost || s < v.high
		b.truncateLocked(v, s)
		if newEntry {
			b.newBranchLocked(v, s)
		}
	}
	for i := range b.vbs {
		b.vbs[i].gen++
		b.vbs[i].ended = upr.EndDisconnected
	}
	if lost || newEntry {
		// Readers that cache answers about the history (View) must look
		// again, as after a failover.
		b.failovers.Add(1)
	}
	b.signalLocked()
	return nil
}

// forgetDocsLocked rolls the state of the documents of the items a
// failover drops from the end of v's history, those from index n on, back
// to what the rest of the history says: their latest version there, or
// nothing.
func (b *Bucket) forgetDocsLocked(v *vbucket, n int) {
	h := &v.items
	if n >= h.len() {
		return
	}
	// Which documents changed, and what the kept history says of them.
	affected := make(map[string]docMeta, h.len()-n)
	for i := n; i < h.len(); i++ {
		affected[string(b.arena.key(h.at(i)))] = 0
	}
	for i := range n {
		it := h.at(i)
		k := unsafe.String(unsafe.SliceData(b.arena.key(it)), it.klen)
		if _, ok := affected[k]; ok {
			affected[k] = makeDocMeta(it.rev, it.op == upr.OpMutation)
		}
	}
	for id, m := range affected {
		num, isNum := docNumber(id)
		if n, dense := b.docSlotLocked(v, id, num, isNum); dense {
			b.nums[n] = m
		} else if m == 0 {
			delete(v.docs, id)
		} else {
			v.docs[id] = m
		}
	}
}

func b2u(x bool) uint64 {
	if x {
		return 1
	}
	return 0
}

// Compact deduplicates every vbucket's history at or below below's seqno
// for it, as KV's checkpoints and disk files do: only each document's
// latest version there is kept (tombstones included), and the compacted
// range becomes one snapshot. Answers the oracle gives for vectors ≥ below
// do not change; a stream from below the compacted seqno receives the
// deduplicated snapshot. Vbuckets whose seqno in below exceeds their high
// seqno are compacted up to the high seqno.
func (b *Bucket) Compact(below *upr.TsVbuuid) {
	b.mu.Lock()
	defer b.mu.Unlock()
	upto := make([]upr.Seqno, len(b.vbs)) // 0: vb is not compacted further
	compact := false
	for vb := range min(len(b.vbs), below.Len()) {
		v := &b.vbs[vb]
		if c := min(below.Seqnos[vb], v.high); c > v.compacted {
			upto[vb], compact = c, true
		}
	}
	if !compact {
		return
	}
	// What each vbucket keeps below its compaction point, and how many
	// bytes of each arena chunk the kept history still uses.
	kept := make([][]item, len(b.vbs))
	start := make([]int, len(b.vbs)) // index of the first item not deduplicated
	live := make([]int, len(b.arena.chunks))
	for vb := range b.vbs {
		v := &b.vbs[vb]
		if c := upto[vb]; c > 0 {
			start[vb] = v.items.find(c + 1)
			kept[vb] = b.dedupLocked(&v.items, start[vb])
			for i := range kept[vb] {
				it := &kept[vb][i]
				it.snapEnd = i == len(kept[vb])-1
				live[it.chunk] += int(it.klen + it.vlen)
			}
			v.compacted = c
		}
		for i := start[vb]; i < v.items.len(); i++ {
			it := v.items.at(i)
			live[it.chunk] += int(it.klen + it.vlen)
		}
	}
	// The history moves to a new arena: chunks still at least half used
	// stay as they are, the others' kept bytes are copied, so the dropped
	// versions' bytes, and the generator's chunks they were in, can be
	// freed (once no event refers to them) without copying everything
	// each time; memory stays below about twice what the history uses.
	// It moves to new segments too, since feeds may still be sending from
	// the old ones.
	old := &b.arena
	a := arena{own: -1, shared: -1, sizes: old.sizes}
	moved := make([]int32, len(old.chunks)) // chunk's index in a, or -1
	for c, chunk := range old.chunks {
		moved[c] = -1
		if live[c] > 0 && 2*live[c] >= len(chunk) {
			moved[c] = int32(len(a.chunks))
			a.chunks = append(a.chunks, chunk)
		}
	}
	// add fills a kept own chunk's spare room (its written bytes do not
	// change), and a generator's kept chunk is the one it adopts next.
	if old.own >= 0 {
		a.own = int(moved[old.own])
	}
	if old.shared >= 0 {
		a.shared = int(moved[old.shared])
	}
	b.segs = segSlab{} // let the old chunks go with the old segments
	for vb := range b.vbs {
		v := &b.vbs[vb]
		var items history
		add := func(it item) {
			if c := moved[it.chunk]; c >= 0 {
				it.chunk = uint32(c)
			} else {
				it.chunk, it.off = a.add(old.key(&it), old.value(&it))
			}
			items.append(&b.segs, it)
		}
		for _, it := range kept[vb] {
			add(it)
		}
		for i := start[vb]; i < v.items.len(); i++ {
			add(*v.items.at(i))
		}
		v.items = items
	}
	b.arena = a
}

// dedupLocked returns each document's latest version among h's first n
// items (whose bytes are in b.arena), in seqno order. Generated ids are
// told apart by their number (b.seen), others by a map keyed by the
// arena's bytes.
func (b *Bucket) dedupLocked(h *history, n int) []item {
	if len(b.seen) < len(b.nums) {
		b.seen = append(b.seen, make([]uint32, len(b.nums)-len(b.seen))...)
	}
	b.epoch++
	if b.epoch == 0 {
		clear(b.seen)
		b.epoch = 1
	}
	var others map[string]struct{}
	out := make([]item, 0, n)
	for i := n - 1; i >= 0; i-- {
		it := h.at(i)
		if n := int(it.num) - 1; n >= 0 && n < len(b.seen) {
			if b.seen[n] == b.epoch {
				continue
			}
			b.seen[n] = b.epoch
		} else {
			// The key's bytes never change: a string may share them.
			k := unsafe.String(unsafe.SliceData(b.arena.key(it)), it.klen)
			if _, dup := others[k]; dup {
				continue
			}
			if others == nil {
				others = make(map[string]struct{})
			}
			others[k] = struct{}{}
		}
		out = append(out, *it)
	}
	slices.Reverse(out)
	return out
}

// rollbackSeqno applies the DCP rules to a stream request against a
// vbucket's failover log and high seqno: whether the requester must roll
// back, and to which seqno.
//
//   - start 0 never rolls back (the requester has nothing).
//   - an unknown vbuuid rolls back to 0.
//   - the requester's branch ends at the seqno the next newer branch began
//     at (the high seqno for the current branch); a start past that end
//     rolls back to it.
//   - a snapshot [snapStart, snapEnd] reaching past that end is only
//     partly on the surviving history, so the requester rolls back to
//     snapStart.
func rollbackSeqno(log upr.FailoverLog, high upr.Seqno, req upr.StreamRequest) (upr.Seqno, bool) {
	if req.Start == 0 {
		return 0, false
	}
	i := slices.IndexFunc(log, func(e upr.FailoverEntry) bool { return e.Vbuuid == req.Vbuuid })
	if i < 0 {
		return 0, true
	}
	upper := high
	if i > 0 {
		upper = log[i-1].Seqno
	}
	if req.Start > upper {
		return upper, true
	}
	if req.SnapEnd > upper {
		return req.SnapStart, true
	}
	return 0, false
}
