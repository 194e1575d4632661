package workload

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"github.com/idxbench/idxbench/workload/upr"
)

// OpKind is the kind of a generated operation.
type OpKind uint8

const (
	OpInsert OpKind = iota + 1 // a new document
	OpUpdate                   // a new version of a live document
	OpDelete                   // delete a live document
	OpExpire                   // expire a live document
)

func (k OpKind) String() string {
	switch k {
	case OpInsert:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpExpire:
		return "expire"
	}
	return fmt.Sprintf("opkind(%d)", uint8(k))
}

// Op is one generated operation.
type Op struct {
	Kind  OpKind
	DocID string
	// Value is the new JSON body for inserts and updates, nil otherwise. It
	// stays valid (the generator never reuses it) and must not be modified.
	Value []byte
	// Intended is, in open loop (Spec.Rate > 0), when the operation should
	// start, as an offset from the phase's start; 0 in closed loop and for
	// the load.
	Intended time.Duration
}

// Generator produces a spec's documents and operation stream,
// deterministically from the spec's seed: the same spec gives the same
// operations byte for byte, which Digest proves. It first yields the load
// (Spec.Docs inserts, through Load or NextLoad), then, from Next, the
// operation mix without end; Spec.Mutations is for the caller to count.
//
// The generator tracks which documents are live by assuming each operation
// is applied to the bucket exactly once, in order; updates, deletes and
// expirations only touch live documents.
//
// Document ids are "doc-" and a 10-digit insertion number, so they sort in
// insertion order. Key distributions draw a position in the list of live
// documents, which is in insertion order except that a removal moves the
// newest document into the hole: zipfian favours the front (the oldest
// documents), latest the back (the newest), sequential cycles through it,
// uniform picks any.
//
// A Generator is not safe for concurrent use.
type Generator struct {
	spec      Spec
	rng       *rand.Rand
	cum       [3]float64 // cumulative insert, update, delete fractions
	ids       uint64     // documents ever inserted; the next id
	live      []uint64   // ids of live documents; key choices index it
	pos       []int32    // pos[id]: id's index in live, -1 once removed
	keys      *zipf      // zipfian and latest key choice over live
	seq       uint64
	cities    *alias
	cityNames []string
	loaded    int    // load operations produced
	ops       uint64 // operations produced by Next
	digest    *xxhash.Digest
	// slab is the chunk operations are carved from, each one's document
	// id then body back to back (one allocation per many operations);
	// written bytes never change. Apply lets the bucket keep the chunk
	// rather than copy the operation (Bucket.write).
	slab  []byte
	slabs chunkSizes
	// extra is the tree of the spec's extra fields, nil without any.
	extra *extraNode
}

// NewGenerator returns a generator for spec (defaults applied); it fails if
// the spec is invalid.
func NewGenerator(spec Spec) (*Generator, error) {
	// The extra fields are the generator's own: EnsureDefaults fills them
	// in place.
	spec.Fields.Extra = slices.Clone(spec.Fields.Extra)
	spec.EnsureDefaults()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	g := &Generator{
		spec:   spec,
		rng:    rand.New(rand.NewPCG(spec.Seed, 0x67656e6572617465)), // "generate"
		keys:   newZipf(0, spec.ZipfTheta),
		cities: newZipfAlias(spec.Fields.Cities, spec.Fields.CityTheta),
		digest: xxhash.New(),
	}
	o := spec.Ops
	g.cum = [3]float64{o.Insert, o.Insert + o.Update, o.Insert + o.Update + o.Delete}
	if len(g.spec.Fields.Extra) > 0 {
		g.extra = newExtraTree(g.spec.Fields.Extra)
	}
	g.cityNames = make([]string, spec.Fields.Cities)
	for i := range g.cityNames {
		g.cityNames[i] = cityName(i)
	}
	return g, nil
}

// Spec is the generator's spec, defaults applied.
func (g *Generator) Spec() Spec { return g.spec }

// NewBucket returns an empty bucket shaped by the generator's spec
// (vbuckets, seed, snapshot size), with opts' clock.
func (g *Generator) NewBucket(opts BucketOptions) *Bucket {
	opts.SnapshotItems = g.spec.SnapshotItems
	return NewBucketWithOptions(g.spec.Vbuckets, g.spec.Seed, opts)
}

// Load inserts the spec's initial documents (those NextLoad has not yet
// produced) into b.
func (g *Generator) Load(b *Bucket) {
	for {
		op, ok := g.NextLoad()
		if !ok {
			return
		}
		g.Apply(b, op)
	}
}

// NextLoad returns the next insert of the load, or false when the load is
// complete.
func (g *Generator) NextLoad() (Op, bool) {
	if g.loaded >= g.spec.Docs {
		return Op{}, false
	}
	g.loaded++
	op := g.insert()
	g.record(op)
	return op, true
}

