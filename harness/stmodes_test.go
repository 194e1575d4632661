package harness

import (
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

// shrunkSTScenario loads a built-in scenario and shrinks it for a test: a
// small bucket, short timed phases.
func shrunkSTScenario(t *testing.T, name string) []byte {
	t.Helper()
	sc, _, err := LoadScenario(name)
	if err != nil {
		t.Fatal(err)
	}
	sc.Workload = []byte("{docs: 3000, vbuckets: 32, seed: 5}")
	sc.Indexer.PersistInterval = Duration(300 * time.Millisecond)
	for i := range sc.Phases {
		ph := &sc.Phases[i]
		if ph.Duration != 0 {
			ph.Duration = Duration(400 * time.Millisecond)
		}
		if ph.Type == PhaseScan {
			// Closed loop, so a short phase on a loaded machine still
			// completes scans that waited for a 200 ms tick.
			ph.Duration, ph.Clients, ph.ScanRate = Duration(time.Second), 4, 0
		}
	}
	src, err := yaml.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// wantMetrics fails the test for each named metric a phase lacks or holds
// a negative value of.
func wantMetrics(t *testing.T, m map[string]float64, phase string, names ...string) {
	t.Helper()
	for _, n := range names {
		if v, ok := m[n]; !ok || v < 0 {
			t.Errorf("%s: %s = %v, %v; want a figure", phase, n, v, ok)
		}
	}
}

// TestSTOnDemandScenario runs the built-in st-on-demand scenario, shrunk:
// every scan is checked against the oracle, the reconfigure phases switch
// the setting, and the figures the README quotes are there.
func TestSTOnDemandScenario(t *testing.T) {
	for _, engine := range []string{"pebble"} {
		t.Run(engine, func(t *testing.T) {
			cell := runSmallCell(t, engine, shrunkSTScenario(t, "st-on-demand"))
			scans := []string{"request-plus-timer", "request-plus-on-demand", "request-plus-timer-again"}
			checkVerified(t, cell, append([]string{"load"}, scans...)...)
			for _, ph := range scans {
				m := cell.Phase(ph).Metrics
				wantMetrics(t, m, ph, "scan_p50_ms", "scan_p99_ms", "st_delay_p50_ms", "st_delay_p99_ms", "snapshots_per_sec", "cpu_us_per_background_mutation")
				if m["scans"] < 1 {
					t.Errorf("%s: no scans", ph)
				}
			}
			for ph, want := range map[string]float64{"on-demand-on": 1, "on-demand-off": 0} {
				if got := cell.Phase(ph).Metrics["st_on_demand"]; got != want {
					t.Errorf("%s: st_on_demand = %v, want %v", ph, got, want)
				}
			}
		})
	}
}

// TestSTModesScenario runs the built-in st-modes scenario, shrunk: local,
// coordinator and local again, each verified, with the request_plus wait,
// the ST delay and the ingest figures in each mode.
func TestSTModesScenario(t *testing.T) {
	cell := runSmallCell(t, "pebble", shrunkSTScenario(t, "st-modes"))
	checkVerified(t, cell, "load", "local-request-plus", "local-ingest", "coordinator-request-plus", "coordinator-ingest",
		"local-again-request-plus", "local-again-ingest")
	for _, mode := range []string{"local", "coordinator", "local-again"} {
		wantMetrics(t, cell.Phase(mode+"-request-plus").Metrics, mode, "scan_p50_ms", "scan_p99_ms", "st_delay_p50_ms", "st_delay_p99_ms", "snapshots_per_sec")
		wantMetrics(t, cell.Phase(mode+"-ingest").Metrics, mode, "mutations_per_sec", "cpu_us_per_mutation", "index_lag_p99_ms")
	}
	for ph, want := range map[string]float64{"to-coordinator": 1, "to-local": 0} {
		if got := cell.Phase(ph).Metrics["st_mode_coordinator"]; got != want {
			t.Errorf("%s: st_mode_coordinator = %v, want %v", ph, got, want)
		}
	}
}

// TestVerifyOnOpenScenario runs the built-in verify-on-open scenario,
// shrunk, on every disk engine: each reopen verifies at its level, no
// healthy slice is rebuilt, and the index is still right afterwards.
func TestVerifyOnOpenScenario(t *testing.T) {
	for _, engine := range []string{"pebble", "badger", "bbolt"} {
		t.Run(engine, func(t *testing.T) {
			cell := runSmallCell(t, engine, shrunkSTScenario(t, "verify-on-open"))
			checkVerified(t, cell, "load", "ingest-after")
			for ph, verified := range map[string]bool{"reopen-none": false, "reopen-quick": true, "reopen-full": true, "reopen-none-again": false} {
				m := cell.Phase(ph).Metrics
				wantMetrics(t, m, ph, "open_ms", "catch_up_ms", "slices_rebuilt")
				if m["slices_rebuilt"] != 0 {
					t.Errorf("%s: %v healthy slices rebuilt", ph, m["slices_rebuilt"])
				}
				if got := m["verify_slices"] > 0; got != verified {
					t.Errorf("%s: verify_slices = %v, want slices verified: %v", ph, m["verify_slices"], verified)
				}
			}
		})
	}
}
