package harness

import (
	"context"
	"io"
	"testing"
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
