package projector

import (
	"errors"
	"fmt"

	"github.com/idxbench/idxbench/projector/collate"
	"github.com/idxbench/idxbench/workload/defn"
)

// Instance is an index definition compiled for evaluation: validated field
// paths and a parsed WHERE filter. It is immutable once compiled, so the
// projector can share it between goroutines.
type Instance struct {
	// ID identifies the instance in KeyVersions; 0 is reserved for the
	// stream-level commands.
	ID   uint64
	Defn defn.IndexDefn

	where    defn.Where
	nparts   int
	partPath string // "" partitions by document id
}

// Compile validates d and compiles it as instance id.
func Compile(id uint64, d defn.IndexDefn) (*Instance, error) {
	in, err := compile(id, d)
	if err != nil {
		return nil, fmt.Errorf("index %q: %w", d.Name, err)
	}
	return in, nil
}

func compile(id uint64, d defn.IndexDefn) (*Instance, error) {
	if id == 0 {
		return nil, errors.New("instance id 0 is reserved")
	}
	if d.Partitions < 0 {
		return nil, fmt.Errorf("partitions %d is negative", d.Partitions)
	}
	in := &Instance{ID: id, Defn: d, nparts: d.NumPartitions(), partPath: d.PartitionKey}
	if d.PartitionKey != "" && !defn.ValidPath(d.PartitionKey) {
		return nil, fmt.Errorf("partition key %q is not a field path", d.PartitionKey)
	}
	if d.IsPrimary {
		if len(d.SecExprs) > 0 {
			return nil, errors.New("a primary index has no key expressions")
		}
		if d.Where != "" {
			return nil, errors.New("a primary index has no WHERE filter")
		}
		return in, nil
	}
	if len(d.SecExprs) == 0 {
		return nil, errors.New("a secondary index needs at least one key expression")
	}
	for _, p := range d.SecExprs {
		if !defn.ValidPath(p) {
			return nil, fmt.Errorf("key expression %q is not a field path", p)
		}
	}
	w, err := defn.ParseWhere(d.Where)
	if err != nil {
		return nil, err
	}
	in.where = w
	return in, nil
}

// NumPartitions is the number of partitions the instance's KeyVersions are
// spread over.
func (in *Instance) NumPartitions() int { return in.nparts }

// paths lists every field path the instance reads: key expressions, then
// WHERE paths, then the partition key.
func (in *Instance) paths() []string {
	ps := append([]string(nil), in.Defn.SecExprs...)
	for _, c := range in.where {
		ps = append(ps, c.Path)
	}
	if in.partPath != "" {
		ps = append(ps, in.partPath)
	}
	return ps
}

// Evaluate computes the instance's entry for one document version, the way
// the projector does for a mutation: the encoded key (nil when the document
// does not qualify: WHERE false, leading key missing, or a body that is not
// valid JSON) and the partition the entry belongs to (for a field partition
// key, the partition of the field's current value). It is meant for tests
// and tools; the projector evaluates all instances in one pass instead.
func (in *Instance) Evaluate(docid, doc []byte) (key []byte, partition int, err error) {
	c := newCompiledInstance(in, nil)
	tree, slots := newFieldTree(in.paths())
	c.bindSlots(slots)
	vals := make([]jval, tree.nslots)
	var r jsonReader
	if r.extract(tree, doc, vals) != nil {
		clear(vals) // not JSON: every field is missing
	}
	var e evaluator
	key, ok, err := e.key(c, docid, vals, nil)
	if err != nil || !ok {
		return nil, 0, err
	}
	return key, e.partition(c, docid, vals), nil
}

// compiledInstance is an Instance bound to the slots of one fieldTree and to
// the endpoints its partitions route to.
type compiledInstance struct {
	*Instance
	keySlots   []int
	whereSlots []int
	partSlot   int   // -1: partition by document id
	endpoints  []int // per partition
}

func newCompiledInstance(in *Instance, endpoints []int) *compiledInstance {
	return &compiledInstance{Instance: in, partSlot: -1, endpoints: endpoints}
}

