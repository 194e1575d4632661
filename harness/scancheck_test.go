package harness

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/projector/collate"
	"github.com/idxbench/idxbench/results"
	"github.com/idxbench/idxbench/workload"
	"github.com/idxbench/idxbench/workload/defn"
)

func init() {
	registerWrongScan("test-wrong-scan", 1000)
	registerWrongScan("test-wrong-scan-100", 100)
}

// registerWrongScan registers a test engine: the memory engine, except that
// every every-th iterator over index entries skips its second entry — one
// scan in every returns a wrong entry (or count), which only a check of
// every scan catches. Node processes of procs-topology tests run this
// binary, so they find it too.
func registerWrongScan(name string, every int64) {
	mem, err := engines.Lookup("memory")
	if err != nil {
		panic(err)
	}
	var iters atomic.Int64
	e := engines.WrapStores(mem, func(_ string, s engines.Store) engines.Store {
		return &wrongScanStore{Store: s, iters: &iters, every: every}
	})
	e.Name, e.Doc = name, fmt.Sprintf("memory that skips an entry in one scan of %d (harness tests only)", every)
	engines.Register(e)
}

type wrongScanStore struct {
	engines.Store
	iters *atomic.Int64
	every int64
}

func (s *wrongScanStore) NewView() (engines.View, error) {
	v, err := s.Store.NewView()
	if err != nil {
		return nil, err
	}
	return &wrongScanView{View: v, iters: s.iters, every: s.every}, nil
}

type wrongScanView struct {
	engines.View
	iters *atomic.Int64
	every int64
}

func (v *wrongScanView) NewIter(ks engines.Keyspace, lower, upper []byte) (engines.Iterator, error) {
	it, err := v.View.NewIter(ks, lower, upper)
	if err != nil || ks != engines.Main || v.iters.Add(1)%v.every != 0 {
		return it, err
	}
	return &skipSecond{Iterator: it}, nil
}

// skipSecond skips the entry after the first.
type skipSecond struct {
	engines.Iterator
	skipped bool
}

func (it *skipSecond) Next() bool {
	if !it.skipped {
		it.skipped = true
		if !it.Iterator.Next() {
			return false
		}
	}
	return it.Iterator.Next()
}

// checkScenario loads without the load phase's full verification (its
// scans would meet the test engine's wrong answers too), then scans.
const checkScenario = `
name: scancheck
workload:
  docs: 2000
  vbuckets: 16
  seed: 5
  indexes:
    - {name: by_city, keys: [city]}
    - {name: by_age_city, keys: [age, city]}
indexer: {snapshot_interval: 20ms, persist_interval: 200ms}
phases:
  - {type: load, verify: false}
  - {type: scan, name: range, kind: range, limit: 20, duration: 1s}
  - {type: scan, name: count-under-ingest, kind: count, index: by_age_city, consistency: request_plus, under_ingest: true, rate: 3000, duration: 500ms}
  - {type: scan, name: lookup-at-plus, kind: lookup, consistency: at_plus, under_ingest: true, rate: 3000, duration: 500ms}
`

