package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/engines"
	_ "github.com/idxbench/idxbench/engines/all"
	"github.com/idxbench/idxbench/results"
)

// smallScenario exercises every pipeline phase on a small bucket.
func smallScenario(vbuckets int, stMode string) []byte {
	return []byte(fmt.Sprintf(`
name: small
workload:
  docs: 3000
  vbuckets: %d
  seed: 7
indexer:
  snapshot_interval: 20ms
  persist_interval: 300ms
  st_mode: %s
phases:
  - type: load
  - type: ingest
    mutations: 6000
  - {type: scan, name: range, kind: range, duration: 300ms}
  - {type: scan, name: lookup, kind: lookup, duration: 200ms}
  - {type: scan, name: count, kind: count, duration: 200ms}
  - {type: scan, name: request-plus, kind: range, consistency: request_plus, under_ingest: true, rate: 2000, duration: 500ms}
  - type: persist
  - {type: ingest, name: timed-ingest, duration: 300ms, rate: 5000}
`, vbuckets, stMode))
}

func runSmallCell(t *testing.T, engine string, scenario []byte) results.Cell {
	t.Helper()
	job := CellJob{Engine: engine, DataDir: t.TempDir(), DirLabel: "d0", Cores: 2, Scenario: scenario, Verify: true, Quiet: true}
	var stderr strings.Builder
	cell, err := RunCell(context.Background(), job, &stderr)
	if err != nil {
		t.Fatalf("%s: %v\n%s", engine, err, stderr.String())
	}
	return cell
}

func TestPipelineVerifiesOnEveryEngine(t *testing.T) {
	for _, name := range []string{"memory", "pebble", "badger", "bbolt"} {
		t.Run(name, func(t *testing.T) {
			cell := runSmallCell(t, name, smallScenario(64, "local"))
			if len(cell.Phases) != 8 {
				t.Fatalf("got %d phases, want 8", len(cell.Phases))
			}
			for _, ph := range cell.Phases {
				if ph.Verify == results.VerifyFail {
					t.Errorf("phase %s: %s", ph.Name, ph.VerifyDetail)
				}
			}
			checkVerified(t, cell, "load", "ingest", "request-plus", "timed-ingest")
			ing := cell.Phase("ingest")
			if ing.Metrics["mutations"] != 6000 || ing.Metrics["mutations_per_sec"] <= 0 {
				t.Errorf("ingest metrics: %v", ing.Metrics)
			}
			if cell.Phase("range").Metrics["scans"] == 0 {
				t.Errorf("range phase ran no scan: %v", cell.Phase("range").Metrics)
			}
		})
	}
}

func checkVerified(t *testing.T, cell results.Cell, phases ...string) {
	t.Helper()
	for _, name := range phases {
		ph := cell.Phase(name)
		if ph == nil {
			t.Errorf("no phase %s", name)
			continue
		}
		if ph.Verify != results.VerifyPass {
			t.Errorf("phase %s: verify %s (%s)", name, ph.Verify, ph.VerifyDetail)
		}
	}
}

func TestPipelineVbucketsAndCoordinatorMode(t *testing.T) {
	for _, tc := range []struct {
		vbuckets int
		mode     string
	}{{1, "local"}, {1024, "local"}, {64, "coordinator"}} {
		t.Run(fmt.Sprintf("vbuckets=%d/%s", tc.vbuckets, tc.mode), func(t *testing.T) {
			cell := runSmallCell(t, "memory", smallScenario(tc.vbuckets, tc.mode))
			checkVerified(t, cell, "load", "ingest", "request-plus", "timed-ingest")
		})
	}
}

// lossyStore drops one Main-keyspace write in every 97: an engine that is
// fast because it loses data. Verification must catch it.
type lossyStore struct {
	engines.Store
	n int
}

func (s *lossyStore) Apply(b *engines.Batch, d engines.Durability) error {
	var kept engines.Batch
	for i := 0; i < b.Len(); i++ {
		op := b.Op(i)
		if op.Keyspace == engines.Main && op.Kind == engines.OpSet {
			s.n++
			if s.n%97 == 0 {
				continue
			}
		}
		if op.Kind == engines.OpSet {
			kept.Set(op.Keyspace, op.Key, op.Value)
		} else {
			kept.Delete(op.Keyspace, op.Key)
		}
	}
	return s.Store.Apply(&kept, d)
}

func init() {
	mem, err := engines.Lookup("memory")
	if err != nil {
		panic(err)
	}
	engines.Register(engines.Engine{
		Name: "test-lossy", Doc: "memory engine that drops writes (harness tests only)",
		Open: func(dir string, o engines.Options) (engines.Store, error) {
			s, err := mem.Open(dir, o)
			if err != nil {
				return nil, err
			}
			return &lossyStore{Store: s}, nil
		},
		Describe: mem.Describe,
	})
}

func TestVerificationCatchesALossyEngine(t *testing.T) {
	cell := runSmallCell(t, "test-lossy", []byte(`
name: lossy
workload: {docs: 2000, vbuckets: 16}
indexer: {snapshot_interval: 20ms}
phases:
  - type: load
`))
	ph := cell.Phase("load")
	if ph.Verify != results.VerifyFail {
		t.Fatalf("verification of a lossy engine: %s (%s)", ph.Verify, ph.VerifyDetail)
	}
	if !strings.Contains(ph.VerifyDetail, "missing") {
		t.Fatalf("detail does not name missing entries: %s", ph.VerifyDetail)
	}
}

func TestMain(m *testing.M) {
	// Node processes of procs-topology tests run the test binary itself.
	if os.Getenv(NodeEnv) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		if err := RunNodeFromStdin(ctx, os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// Child processes of matrix tests run the test binary itself.
	if os.Getenv(ChildEnv) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		if err := RunChild(ctx, os.Stdin, io.Discard); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
