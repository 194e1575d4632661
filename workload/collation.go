package workload

import (
	"cmp"
	"slices"
	"strings"

	"github.com/idxbench/idxbench/workload/defn"
)

// CompareKeys orders two index keys (one value per key expression) as the
// indexer orders its entries: component by component with CompareValues, a
// key that is a proper prefix of the other first. It is the oracle's own
// statement of the collation projector/collate encodes (its doc is the
// specification), written from that doc and not from the encoder, so a
// test that checks one against the other checks both.
func CompareKeys(a, b []any) int {
	for i := range min(len(a), len(b)) {
		if c := CompareValues(a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

// comparePrefix compares key's first len(bound) components with bound: 0
// when key starts with bound, which is how a scan bound with fewer values
// than the key has components matches.
func comparePrefix(key, bound []any) int {
	if len(key) > len(bound) {
		key = key[:len(bound)]
	}
	return CompareKeys(key, bound)
}

// Kinds in collation order.
const (
	kindMissing = iota
	kindNull
	kindFalse
	kindTrue
	kindNumber
	kindString
	kindArray
	kindObject
	kindUnknown
)

func kindOf(v any) int {
	switch v := v.(type) {
	case defn.MissingValue:
		return kindMissing
	case nil:
		return kindNull
	case bool:
		if v {
			return kindTrue
		}
		return kindFalse
	case float64:
		return kindNumber
	case string:
		return kindString
	case []any:
		return kindArray
	case map[string]any:
		return kindObject
	}
	return kindUnknown
}

// CompareValues orders two document values: by kind first (missing < null
// < false < true < numbers < strings < arrays < objects), then numbers by
// value (-0 equals +0), strings bytewise, arrays element by element (a
// proper prefix first), objects as their (key, value) pairs sorted by key,
// pair by pair (key, then value; a proper prefix first).
func CompareValues(a, b any) int {
	ka, kb := kindOf(a), kindOf(b)
	if ka != kb {
		return cmp.Compare(ka, kb)
	}
	switch a := a.(type) {
	case float64:
		return cmp.Compare(a, b.(float64))
	case string:
		return strings.Compare(a, b.(string))
	case []any:
		return CompareKeys(a, b.([]any))
	case map[string]any:
		return compareObjects(a, b.(map[string]any))
	}
	return 0
}

func compareObjects(a, b map[string]any) int {
	ka, kb := sortedKeys(a), sortedKeys(b)
	for i := range min(len(ka), len(kb)) {
		if c := strings.Compare(ka[i], kb[i]); c != 0 {
			return c
		}
		if c := CompareValues(a[ka[i]], b[kb[i]]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(ka), len(kb))
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
