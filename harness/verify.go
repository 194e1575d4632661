package harness

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/projector/collate"
	"github.com/idxbench/idxbench/workload/defn"
)

// verdict is the outcome of comparing every live index with the oracle.
type verdict struct {
	// Indexes and Entries are how many indexes were compared and how many
	// entries the oracle expected of them together.
	Indexes, Entries int
	// Differing is how many entries differ from the oracle's, over every
	// index.
	Differing int
	// Problems describe each index that differs, sorted; none when every
	// index equals the oracle.
	Problems []string
}

// OK reports whether every index equals the oracle.
func (v verdict) OK() bool { return len(v.Problems) == 0 }

func (v verdict) String() string {
	if v.OK() {
		return fmt.Sprintf("ok: %d indexes, %d entries equal the oracle", v.Indexes, v.Entries)
	}
	return strings.Join(v.Problems, " | ")
}

// verify waits until the index reflects the whole bucket, then compares a
// full scan of every index with the oracle at the scan's snapshot vector:
// with several index nodes, a scan of every replica of every index.
func (c *cellRun) verify(ctx context.Context) (verdict, error) {
	var v verdict
	if err := c.p.waitCaughtUp(ctx, catchUpTimeout); err != nil {
		return v, err
	}
	for _, inst := range c.p.insts {
		for _, r := range c.p.replicas(inst.ID) {
			name := inst.Defn.Name
			if r.node != "" {
				name += " (replica on " + r.node + ")"
			}
			res, err := r.ix.Scan(ctx, indexer.ScanRequest{InstID: inst.ID, Kind: indexer.ScanAll})
			if err != nil {
				return v, fmt.Errorf("verify: scan %s: %w", name, err)
			}
			want, err := c.p.oracle.Expected(inst.Defn, res.TS)
			if err != nil {
				return v, fmt.Errorf("verify: oracle for %s: %w", name, err)
			}
			v.Indexes++
			v.Entries += len(want)
			if lines, n := diffEntries(res.Entries, want, 5); n > 0 {
				v.Differing += n
				v.Problems = append(v.Problems, fmt.Sprintf("index %s differs from the oracle in %d entries (index %d, oracle %d): %s",
					name, n, len(res.Entries), len(want), strings.Join(lines, "; ")))
			}
		}
	}
	sort.Strings(v.Problems)
	return v, nil
}

// diffEntries compares an index's entries with the oracle's, as sets of
// (docid, key). It returns up to max lines describing the differences, and
// the total number of differing entries.
func diffEntries(got, want []defn.Entry, max int) (lines []string, n int) {
	g := append([]defn.Entry(nil), got...)
	w := append([]defn.Entry(nil), want...)
	byDoc := func(es []defn.Entry) {
		sort.SliceStable(es, func(i, j int) bool { return es[i].DocID < es[j].DocID })
	}
	byDoc(g)
	byDoc(w)
	note := func(format string, args ...any) {
		n++
		if len(lines) < max {
			lines = append(lines, fmt.Sprintf(format, args...))
		}
	}
	i, j := 0, 0
	for i < len(g) || j < len(w) {
		switch {
		case j == len(w) || (i < len(g) && g[i].DocID < w[j].DocID):
			note("extra %s %s", g[i].DocID, fmtKey(g[i].Key))
			i++
		case i == len(g) || w[j].DocID < g[i].DocID:
			note("missing %s %s", w[j].DocID, fmtKey(w[j].Key))
			j++
		default:
			if !reflect.DeepEqual(g[i].Key, w[j].Key) {
				note("wrong key %s: index has %s, oracle %s", g[i].DocID, fmtKey(g[i].Key), fmtKey(w[j].Key))
			}
			i++
			j++
		}
	}
	return lines, n
}

func fmtKey(k []any) string {
	parts := make([]string, len(k))
	for i, v := range k {
		switch v := v.(type) {
		case defn.MissingValue:
			parts[i] = "MISSING"
		case string:
			parts[i] = fmt.Sprintf("%q", v)
		case nil:
			parts[i] = "null"
		default:
			parts[i] = fmt.Sprint(v)
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// compareKeys orders two decoded keys by their collated encodings, which is
// index order.
func compareKeys(a, b []any) int {
	ea, errA := collate.AppendComposite(nil, a)
	eb, errB := collate.AppendComposite(nil, b)
	if errA != nil || errB != nil {
		return 0
	}
	return bytes.Compare(ea, eb)
}
