package harness

import (
	"context"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/indexer"
)

// BenchmarkPipelineIngest runs load + closed-loop ingest through the whole
// pipeline on each engine and reports mutations/s and index lag; compare
// with engines/baseline's raw rates for the pipeline-to-raw ratio.
//
//	go test ./harness -run ^$ -bench PipelineIngest -benchtime 1x
func BenchmarkPipelineIngest(b *testing.B) {
	scen := []byte(`
name: bench-ingest
workload: {docs: 50000, vbuckets: 256}
phases:
  - type: load
  - {type: ingest, mutations: 100000, raw_ratio: true}
`)
	for _, engine := range []string{"memory", "pebble", "badger", "bbolt"} {
		b.Run("engine="+engine, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				job := CellJob{Engine: engine, DataDir: b.TempDir(), DirLabel: "d0", Scenario: scen, Quiet: true}
				cell, err := RunCell(context.Background(), job, io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				load, ing := cell.Phase("load").Metrics, cell.Phase("ingest").Metrics
				b.ReportMetric(load["docs_per_sec"], "load_docs/s")
				b.ReportMetric(ing["mutations_per_sec"], "mutations/s")
				b.ReportMetric(ing["index_lag_p50_ms"], "lag_p50_ms")
				b.ReportMetric(ing["index_lag_p99_ms"], "lag_p99_ms")
				b.ReportMetric(ing["key_versions_flushed"]/ing["ingest_seconds"], "kv/s")
				b.ReportMetric(ing["raw_mutations_per_sec"], "raw_mutations/s")
				b.ReportMetric(ing["pipeline_to_raw_ratio"], "pipeline/raw")
				b.ReportMetric(ing["pipeline_to_raw_cpu_ratio"], "pipeline/raw_cpu")
			}
		})
	}
}

// BenchmarkScanCheck compares, per scan kind, what a scan costs the
// indexer (in process, memory engine) with what checking its answer costs
// the scan phase's checker (scanChecker.check: the oracle view's answer at
// the scan's snapshot and the comparison). Checking every scan is cheap
// enough when check is at most about scan.
//
//	go test ./harness -run ^$ -bench ScanCheck -benchtime 2000x
func BenchmarkScanCheck(b *testing.B) {
	ctx := context.Background()
	sc, err := ParseScenario([]byte("workload: {docs: 20000, vbuckets: 64}\nphases: [{type: load}]"))
	if err != nil {
		b.Fatal(err)
	}
	spec, err := EffectiveWorkload(sc, Overrides{})
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engines.Lookup("memory")
	if err != nil {
		b.Fatal(err)
	}
	cfg := pipelineConfig{spec: spec, engine: eng, dir: b.TempDir(), settings: sc.Indexer}
	cfg.opts.EnsureDefaults()
	p, err := newPipeline(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	if _, err := p.load(); err != nil {
		b.Fatal(err)
	}
	if err := p.ix.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if err := p.waitCaughtUp(ctx, time.Minute); err != nil {
		b.Fatal(err)
	}
	inst := p.insts[0]
	all, err := p.ix.Scan(ctx, indexer.ScanRequest{InstID: inst.ID, Kind: indexer.ScanAll})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	request := func(kind indexer.ScanKind) indexer.ScanRequest {
		k := all.Entries[r.IntN(len(all.Entries))].Key
		req := indexer.ScanRequest{InstID: inst.ID, Kind: kind, Limit: 100}
		switch kind {
		case indexer.ScanRange:
			req.Low, req.Inclusion = k, indexer.IncludeLow
		case indexer.ScanLookup:
			req.Equal = k
		case indexer.ScanCount:
			k2 := all.Entries[r.IntN(len(all.Entries))].Key
			if compareKeys(k2, k) < 0 {
				k, k2 = k2, k
			}
			req.Low, req.High, req.Inclusion, req.Limit = k, k2, indexer.IncludeBoth, 0
		}
		return req
	}
	for _, kind := range []indexer.ScanKind{indexer.ScanRange, indexer.ScanLookup, indexer.ScanCount} {
		reqs := make([]indexer.ScanRequest, 256)
		res := make([]*indexer.ScanResult, len(reqs))
		for i := range reqs {
			reqs[i] = request(kind)
			if res[i], err = p.ix.Scan(ctx, reqs[i]); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("kind="+kind.String()+"/op=scan", func(b *testing.B) {
			for i := range b.N {
				if _, err := p.ix.Scan(ctx, reqs[i%len(reqs)]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("kind="+kind.String()+"/op=check", func(b *testing.B) {
			k, err := newScanChecker(p.oracle, inst.Defn, 1, all.TS, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer k.finish()
			b.ResetTimer()
			for i := range b.N {
				if err := k.check(scanCheck{req: reqs[i%len(reqs)], res: res[i%len(res)]}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if k.mismatches > 0 {
				b.Fatalf("%d mismatches: %s", k.mismatches, k.firstMismatch)
			}
		})
	}
}
