package measure

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: pick one and print it)")

func testRand(t *testing.T) *rand.Rand {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed: %d (rerun: go test ./harness/measure -run '^%s$' -seed %d)", seed, t.Name(), seed)
	return rand.New(rand.NewPCG(seed, 1))
}

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func within(got, want time.Duration, rel float64) bool {
	return math.Abs(float64(got-want)) <= rel*float64(want)
}

func TestTickWindowsAndCumulative(t *testing.T) {
	reg := NewRegistry(start, Options{})
	// Three workers record 1..1000 ms between them, shuffled.
	rng := testRand(t)
	vals := rng.Perm(1000)
	for i, v := range vals {
		reg.Recorder(i%3).Record("scan", time.Duration(v+1)*time.Millisecond)
	}
	reg.Recorder(0).RecordError("scan")
	reg.Recorder(1).Record("batch", 5*time.Millisecond)

	tk := reg.Tick(start.Add(2 * time.Second))
	if tk.Elapsed != 2*time.Second || len(tk.Ops) != 2 || tk.Ops[0].Op != "batch" || tk.Ops[1].Op != "scan" {
		t.Fatalf("tick = %+v", tk)
	}
	s := tk.Ops[1]
	if s.Count != 1000 || s.Errors != 1 || s.CumCount != 1000 || s.OpsPerSecInst != 500 || s.OpsPerSecCum != 500 {
		t.Errorf("scan counts: %+v", s)
	}
	for _, q := range []struct {
		name      string
		got, want time.Duration
	}{{"p50", s.P50, 500 * time.Millisecond}, {"p95", s.P95, 950 * time.Millisecond}, {"p99", s.P99, 990 * time.Millisecond}, {"max", s.Max, 1000 * time.Millisecond}} {
		if !within(q.got, q.want, 0.01) {
			t.Errorf("%s = %v, want %v ±1%%", q.name, q.got, q.want)
		}
	}

	// An empty second window: instantaneous zero, cumulative kept.
	tk = reg.Tick(start.Add(4 * time.Second))
	s = tk.Ops[1]
	if s.Count != 0 || s.OpsPerSecInst != 0 || s.OpsPerSecCum != 250 || s.P99 != 0 || s.CumCount != 1000 || s.CumErrs != 1 {
		t.Errorf("second tick: %+v", s)
	}
	if !within(s.CumP99, 990*time.Millisecond, 0.01) {
		t.Errorf("cumulative p99 = %v", s.CumP99)
	}
	// A third window sees only what was recorded after the second tick.
	reg.Recorder(2).Record("scan", 7*time.Millisecond)
	s = reg.Tick(start.Add(5 * time.Second)).Ops[1]
	if s.Count != 1 || !within(s.Max, 7*time.Millisecond, 0.01) {
		t.Errorf("third tick: %+v", s)
	}
	if h := reg.Histogram("scan"); h == nil || h.TotalCount() != 1001 {
		t.Errorf("cumulative histogram: %v", h)
	}
}

func TestRecordEdges(t *testing.T) {
	reg := NewRegistry(start, Options{MaxLatency: time.Second})
	r := reg.Recorder(0)
	r.Record("x", time.Hour)    // clamped to MaxLatency
	r.Record("x", -time.Second) // clamped to the smallest value
	r.RecordIntended("y", start, start.Add(100*time.Millisecond))
	tk := reg.Tick(start.Add(time.Second))
	if x := tk.Ops[0]; x.Count != 2 || !within(x.Max, time.Second, 0.01) {
		t.Errorf("x = %+v", x)
	}
	if y := tk.Ops[1]; !within(y.Max, 100*time.Millisecond, 0.01) {
		t.Errorf("intended start not used: %+v", y)
	}
	if reg.Recorder(0) != r {
		t.Error("Recorder(0) returned a new recorder")
	}
}

func TestDisabled(t *testing.T) {
	reg := NewRegistry(start, Options{Disabled: true})
	for i := 0; i < 10; i++ {
		reg.Recorder(0).Record("x", time.Millisecond)
	}
	s := reg.Tick(start.Add(time.Second)).Ops[0]
	if s.Count != 10 || s.P50 != 0 || s.Max != 0 {
		t.Errorf("disabled: %+v", s)
	}
}

// TestConcurrentTicks records from several goroutines while ticking; no
// operation may be lost or counted twice (run with -race).
func TestConcurrentTicks(t *testing.T) {
	reg := NewRegistry(start, Options{})
	const workers, per = 4, 20000
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := reg.Recorder(w)
			for i := 0; i < per; i++ {
				op := "a"
				if i%3 == 0 {
					op = "b"
				}
				rec.Record(op, time.Duration(i%100+1)*time.Microsecond)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	now := start
	var counted int64
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		now = now.Add(time.Second)
		for _, s := range reg.Tick(now).Ops {
			counted += s.Count
		}
	}
	if counted != workers*per {
		t.Errorf("counted %d operations over the ticks, recorded %d", counted, workers*per)
	}
	var hist int64
	for _, op := range []string{"a", "b"} {
		hist += reg.Histogram(op).TotalCount()
	}
	if hist != workers*per {
		t.Errorf("histograms hold %d values, recorded %d", hist, workers*per)
	}
}

