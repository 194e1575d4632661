package defn

// Document values, as both the projector and the oracle see them, are JSON
// values decoded to Go: nil (null), bool, float64, string, []any and
// map[string]any, plus Missing for a field a document does not have.

// MissingValue is the type of Missing.
type MissingValue struct{}

// Missing stands for an absent field. It collates before null. An index key
// whose leading expression is missing is not indexed; a missing non-leading
// component of a composite key is indexed as Missing.
var Missing = MissingValue{}

// Entry is one index entry as values: the secondary key (one value per
// expression; for a primary index, the document id as a string) and the
// document id.
type Entry struct {
	Key   []any
	DocID string
}