// Loaded is how many load inserts were produced.
func (g *Generator) Loaded() int { return g.loaded }

// Ops is how many operations Next produced.
func (g *Generator) Ops() uint64 { return g.ops }

// Next returns the next operation after the load. It panics if the load
// is incomplete: the two streams must not interleave.
func (g *Generator) Next() Op {
	if g.loaded < g.spec.Docs {
		panic("workload: Generator.Next before the load is complete")
	}
	var op Op
	u := g.rng.Float64()
	switch {
	case u < g.cum[0] || len(g.live) == 0:
		op = g.insert()
	case u < g.cum[1]:
		op = g.build(OpUpdate, g.live[g.pick()])
	case u < g.cum[2]:
		op = g.remove(OpDelete)
	default:
		op = g.remove(OpExpire)
	}
	if g.spec.Rate > 0 {
		op.Intended = time.Duration(float64(g.ops) * float64(time.Second) / g.spec.Rate)
	}
	g.ops++
	g.record(op)
	return op
}

// Apply applies op to b, returning the vbucket and seqno it got (seqno 0 if
// a delete or expiration found no document, which cannot happen when ops
// are applied in order). It is b.Set, b.Delete or b.Expire, except that
// for an operation still in the generator's current slab chunk, as the
// last one Next returned always is, b keeps the chunk rather than copy
// the document id and body.
func (g *Generator) Apply(b *Bucket, op Op) (upr.Vbno, upr.Seqno) {
	chunk, off := g.owned(op)
	var vb upr.Vbno
	var s upr.Seqno
	switch op.Kind {
	case OpInsert, OpUpdate:
		vb, s, _ = b.write(op.DocID, op.Value, upr.OpMutation, chunk, off)
	case OpDelete:
		vb, s, _ = b.write(op.DocID, nil, upr.OpDeletion, chunk, off)
	case OpExpire:
		vb, s, _ = b.write(op.DocID, nil, upr.OpExpiration, chunk, off)
	default:
		panic(fmt.Sprintf("workload: apply %v", op.Kind))
	}
	return vb, s
}

// owned returns the generator's current slab chunk and op's offset in it
// if op's document id and value lie there back to back, else nil: the op
// was built before the chunk filled up, or its body outgrew its room, or
// it is not this generator's.
func (g *Generator) owned(op Op) ([]byte, uint32) {
	if len(op.DocID) == 0 || len(g.slab) == 0 {
		return nil, 0
	}
	// Address comparisons only: nothing is converted back to a pointer.
	base := uintptr(unsafe.Pointer(unsafe.SliceData(g.slab)))
	key := uintptr(unsafe.Pointer(unsafe.StringData(op.DocID)))
	end := key + uintptr(len(op.DocID))
	if key < base || end+uintptr(len(op.Value)) > base+uintptr(len(g.slab)) {
		return nil, 0
	}
	if len(op.Value) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(op.Value))) != end {
		return nil, 0
	}
	return g.slab, uint32(key - base)
}

// Digest is a running digest (xxhash64, hex) of every operation produced
// so far — kind, document id and body, not Intended — so two runs can show
// they generated the same stream.
func (g *Generator) Digest() string {
	return fmt.Sprintf("%016x", g.digest.Sum64())
}

func (g *Generator) record(op Op) {
	// The header and a generated id in one write (the digest does not
	// depend on how its input is split).
	var buf [1 + 2*binaryLen + maxDocIDLen]byte
	hdr := buf[:1+2*binaryLen]
	hdr[0] = byte(op.Kind)
	putLen(hdr[1:], len(op.DocID))
	putLen(hdr[1+binaryLen:], len(op.Value))
	if len(op.DocID) <= maxDocIDLen {
		g.digest.Write(append(hdr, op.DocID...))
	} else {
		g.digest.Write(hdr)
		g.digest.WriteString(op.DocID)
	}
	g.digest.Write(op.Value)
}

const binaryLen = 4

