package projector

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/idxbench/idxbench/projector/collate"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: time-based)")

func testSeed(t testing.TB) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed: %d (rerun with: go test ./projector -run '^%s$' -seed %d)", seed, t.Name(), seed)
	return seed
}

var modelNames = []string{"a", "b", "c", "k-1"}

func randPath(r *rand.Rand) string {
	parts := make([]string, 1+r.IntN(3))
	for i := range parts {
		parts[i] = modelNames[r.IntN(len(modelNames))]
	}
	return strings.Join(parts, ".")
}

func randDocValue(r *rand.Rand, depth int) any {
	n := 8
	if depth > 3 {
		n = 6
	}
	switch r.IntN(n) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2, 3:
		return float64(r.IntN(7)-3) / 2
	case 4, 5:
		return []string{"", "x", "y", "é\u0000", "O'k"}[r.IntN(5)]
	case 6:
		a := make([]any, r.IntN(3))
		for i := range a {
			a[i] = randDocValue(r, depth+1)
		}
		return a
	default:
		m := map[string]any{}
		for range r.IntN(4) {
			m[modelNames[r.IntN(len(modelNames))]] = randDocValue(r, depth+1)
		}
		return m
	}
}

func randWhere(r *rand.Rand) string {
	var conds []string
	for range r.IntN(3) {
		p := randPath(r)
		switch r.IntN(4) {
		case 0:
			conds = append(conds, p+" IS MISSING")
		case 1:
			conds = append(conds, p+" IS NOT MISSING")
		default:
			op := []string{"=", "!=", "<", "<=", ">", ">="}[r.IntN(6)]
			lit := []string{"0", "1.5", "-1", "'x'", "''", "true", "false", "null"}[r.IntN(8)]
			conds = append(conds, p+" "+op+" "+lit)
		}
	}
	return strings.Join(conds, " AND ")
}

// modelPath, modelCond and modelKey restate the defn rules on values decoded
// by encoding/json.
func modelPath(doc any, path string) (any, bool) {
	v := doc
	for _, name := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[name]; !ok {
			return nil, false
		}
	}
	return v, true
}

func modelCond(c defn.Cond, doc any) bool {
	v, ok := modelPath(doc, c.Path)
	if c.Op == "missing" || c.Op == "exists" {
		return ok == (c.Op == "exists")
	}
	if !ok {
		return false
	}
	var lt, eq bool
	switch lit := c.Value.(type) {
	case float64:
		f, isNum := v.(float64)
		if !isNum {
			return false
		}
		lt, eq = f < lit, f == lit
	case string:
		s, isStr := v.(string)
		if !isStr {
			return false
		}
		lt, eq = s < lit, s == lit
	case bool:
		b, isBool := v.(bool)
		if !isBool {
			return false
		}
		lt, eq = !b && lit, b == lit
	case nil:
		if v != nil {
			return false
		}
		eq = true
	}
	return map[string]bool{"=": eq, "!=": !eq, "<": lt, "<=": lt || eq, ">": !lt && !eq, ">=": !lt}[c.Op]
}

func modelKey(t *testing.T, d defn.IndexDefn, docid string, doc any) []any {
	if d.IsPrimary {
		return []any{docid}
	}
	w, err := defn.ParseWhere(d.Where)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range w {
		if !modelCond(c, doc) {
			return nil
		}
	}
	var key []any
	for i, p := range d.SecExprs {
		v, ok := modelPath(doc, p)
		if !ok {
			if i == 0 {
				return nil
			}
			v = defn.Missing
		}
		key = append(key, v)
	}
	return key
}

