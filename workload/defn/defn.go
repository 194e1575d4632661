// Package defn holds index definitions: what a secondary index is over. The
// workload spec, the projector, the oracle and the coordinator all speak of
// indexes in these terms, so the type lives in a leaf package of its own.
package defn

// IndexDefn defines one secondary index.
type IndexDefn struct {
	// Name is unique within the bucket.
	Name string `yaml:"name"`
	// SecExprs are the secondary key expressions: document field paths in
	// dotted form ("address.city", "tags"). One expression is a simple key;
	// several make a composite key. Empty for a primary index.
	SecExprs []string `yaml:"keys"`
	// Where is an optional filter: documents for which it is false are not
	// indexed. Empty means every document. Its grammar is the workload
	// spec's (see workload.ParseWhere).
	Where string `yaml:"where,omitempty"`
	// IsPrimary makes a primary index: the key is the document id.
	IsPrimary bool `yaml:"primary,omitempty"`
	// Partitions is the number of hash partitions (slices), 1 when unset.
	Partitions int `yaml:"partitions,omitempty"`
	// PartitionKey is the field path hashed to choose a partition; default
	// the document id.
	PartitionKey string `yaml:"partition_key,omitempty"`
	// Deferred indexes are created but not built until a build request.
	Deferred bool `yaml:"deferred,omitempty"`
	// Replicas is how many copies of the index besides the first the
	// coordinator places, each on a different index node; default 0.
	Replicas int `yaml:"replicas,omitempty"`
}

// MaxReplicas bounds Replicas.
const MaxReplicas = 7

// NumPartitions is Partitions with the default applied.
func (d *IndexDefn) NumPartitions() int {
	if d.Partitions <= 0 {
		return 1
	}
	return d.Partitions
}
