package results

import (
	"encoding/json"
	"flag"
	"math/rand/v2"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: pick one and print it)")

// testRand returns a seeded generator and prints the seed and how to rerun.
func testRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed: %d (rerun: go test ./results -run '^%s$' -seed %d)", seed, t.Name(), seed)
	return testRandSeed(seed)
}

func testRandSeed(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// synthRun builds a run of engines × repeats with one ingest and one scan
// phase whose metrics are drawn around the given centers with ±noise
// relative jitter. slow multiplies latencies and divides throughput (1 is
// no slowdown).
func synthRun(rng *rand.Rand, started time.Time, engines []string, repeats int, noise, slow float64) *Run {
	run := &Run{
		Schema:   SchemaVersion,
		Seed:     42,
		Scenario: "synthetic",
		Config:   testConfig(),
		Machine:  Machine{CPUModel: "Test CPU", Cores: 2, MemoryBytes: 8 << 30, Kernel: "Linux 6.1", GoVersion: "go1.26", GitRevision: "abc123"},
		Started:  started,
		Finished: started.Add(2 * time.Minute),
	}
	jit := func(v float64) float64 { return v * (1 + noise*(2*rng.Float64()-1)) }
	for _, e := range engines {
		base := float64(len(e)) // per engine, independent of its position
		for r := 0; r < repeats; r++ {
			var series []Tick
			for s := 1; s <= 5; s++ {
				series = append(series,
					Tick{Elapsed: float64(s), Op: "batch", OpsPerSec: jit(1000*base) / slow, P50Ms: jit(2 * base * slow), P95Ms: jit(4 * base * slow), P99Ms: jit(6 * base * slow), MaxMs: jit(9 * base * slow), Gauges: map[string]float64{"mutation_queue_size": float64(10 * s)}},
				)
			}
			run.Cells = append(run.Cells, Cell{
				Engine: e, Dir: "d0", Cores: 2, Repeat: r, EngineOptions: map[string]string{"opt": "1"}, Durability: "sync",
				Phases: []Phase{
					{Name: "ingest", Verify: VerifyPass, Metrics: map[string]float64{
						"mutations_per_sec": jit(50000*base) / slow,
						"index_lag_p99_ms":  jit(30*base) * slow,
						"mutations":         100000,
						"disk_bytes":        jit(1 << 20),
					}, Series: series},
					{Name: "scan", Verify: VerifyPass, Metrics: map[string]float64{
						"scan_p50_ms": jit(1.5*base) * slow,
						"scan_p99_ms": jit(4*base) * slow,
					}},
				},
			})
		}
	}
	return run
}

// testConfigJSON is the config of a run as the harness writes it (schema
// version 2): snake_case, durations as strings, the indexer's effective
// settings.
const testConfigJSON = `{
  "scenario": "synthetic", "scenario_yaml": "name: synthetic\n",
  "workload": {"seed": 42, "vbuckets": 8, "docs": 1000, "value_size": {"dist": "fixed", "mean": 256},
    "indexes": [{"name": "by_city", "keys": ["city"]}]},
  "indexer": {"num_vbuckets": 8, "snapshot_interval": "200ms", "persist_interval": "5s", "max_rollbacks": 5,
    "st_mode": "local", "durability": "nosync", "queue_size": 262144, "flush_batch_size": 10000,
    "back_index_cache_bytes": 0, "lag_sample_every": 16, "scan_timeout": "2m0s"},
  "phases": [{"type": "load"}, {"type": "ingest", "duration": "10s"}],
  "engines": ["pebble"], "dirs": [], "cores": [2], "repeat": 1, "verify": true,
  "overrides": {"duration": "10s"}, "slowdown": 0, "topology": "inproc"
}`

func testConfig() map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(testConfigJSON), &m); err != nil {
		panic(err)
	}
	return m
}