func runCheckCell(t *testing.T, engine, topology string) results.Cell {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	job := CellJob{Engine: engine, DataDir: t.TempDir(), DirLabel: "d0", Cores: 1, Scenario: []byte(checkScenario),
		Verify: true, Quiet: true, Topology: topology, Executable: exe}
	var stderr strings.Builder
	cell, err := RunCell(context.Background(), job, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	return cell
}

// TestEveryScanChecked: with --verify every scan of a scan phase is compared
// with the oracle, in both topologies: on the memory engine every answer
// agrees; on an engine that gets one scan in a thousand wrong, the phase
// fails naming the scan and the entries that differ.
func TestEveryScanChecked(t *testing.T) {
	for _, topology := range []string{TopologyInproc, TopologyProcs} {
		t.Run(topology, func(t *testing.T) {
			t.Run("memory", func(t *testing.T) {
				cell := runCheckCell(t, "memory", topology)
				for _, name := range []string{"range", "count-under-ingest", "lookup-at-plus"} {
					ph := cell.Phase(name)
					m := ph.Metrics
					if ph.Verify != results.VerifyPass {
						t.Errorf("phase %s: %s %s", name, ph.Verify, ph.VerifyDetail)
					}
					// The checker sees each client scan once: scans equal to
					// scans_checked also says scans counts each scan once
					// (not again for the indexer's own timing of it). Under
					// ingest, the scans before its first mutation are
					// checked but not measured.
					if m["scans"] == 0 || m["scans_checked"] != m["scans"]+m["scans_before_ingest"] || m["scan_mismatches"] != 0 {
						t.Errorf("phase %s: scans %v, checked %v, mismatches %v", name, m["scans"], m["scans_checked"], m["scan_mismatches"])
					}
					if _, ok := m["scan_warmup_ms"]; ok != (name != "range") {
						t.Errorf("phase %s: scan_warmup_ms present %v: the measured window starts at the ingest's first mutation only under ingest", name, ok)
					}
					if m["indexer_scan_p50_ms"] <= 0 {
						t.Errorf("phase %s: no indexer_scan_p50_ms: %v", name, m)
					}
				}
			})
			// One wrong scan in 1000 in process; in 100 across processes,
			// where a shared two-core machine serves far fewer scans.
			engine, every := "test-wrong-scan", 1000.0
			if topology == TopologyProcs {
				engine, every = "test-wrong-scan-100", 100
			}
			t.Run(engine, func(t *testing.T) {
				cell := runCheckCell(t, engine, topology)
				ph := cell.Phase("range")
				m := ph.Metrics
				t.Logf("range: %v scans, %v checked, %v mismatches: %s", m["scans"], m["scans_checked"], m["scan_mismatches"], ph.VerifyDetail)
				if m["scans"] < 2*every {
					t.Skipf("only %v scans in the phase: too few to meet a wrong one reliably", m["scans"])
				}
				if ph.Verify != results.VerifyFail || m["scan_mismatches"] < 1 {
					t.Fatalf("an engine that answers one scan in %v wrongly passed: %s %v", every, ph.Verify, m)
				}
				if m["scan_mismatches"] > m["scans"]/every+2 {
					t.Errorf("%v mismatches in %v scans: more than the engine got wrong", m["scan_mismatches"], m["scans"])
				}
				for _, s := range []string{"differ from the oracle", "scan ", "range any low", "entry 1: index doc-"} {
					if !strings.Contains(ph.VerifyDetail, s) {
						t.Errorf("verify detail lacks %q: %s", s, ph.VerifyDetail)
					}
				}
			})
		})
	}
}

// TestCompareKeysMatchesCollate: the oracle's statement of the collation
// orders random values exactly as projector/collate's encoding does.
func TestCompareKeysMatchesCollate(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed: %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for range 20000 {
		a, b := randomKey(r), randomKey(r)
		ea, err := collate.AppendComposite(nil, a)
		if err != nil {
			t.Fatal(err)
		}
		eb, err := collate.AppendComposite(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := workload.CompareKeys(a, b), bytes.Compare(ea, eb); got != want {
			t.Fatalf("seed %d: CompareKeys(%s, %s) = %d, collate says %d", seed, fmtKey(a), fmtKey(b), got, want)
		}
	}
}

func randomKey(r *rand.Rand) []any {
	k := make([]any, 1+r.IntN(3))
	for i := range k {
		k[i] = randomValue(r, 2)
	}
	return k
}

func randomValue(r *rand.Rand, depth int) any {
	strs := []string{"", "a", "a\x00", "a\x00b", "ab", "b", "\xff"}
	n := 7
	if depth == 0 {
		n = 5
	}
	switch r.IntN(n) {
	case 0:
		return defn.Missing
	case 1:
		return nil
	case 2:
		return r.IntN(2) == 0
	case 3:
		return []float64{-2, -1.5, 0, 1, 1.5, 1e300}[r.IntN(6)]
	case 4:
		return strs[r.IntN(len(strs))]
	case 5:
		a := make([]any, r.IntN(3))
		for i := range a {
			a[i] = randomValue(r, depth-1)
		}
		return a
	}
	m := map[string]any{}
	for range r.IntN(3) {
		m[strs[r.IntN(len(strs))]] = randomValue(r, depth-1)
	}
	return m
}

// TestViewQuery: every request kind becomes the range the indexer reads.
func TestViewQuery(t *testing.T) {
	k := []any{"x"}
	cases := []struct {
		req  indexer.ScanRequest
		want workload.Query
	}{
		{indexer.ScanRequest{Kind: indexer.ScanAll, Limit: 5}, workload.Query{Index: "i", Limit: 5}},
		{indexer.ScanRequest{Kind: indexer.ScanLookup, Equal: k}, workload.Query{Index: "i", Low: k, High: k, LowInclusive: true, HighInclusive: true}},
		{indexer.ScanRequest{Kind: indexer.ScanCount, Equal: k}, workload.Query{Index: "i", Low: k, High: k, LowInclusive: true, HighInclusive: true, CountOnly: true}},
		{indexer.ScanRequest{Kind: indexer.ScanRange, Low: k, Inclusion: indexer.IncludeLow}, workload.Query{Index: "i", Low: k, LowInclusive: true}},
		{indexer.ScanRequest{Kind: indexer.ScanCount, Low: k, High: k, Inclusion: indexer.IncludeHigh}, workload.Query{Index: "i", Low: k, High: k, HighInclusive: true, CountOnly: true}},
	}
	for _, c := range cases {
		got := viewQuery("i", c.req)
		if got.Limit != c.want.Limit || got.CountOnly != c.want.CountOnly || got.LowInclusive != c.want.LowInclusive ||
			got.HighInclusive != c.want.HighInclusive || (got.Low == nil) != (c.want.Low == nil) || (got.High == nil) != (c.want.High == nil) {
			t.Errorf("%+v: got %+v, want %+v", c.req, got, c.want)
		}
	}
}