// TestModel evaluates random index definitions on random documents through
// one Projector (so the shared field tree and slot binding are exercised)
// and compares every key version with the model above.
func TestModel(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 7))
	rounds := 300
	if testing.Short() {
		rounds = 30
	}
	for round := range rounds {
		var defs []defn.IndexDefn
		var insts []*Instance
		for i := range 1 + r.IntN(5) {
			d := defn.IndexDefn{Name: fmt.Sprint("i", i), Partitions: 1 + r.IntN(3)}
			if r.IntN(6) == 0 {
				d.IsPrimary = true
			} else {
				for range 1 + r.IntN(3) {
					d.SecExprs = append(d.SecExprs, randPath(r))
				}
				d.Where = randWhere(r)
			}
			if r.IntN(3) == 0 {
				d.PartitionKey = randPath(r)
			}
			defs = append(defs, d)
			insts = append(insts, mustCompile(t, uint64(i+1), d))
		}
		p, recs := newTestProjector(t, 1, Options{}, insts...)
		var evs []upr.Event
		var docs []any
		for i := range 20 {
			doc := randDocValue(r, 0)
			if r.IntN(4) != 0 {
				m := map[string]any{}
				for range 1 + r.IntN(4) {
					m[modelNames[r.IntN(len(modelNames))]] = randDocValue(r, 1)
				}
				doc = m
			}
			body, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			// Round-trip through encoding/json, as the reference sees it.
			var ref any
			if err := json.Unmarshal(body, &ref); err != nil {
				t.Fatal(err)
			}
			docs = append(docs, ref)
			evs = append(evs, mutation(0, upr.Seqno(i+1), fmt.Sprint("doc", i), string(body)))
		}
		handleAll(t, p, evs...)
		got := map[[2]uint64][]KeyVersion{} // (seqno, inst) → key versions
		for _, kv := range recs[0].kvs() {
			k := [2]uint64{uint64(kv.Seqno), kv.InstID}
			got[k] = append(got[k], kv)
		}
		for i, doc := range docs {
			docid := fmt.Sprint("doc", i)
			for j, d := range defs {
				kvs := got[[2]uint64{uint64(i + 1), uint64(j + 1)}]
				want := modelKey(t, d, docid, doc)
				ctx := fmt.Sprintf("round %d doc %s %s, index %+v", round, evs[i].Value, docid, d)
				checkInstanceKVs(t, ctx, d, docid, doc, want, kvs)
			}
		}
	}
}

func checkInstanceKVs(t *testing.T, ctx string, d defn.IndexDefn, docid string, doc any, want []any, kvs []KeyVersion) {
	t.Helper()
	nparts := d.NumPartitions()
	wantPart := -1
	if want != nil {
		switch {
		case nparts == 1:
			wantPart = 0
		case d.PartitionKey == "":
			wantPart = PartitionOf([]byte(docid), nparts)
		default:
			v, ok := modelPath(doc, d.PartitionKey)
			if !ok {
				v = defn.Missing
			}
			enc, err := collate.AppendValue(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			wantPart = PartitionOf(enc, nparts)
		}
	}
	// Upsert to wantPart (if any); UpsertDeletion to the partition of the
	// document id, or to every other partition for a field partition key.
	seen := map[int]Command{}
	for _, kv := range kvs {
		if _, dup := seen[kv.Partition]; dup {
			t.Fatalf("%s: two key versions for partition %d", ctx, kv.Partition)
		}
		seen[kv.Partition] = kv.Cmd
		if kv.Cmd == Upsert {
			wantKey, err := collate.AppendComposite(nil, want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(kv.Key, wantKey) {
				got, _ := collate.Decode(kv.Key)
				t.Fatalf("%s: key %s, want %s", ctx, fmtVal(got), fmtVal(want))
			}
		}
	}
	for part := range nparts {
		var wantCmd Command
		switch {
		case part == wantPart:
			wantCmd = Upsert
		case d.PartitionKey != "" && nparts > 1:
			wantCmd = UpsertDeletion
		case want == nil && part == PartitionOf([]byte(docid), nparts):
			wantCmd = UpsertDeletion
		}
		if seen[part] != wantCmd {
			t.Fatalf("%s: partition %d got %v, want %v (model key %s)", ctx, part, seen[part], wantCmd, fmtVal(want))
		}
	}
}