func putLen(b []byte, n int) {
	b[0], b[1], b[2], b[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
}

func (g *Generator) insert() Op {
	id := g.ids
	g.ids++
	g.pos = append(g.pos, int32(len(g.live)))
	g.live = append(g.live, id)
	return g.build(OpInsert, id)
}

// remove takes a live document out of the live list: the last one moves
// into its place.
func (g *Generator) remove(kind OpKind) Op {
	i := g.pick()
	id, last := g.live[i], g.live[len(g.live)-1]
	g.live[i] = last
	g.pos[last] = int32(i)
	g.live = g.live[:len(g.live)-1]
	g.pos[id] = -1
	return g.build(kind, id)
}

// build carves an operation on document id from the slab: the id, then
// for inserts and updates a new body (see owned).
func (g *Generator) build(kind OpKind, id uint64) Op {
	withBody := kind == OpInsert || kind == OpUpdate
	target, room := 0, maxDocIDLen
	if withBody {
		target = g.valueSize()
		// The body's room: its target size, or what the fields may take.
		room += max(target, 224)
	}
	if cap(g.slab)-len(g.slab) < room {
		g.slab = g.slabs.alloc(room)
	}
	n0 := len(g.slab)
	key := appendDocID(g.slab[n0:n0], id)
	op := Op{Kind: kind, DocID: unsafe.String(unsafe.SliceData(key), len(key))}
	g.slab = g.slab[:n0+len(key)]
	if withBody {
		// A full-slice expression keeps the body inside its room; one that
		// outgrows it moves to the heap by append.
		n := len(g.slab)
		v := g.body(g.slab[n:n:n0+room], target)
		if unsafe.SliceData(v) == unsafe.SliceData(g.slab[n:n0+room]) {
			g.slab = g.slab[:n+len(v)]
		}
		op.Value = v[:len(v):len(v)]
	}
	return op
}

// pick draws an index into the live list (non-empty) by the key
// distribution. The list is in insertion order but for removals, which
// move the last (newest) document into the hole.
func (g *Generator) pick() int {
	n := len(g.live)
	switch g.spec.KeyDist {
	case KeyUniform:
		return g.rng.IntN(n)
	case KeyZipfian:
		g.keys.resize(uint64(n))
		return int(g.keys.sample(g.rng))
	case KeyLatest:
		g.keys.resize(uint64(n))
		return n - 1 - int(g.keys.sample(g.rng))
	}
	i := int(g.seq % uint64(n))
	g.seq++
	return i
}

// docID formats id as "doc-" and at least 10 digits.
func docID(id uint64) string {
	var b [maxDocIDLen]byte
	return string(appendDocID(b[:0], id))
}

// maxDocIDLen is the longest docID.
const maxDocIDLen = 4 + 20

// appendDocID appends docID(id) to b.
func appendDocID(b []byte, id uint64) []byte {
	var d [20]byte
	i := len(d)
	for n := 0; n < 10 || id > 0; n++ {
		i--
		d[i] = byte('0' + id%10)
		id /= 10
	}
	b = append(b, "doc-"...)
	return append(b, d[i:]...)
}

var (
	firstNames = [...]string{"Ada", "Alan", "Barbara", "Brian", "Carla", "Dennis", "Edsger", "Frances",
		"Grace", "Hedy", "Ivan", "Jean", "Ken", "Leslie", "Margaret", "Niklaus",
		"Ole", "Peter", "Radia", "Rob", "Shafi", "Tony", "Ursula", "Vint",
		"Whitfield", "Xiao", "Yukihiro", "Zhores", "Anita", "Butler", "Cynthia", "Donald"}
	lastNames = [...]string{"Moreau", "Okafor", "Lindqvist", "Tanaka", "Novak", "Haddad", "Ferreira", "Kowalski",
		"Nakamura", "Osei", "Petrov", "Quinn", "Rahman", "Schmidt", "Torres", "Ueda",
		"Varga", "Weber", "Yilmaz", "Zhang", "Abara", "Berg", "Castillo", "Dubois",
		"Eriksen", "Fontaine", "Gallo", "Horvat", "Ivanova", "Jansen", "Keller", "Laine"}
	cityHeads = [...]string{"Lun", "Bright", "Ash", "Cold", "Dun", "East", "Fair", "Glen",
		"High", "Iron", "Kings", "Long", "Mill", "North", "Oak", "Pine",
		"Queens", "Red", "Stone", "Thorn", "Up", "Vale", "West", "Wind",
		"York", "Elm", "Frost", "Gold", "Hart", "Lake", "Moss", "Raven"}
	cityTails = [...]string{"aford", "holm", "bury", "ton", "field", "wick", "mouth", "port",
		"stead", "ham", "ley", "bridge", "gate", "cross", "dale", "moor",
		"haven", "worth", "by", "thorpe", "combe", "ridge", "minster", "well",
		"brook", "castle", "cliff", "shaw", "wood", "marsh", "hurst", "ness"}
	tagWords = [...]string{"red", "green", "blue", "new", "sale", "vip", "beta", "gold",
		"silver", "eu", "us", "apac", "mobile", "web", "trial", "legacy"}
)

// cityName names city i: 1024 distinct compound names, then numbered ones.
func cityName(i int) string {
	name := cityHeads[i%len(cityHeads)] + cityTails[(i/len(cityHeads))%len(cityTails)]
	if r := i / (len(cityHeads) * len(cityTails)); r > 0 {
		name += "-" + strconv.Itoa(r)
	}
	return name
}

const padAlphabet = "abcdefghijklmnopqrstuvwxyz012345" // 32 symbols: 5 bits each

// padPairs[v] is padAlphabet[v&31] then padAlphabet[v>>5], little-endian:
// two padding symbols from 10 bits in one store.
var padPairs = func() (t [1024]uint16) {
	for v := range t {
		t[v] = uint16(padAlphabet[v&31]) | uint16(padAlphabet[v>>5])<<8
	}
	return t
}()

// body appends to buf (empty) a document's JSON of about target bytes,
// by appending bytes (no encoding/json): the generator must outrun every
// engine.
func (g *Generator) body(buf []byte, target int) []byte {
	r, f := g.rng, &g.spec.Fields
	buf = append(buf, '{')
	// Presence of the seven optional fields from 16-bit slices of two
	// draws rather than seven draws.
	missing := uint64(f.Missing * (1 << 16))
	bits, nbits := uint64(0), 0
	present := func() bool {
		if missing == 0 {
			return true
		}
		if nbits == 0 {
			bits, nbits = r.Uint64(), 4
		}
		v := bits & 0xffff
		bits >>= 16
		nbits--
		return v >= missing
	}
	sep := func() {
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
	}
	if present() {
		sep()
		buf = append(buf, `"name":"`...)
		buf = append(buf, firstNames[r.IntN(len(firstNames))]...)
		buf = append(buf, ' ')
		buf = append(buf, lastNames[r.IntN(len(lastNames))]...)
		buf = append(buf, '"')
	}
	if present() {
		sep()
		buf = append(buf, `"age":`...)
		buf = strconv.AppendInt(buf, int64(f.AgeMin+r.IntN(f.AgeMax-f.AgeMin+1)), 10)
	}
	if present() {
		sep()
		buf = append(buf, `"city":"`...)
		buf = append(buf, g.cityNames[g.cities.sample(r)]...)
		buf = append(buf, '"')
	}
	if present() {
		sep()
		buf = append(buf, `"active":`...)
		buf = strconv.AppendBool(buf, r.Float64() < f.Active)
	}
	if present() {
		sep()
		buf = append(buf, `"address":{"city":"`...)
		buf = append(buf, g.cityNames[g.cities.sample(r)]...)
		buf = append(buf, `","zip":`...)
		buf = strconv.AppendInt(buf, int64(10000+r.IntN(90000)), 10)
		buf = append(buf, '}')
	}
	if present() {
		sep()
		buf = append(buf, `"tags":[`...)
		for i, n := 0, r.IntN(f.TagsMax+1); i < n; i++ {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, '"')
			buf = append(buf, tagWords[r.IntN(len(tagWords))]...)
			buf = append(buf, '"')
		}
		buf = append(buf, ']')
	}
	if present() {
		sep()
		buf = append(buf, `"score":`...)
		if f.ScoreNull > 0 && r.Float64() < f.ScoreNull {
			buf = append(buf, "null"...)
		} else {
			s := r.IntN(1000) // one decimal in [0, 100)
			buf = strconv.AppendInt(buf, int64(s/10), 10)
			buf = append(buf, '.', byte('0'+s%10))
		}
	}
	if g.extra != nil {
		buf, _ = appendExtra(buf, r, g.extra, len(buf) == 1)
	}
	const padField = `"padding":""}`
	pad := target - len(buf) - len(padField)
	if len(buf) > 1 {
		pad--
	}
	if pad <= 0 {
		return append(buf, '}')
	}
	sep()
	buf = append(buf, `"padding":"`...)
	n := len(buf)
	buf = slices.Grow(buf, pad+2)[:n+pad]
	p := buf[n:]
	for len(p) >= 12 {
		// Twelve symbols from the low 60 bits of a draw, two per lookup,
		// in two stores.
		x := r.Uint64()
		lo := uint64(padPairs[x&1023]) | uint64(padPairs[x>>10&1023])<<16 |
			uint64(padPairs[x>>20&1023])<<32 | uint64(padPairs[x>>30&1023])<<48
		hi := uint32(padPairs[x>>40&1023]) | uint32(padPairs[x>>50&1023])<<16
		binary.LittleEndian.PutUint64(p, lo)
		binary.LittleEndian.PutUint32(p[8:], hi)
		p = p[12:]
	}
	if len(p) > 0 {
		x := r.Uint64()
		for k := range p {
			p[k] = padAlphabet[x>>(5*k)&31]
		}
	}
	return append(buf, `"}`...)
}

// valueSize draws a body size from the spec's distribution.
func (g *Generator) valueSize() int {
	d := &g.spec.ValueSize
	switch d.Dist {
	case "uniform":
		return d.Min + g.rng.IntN(d.Max-d.Min+1)
	case "normal":
		v := int(float64(d.Mean) + g.rng.NormFloat64()*float64(d.Stddev))
		v = max(v, d.Min)
		if d.Max > 0 {
			v = min(v, d.Max)
		}
		return max(v, 1)
	}
	return d.Mean
}
