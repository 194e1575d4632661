package harness

import (
	"math"
	"testing"
)

func TestLinearFit(t *testing.T) {
	a, b, ok := linearFit([]float64{0, 1000, 2000, 3000}, []float64{5e6, 5e6 + 40e3, 5e6 + 80e3, 5e6 + 120e3})
	if !ok || math.Abs(a-5e6) > 1e-3 || math.Abs(b-40) > 1e-9 {
		t.Errorf("fit of an exact line: a=%g b=%g ok=%v, want 5e6, 40", a, b, ok)
	}
	if _, _, ok := linearFit([]float64{7, 7}, []float64{1, 2}); ok {
		t.Error("a fit over one x value succeeded")
	}
}

// TestCostMetrics checks the costs a planner sizes from on pebble, whose
// stores have a large fixed part (a preallocated WAL each): the load
// phase splits disk into a fixed part per store and a part per entry, the
// per-entry part is below the naive total over entries, and an ingest
// reports write amplification and the engine's own figures.
func TestCostMetrics(t *testing.T) {
	cell := runSmallCell(t, "pebble", smallScenario(64, "local"))
	load, ing := cell.Phase("load").Metrics, cell.Phase("ingest").Metrics
	t.Logf("load: %v", pick(load, "index_entries", "index_stores", "size_fit_samples", "disk_bytes_fixed_per_store",
		"disk_bytes_per_entry", "disk_bytes_per_entry_all_in", "engine_memory_bytes_fixed_per_store", "engine_memory_bytes_per_entry"))
	t.Logf("ingest: %v", pick(ing, "write_amp", "io_write_amp", "engine_batch_bytes", "engine_write_amp", "engine_l0_files",
		"cpu_us_per_mutation", "bytes_written_per_mutation"))
	if load["index_stores"] < 1 || load["disk_bytes_fixed_per_store"] <= 0 {
		t.Errorf("load: no fixed disk part per store: %v", load)
	}
	if per, all := load["disk_bytes_per_entry"], load["disk_bytes_per_entry_all_in"]; per >= all {
		t.Errorf("load: disk per entry %g not below the all-in %g, though pebble's stores have a fixed part", per, all)
	}
	if ing["write_amp"] <= 0 || ing["io_write_amp"] <= 0 || ing["engine_batch_bytes"] <= 0 {
		t.Errorf("ingest: no write amplification: %v", ing)
	}
	if _, ok := ing["engine_l0_files"]; !ok {
		t.Errorf("ingest: pebble's own figures missing: %v", ing)
	}
}

func pick(m map[string]float64, names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, n := range names {
		if v, ok := m[n]; ok {
			out[n] = v
		}
	}
	return out
}