// bindSlots takes the slots of in.paths(), in that order.
func (c *compiledInstance) bindSlots(slots []int) {
	n := len(c.Defn.SecExprs)
	c.keySlots = slots[:n:n]
	c.whereSlots = slots[n : n+len(c.where) : n+len(c.where)]
	if c.partPath != "" {
		c.partSlot = slots[n+len(c.where)]
	}
}

// evaluator holds the scratch space of key evaluation.
type evaluator struct {
	hbuf []byte
}

// key appends the instance's encoded key for a document to dst; ok is false
// when the document does not qualify.
func (e *evaluator) key(c *compiledInstance, docid []byte, vals []jval, dst []byte) (key []byte, ok bool, err error) {
	if c.Defn.IsPrimary {
		return collate.AppendStringBytes(dst, docid), true, nil
	}
	if vals[c.keySlots[0]].kind == jMissing {
		return dst, false, nil
	}
	for i, cond := range c.where {
		if !evalCond(cond, &vals[c.whereSlots[i]]) {
			return dst, false, nil
		}
	}
	// A composite key is the concatenation of its components' encodings.
	for i, s := range c.keySlots {
		if dst, err = appendJval(dst, &vals[s]); err != nil {
			return dst, false, fmt.Errorf("index %q: key component %d: %w", c.Defn.Name, i, err)
		}
	}
	return dst, true, nil
}

// appendJval appends the collated encoding of j.
func appendJval(dst []byte, j *jval) ([]byte, error) {
	switch j.kind {
	case jNumber:
		return collate.AppendNumber(dst, j.num)
	case jString:
		return collate.AppendString(dst, j.str), nil
	}
	return collate.AppendValue(dst, j.toAny())
}

// partition is the partition of a qualifying document: FNV-1a of the
// collated partition key value (of the document id when the instance has no
// partition key) modulo the partition count.
func (e *evaluator) partition(c *compiledInstance, docid []byte, vals []jval) int {
	if c.nparts == 1 {
		return 0
	}
	if c.partSlot < 0 {
		return PartitionOf(docid, c.nparts)
	}
	var err error
	e.hbuf, err = appendJval(e.hbuf[:0], &vals[c.partSlot])
	if err != nil {
		// Values decoded from JSON always encode; fall back to the
		// document id rather than fail the stream.
		return PartitionOf(docid, c.nparts)
	}
	return PartitionOf(e.hbuf, c.nparts)
}

// PartitionOf maps b (a document id, or the collated encoding of a
// partition key value) to one of n partitions: FNV-1a 32 of b modulo n.
func PartitionOf(b []byte, n int) int {
	if n <= 1 {
		return 0
	}
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for _, c := range b {
		h ^= uint32(c)
		h *= prime32
	}
	return int(h % uint32(n))
}

// evalCond evaluates one WHERE condition on a field value, with the
// semantics of defn.Where: a comparison holds only when the value has the
// literal's kind. Within a kind, numbers and strings compare naturally,
// false < true, and null equals null.
func evalCond(c defn.Cond, j *jval) bool {
	missing := j.kind == jMissing
	switch c.Op {
	case "missing":
		return missing
	case "exists":
		return !missing
	}
	var cmp int
	switch lit := c.Value.(type) {
	case float64:
		if j.kind != jNumber {
			return false
		}
		cmp = compareOrdered(j.num, lit)
	case string:
		if j.kind != jString {
			return false
		}
		cmp = compareOrdered(j.str, lit)
	case bool:
		if j.kind != jTrue && j.kind != jFalse {
			return false
		}
		cmp = compareOrdered(boolRank(j.kind == jTrue), boolRank(lit))
	case nil:
		if j.kind != jNull {
			return false
		}
	default:
		return false
	}
	switch c.Op {
	case "=":
		return cmp == 0
	case "!=":
		return cmp != 0
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case ">=":
		return cmp >= 0
	}
	return false
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func compareOrdered[T float64 | string | int](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