func TestTickPrinter(t *testing.T) {
	var buf bytes.Buffer
	p := NewTickPrinter(&buf, "mutation_queue_size", "docs_pending")
	reg := NewRegistry(start, Options{})
	if err := p.Print(reg.Tick(start.Add(time.Second)), nil); err != nil {
		t.Fatal(err)
	}
	reg.Recorder(0).Record("batch", 1500*time.Microsecond)
	reg.Recorder(0).Record("scan_any", 250*time.Microsecond)
	p.Print(reg.Tick(start.Add(2*time.Second)), []Gauge{{"mutation_queue_size", 12}, {"docs_pending", 3.5}})
	for i := 0; i < 25; i++ {
		p.Print(reg.Tick(start.Add(time.Duration(3+i)*time.Second)), nil)
	}
	out := buf.String()
	t.Logf("\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	header := p.Header()
	if !strings.HasPrefix(header, "_elapsed___errors__ops/sec(inst)___ops/sec(cum)__p50(ms)__p95(ms)__p99(ms)_pMax(ms)") ||
		!strings.HasSuffix(header, "__mutation_queue_size__docs_pending op") {
		t.Errorf("header = %q", header)
	}
	headers := 0
	for _, l := range lines {
		if l == header {
			headers++
			continue
		}
		f := strings.Fields(l)
		op := f[len(f)-1]
		if len(l)-len(op) != len(header)-len("op") {
			t.Errorf("line not aligned with the header:\n%s\n%s", header, l)
		}
	}
	if headers != 3 { // 53 data lines: header every 20
		t.Errorf("%d header lines, want 3", headers)
	}
	if !strings.Contains(lines[2], "    1.50 ") || !strings.Contains(lines[2], " 12 ") || !strings.Contains(lines[2], " 3.50 batch") {
		t.Errorf("batch line = %q", lines[2])
	}
}

func TestResources(t *testing.T) {
	span := Begin()
	// Burn some CPU, touch 64 MiB, write and sync 1 MiB.
	h := sha256.New()
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) {
		h.Write(make([]byte, 4096))
	}
	big := make([]byte, 64<<20)
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "x"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 1<<20))
	f.Sync()
	f.Close()
	r := span.End()
	t.Logf("%+v", r)
	if r.CPUSeconds < 0.05 || r.Wall < 100*time.Millisecond {
		t.Errorf("cpu %.3fs wall %v: want ≥ 0.05 s of CPU", r.CPUSeconds, r.Wall)
	}
	if r.PeakRSSBytes < 64<<20 {
		t.Errorf("peak RSS %d < 64 MiB touched", r.PeakRSSBytes)
	}
	if _, err := os.Stat("/proc/self/io"); err == nil && r.WriteCallBytes < 1<<20 {
		t.Errorf("write calls %d bytes < 1 MiB written", r.WriteCallBytes)
	}
	big[0] = 2 // keep big alive until after End
}

// TestDrainAdd: windows drained from one recorder and added to another
// give the registry the same counts and percentiles as recording there.
func TestDrainAdd(t *testing.T) {
	src := NewRegistry(time.Unix(0, 0), Options{}).Recorder(0)
	direct := NewRegistry(time.Unix(0, 0), Options{})
	viaDrain := NewRegistry(time.Unix(0, 0), Options{})
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i) * time.Millisecond
		src.Record("flush", d)
		direct.Recorder(0).Record("flush", d)
	}
	src.RecordError("flush")
	direct.Recorder(0).RecordError("flush")
	ws := src.Drain()
	if again := src.Drain(); len(again) != 0 {
		t.Fatalf("a second drain returned %v", again)
	}
	if got := ws["flush"].Max(); got < 990*time.Millisecond || got > 1010*time.Millisecond {
		t.Errorf("window max %s, want about 1s", got)
	}
	viaDrain.Recorder(3).Add(ws)
	a, b := direct.Tick(time.Unix(1, 0)), viaDrain.Tick(time.Unix(1, 0))
	if len(a.Ops) != 1 || len(b.Ops) != 1 {
		t.Fatalf("ops: %v vs %v", a.Ops, b.Ops)
	}
	if a.Ops[0] != b.Ops[0] {
		t.Errorf("drained %+v, direct %+v", b.Ops[0], a.Ops[0])
	}
}

// TestTickPrinterPhaseAndPeriod: lines name their phase; in a period
// (catch-up) idle operations give way to one line naming it; the total
// lines carry the whole phase's count and percentiles.
func TestTickPrinterPhaseAndPeriod(t *testing.T) {
	var buf bytes.Buffer
	p := NewTickPrinter(&buf, "queue")
	reg := NewRegistry(start, Options{})
	reg.Recorder(0).Record("kv_mutation", time.Millisecond)
	reg.Recorder(0).Record("flush", 3*time.Millisecond)
	p.PrintPhase("ingest", "", reg.Tick(start.Add(time.Second)), []Gauge{{"queue", 7}})
	reg.Recorder(0).Record("flush", 5*time.Millisecond)
	p.PrintPhase("ingest", "catch-up", reg.Tick(start.Add(2*time.Second)), nil)
	p.PrintPhase("ingest", "catch-up", reg.Tick(start.Add(3*time.Second)), []Gauge{{"queue", 0}})
	p.Total("ingest", reg.Tick(start.Add(3*time.Second)))
	out := buf.String()
	t.Logf("\n%s", out)
	for _, want := range []string{
		" 7 kv_mutation  [ingest]\n",
		" flush  [ingest: catch-up]\n",
		" 0 -  [ingest: catch-up]\n",
		"  kv_mutation  [ingest total]\n",
		"              2 ", // flush's total count
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "kv_mutation  [ingest: catch-up]") {
		t.Error("an idle operation printed a row during the catch-up")
	}
}
