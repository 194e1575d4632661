package results

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFitUSLRecoversTheModel(t *testing.T) {
	truth := USL{Lambda: 5000, Sigma: 0.08, Kappa: 0.002}
	for _, tc := range []struct {
		cores []float64
		fit   string
	}{
		{[]float64{1, 2, 4, 8, 16}, "usl"},
		{[]float64{1, 2}, "amdahl"},
		{[]float64{2, 4}, "amdahl"},
	} {
		var rates []float64
		m := truth
		if tc.fit == "amdahl" {
			m.Kappa = 0
		}
		for _, n := range tc.cores {
			rates = append(rates, m.Rate(n))
		}
		u, err := FitUSL(tc.cores, rates)
		if err != nil {
			t.Fatal(err)
		}
		if u.Fit != tc.fit || math.Abs(u.Lambda-m.Lambda)/m.Lambda > 0.01 || math.Abs(u.Sigma-m.Sigma) > 0.005 || math.Abs(u.Kappa-m.Kappa) > 0.0005 {
			t.Errorf("cores %v: fitted %+v, want %+v", tc.cores, u, m)
		}
	}
	u, err := FitUSL([]float64{2, 2}, []float64{9000, 11000})
	if err != nil || u.Fit != "linear" || u.Lambda != 5000 {
		t.Errorf("one core count: %+v %v, want linear λ=5000", u, err)
	}
	// Superlinear measurements do not give a negative σ.
	if u, _ := FitUSL([]float64{1, 2}, []float64{1000, 2500}); u.Sigma < 0 || u.Kappa < 0 {
		t.Errorf("superlinear: %+v", u)
	}
	if _, err := FitUSL([]float64{1}, []float64{0}); err == nil {
		t.Error("a zero rate was fitted")
	}
}

func TestUSLCoresAndPeak(t *testing.T) {
	u := USL{Lambda: 1000, Sigma: 0.1, Kappa: 0.01}
	n, ok := u.CoresFor(3000, 1024)
	if !ok || u.Rate(float64(n)) < 3000 || u.Rate(float64(n-1)) >= 3000 {
		t.Errorf("CoresFor(3000) = %d %v", n, ok)
	}
	pn, px := u.Peak()
	if _, ok := u.CoresFor(px*1.01, 1024); ok || math.Abs(pn-math.Sqrt(0.9/0.01)) > 1e-9 {
		t.Errorf("peak %g at %g; a rate above it was reachable", px, pn)
	}
}

func capacityCell(engine string, cores int, rate, slo float64) Cell {
	return Cell{Engine: engine, Cores: cores, Dir: "d0", Phases: []Phase{
		{Name: "load", Metrics: map[string]float64{"docs": 40000, "index_entries": 80000, "index_stores": 8,
			"disk_bytes_fixed_per_store": 1 << 20, "disk_bytes_per_entry": 100, "engine_memory_bytes_fixed_per_store": 1 << 20,
			"engine_memory_bytes_per_entry": 50}},
		{Name: "capacity", Capacity: &Capacity{SustainablePerSec: rate, LagP99Ms: slo, Stop: "converged"},
			Metrics: map[string]float64{"bytes_written_per_mutation": 500, "cpu_us_per_mutation": 100, "sustainable_index_lag_p99_ms": 300}},
	}}
}

func TestSize(t *testing.T) {
	run := &Run{Cells: []Cell{
		capacityCell("pebble", 1, 5000, 1000), capacityCell("pebble", 2, 9000, 1000),
		capacityCell("pebble", 2, 20000, 5000), // a looser SLO: left out
		capacityCell("bbolt", 1, 1000, 1000),
	}}
	req := SizingRequest{TargetRate: 20000, Docs: 1_000_000, LagP99: time.Second}
	as, err := Size([]*Run{run}, []string{"r1"}, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 || as[1].Engine != "pebble" {
		t.Fatalf("answers: %+v", as)
	}
	p := as[1]
	if len(p.Points) != 2 || !p.Reachable || p.Cores <= 2 || p.Model.Rate(float64(p.Cores)) < 20000 {
		t.Errorf("pebble: %d points, cores %d reachable %v, model %+v", len(p.Points), p.Cores, p.Reachable, p.Model)
	}
	all := strings.Join(p.Warnings, "\n")
	for _, want := range []string{"looser than", "EXTRAPOLATED: " + strconv.Itoa(p.Cores) + " cores", "EXTRAPOLATED: 1000000 documents is 25.0×"} {
		if !strings.Contains(all, want) {
			t.Errorf("pebble warnings lack %q:\n%s", want, all)
		}
	}
	// 8 stores × 1 MiB + 2 entries per document × 1 M × 100 B.
	if want := 8.0*(1<<20) + 2e6*100; math.Abs(p.DiskBytes-want) > 1 || p.WriteBytesPerSec != 500*20000 {
		t.Errorf("disk %g (want %g), write %g B/s", p.DiskBytes, want, p.WriteBytesPerSec)
	}
	var out strings.Builder
	WriteSizing(&out, req, as)
	for _, want := range []string{"engine bbolt", "engine pebble", "meas", "model: X(N)", "cores: ", "write bandwidth", "warning: EXTRAPOLATED"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("sizing text lacks %q:\n%s", want, out.String())
		}
	}
	// A superlinear pair of measurements fits no scaling law: warned.
	noisy := &Run{Cells: []Cell{capacityCell("pebble", 1, 60, 1000), capacityCell("pebble", 2, 1500, 1000)}}
	as, err = Size([]*Run{noisy}, []string{"noisy"}, req)
	if err != nil || !strings.Contains(strings.Join(as[0].Warnings, "\n"), "misses the measured rates") {
		t.Errorf("superlinear points: %v, warnings %q", err, as[0].Warnings)
	}
	if _, err := Size([]*Run{{}}, []string{"empty"}, req); err == nil {
		t.Error("sizing without capacity results succeeded")
	}
}

func TestCapacityReportSection(t *testing.T) {
	run := &Run{Cells: []Cell{capacityCell("pebble", 1, 5000, 1000), capacityCell("pebble", 2, 9000, 1000)}}
	for i := range run.Cells {
		run.Cells[i].Phases[1].Steps = []Step{{TargetPerSec: 1000, LagP99Ms: 50, Pass: true}, {TargetPerSec: 8000, LagP99Ms: 2000}}
	}
	sec := capacitySection(run, map[string]string{"pebble": "#000"})
	if len(sec.Charts) != 2 {
		t.Fatalf("capacity section has %d charts, want the knee and the scaling: %+v", len(sec.Charts), sec)
	}
	if sec := capacitySection(&Run{Cells: []Cell{{Engine: "x"}}}, nil); len(sec.Charts) != 0 {
		t.Errorf("a run without capacity phases got charts")
	}
}
