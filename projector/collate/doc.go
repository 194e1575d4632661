// Package collate is the order-preserving binary encoding of index keys:
// JSON-ish values (as workload/defn describes them: nil, bool, float64,
// string, []any, map[string]any and defn.Missing) become byte strings whose
// bytes.Compare order is the index order. Engines sort raw bytes, so this
// encoding is what makes an engine's iteration order the index's order.
//
// # Collation
//
// Values of different kinds order by kind:
//
//	missing < null < false < true < numbers < strings < arrays < objects
//
// Within a kind:
//   - numbers by numeric value; -0 equals +0. NaN and ±Inf are not JSON
//     numbers and are rejected.
//   - strings by the bytes of their UTF-8 encoding (Go string order).
//   - arrays element by element; an array that is a proper prefix of another
//     sorts first.
//   - objects as the sequence of their (key, value) pairs sorted by key:
//     compare the first pairs (key first, then value), then the second, and
//     so on; an object whose pair sequence is a proper prefix of another's
//     sorts first. So {} < {"a":1} < {"a":1,"b":0} < {"a":2} < {"b":0}.
//
// # Encoding
//
// Every value starts with a kind tag byte (0x01 missing … 0x08 object) and is
// self-delimiting:
//   - missing, null, false, true: the tag alone.
//   - number: the tag and 8 bytes, the IEEE-754 bits of the float64 with the
//     sign bit flipped for non-negative numbers and all bits flipped for
//     negative ones (so unsigned big-endian order is numeric order).
//   - string: the tag, the bytes with each 0x00 written as 0x00 0xFF, and the
//     terminator 0x00 0x01 (it sorts below any continuation).
//   - array: the tag, each element's encoding, and the terminator 0x00 (below
//     every tag).
//   - object: the tag, for each pair in key order the key's string encoding
//     (with its tag) then the value's encoding, and the terminator 0x00.
//
// Because no encoding is a proper prefix of another value's encoding, a
// composite key is the concatenation of its components' encodings
// (AppendComposite), Decode can split it again, and a key followed by any
// suffix (the indexer appends the document id) still sorts by the key first
// as long as all keys compared have the same number of components.
//
// PrefixEnd turns an encoded key or key prefix into the exclusive upper bound
// of every byte string that starts with it, which is how the scan service
// builds inclusive high bounds and exclusive low bounds.
package collate
