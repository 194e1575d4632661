package engines

// OpKind is the kind of one batch operation.
type OpKind uint8

const (
	OpSet OpKind = iota
	OpDelete
)

// Op is one operation of a Batch. Key and Value alias the batch's buffer and
// are valid until the batch is reset.
type Op struct {
	Kind     OpKind
	Keyspace Keyspace
	Key      []byte
	Value    []byte
}

// Batch collects operations to apply atomically. It copies keys and values
// into one growing buffer, so building a batch costs no allocation per
// operation once the buffer has grown. The zero value is an empty batch.
type Batch struct {
	buf []byte
	ops []opRef
}

type opRef struct {
	kind     OpKind
	ks       Keyspace
	off      int
	keyLen   int
	valueLen int
}

// Set records key → value in ks.
func (b *Batch) Set(ks Keyspace, key, value []byte) {
	off := len(b.buf)
	b.buf = append(b.buf, key...)
	b.buf = append(b.buf, value...)
	b.ops = append(b.ops, opRef{kind: OpSet, ks: ks, off: off, keyLen: len(key), valueLen: len(value)})
}

// Delete records the removal of key from ks.
func (b *Batch) Delete(ks Keyspace, key []byte) {
	off := len(b.buf)
	b.buf = append(b.buf, key...)
	b.ops = append(b.ops, opRef{kind: OpDelete, ks: ks, off: off, keyLen: len(key)})
}

// Len is the number of operations.
func (b *Batch) Len() int { return len(b.ops) }

// Bytes is the number of key and value bytes recorded.
func (b *Batch) Bytes() int { return len(b.buf) }

// Op returns operation i in the order it was recorded.
func (b *Batch) Op(i int) Op {
	r := b.ops[i]
	k := b.buf[r.off : r.off+r.keyLen : r.off+r.keyLen]
	var v []byte
	if r.kind == OpSet {
		v = b.buf[r.off+r.keyLen : r.off+r.keyLen+r.valueLen : r.off+r.keyLen+r.valueLen]
	}
	return Op{Kind: r.kind, Keyspace: r.ks, Key: k, Value: v}
}

// Reset empties the batch, keeping its buffers for reuse.
func (b *Batch) Reset() {
	b.buf = b.buf[:0]
	b.ops = b.ops[:0]
}

// Clone returns a copy of b that shares no memory with it, in two
// allocations.
func (b *Batch) Clone() *Batch {
	return &Batch{
		buf: append(make([]byte, 0, len(b.buf)), b.buf...),
		ops: append(make([]opRef, 0, len(b.ops)), b.ops...),
	}
}
