package results

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/perf/benchfmt"
)

// TestBenchParses reads WriteBench's output back with benchfmt, the parser
// benchstat uses, and checks names, name keys, units and directions.
func TestBenchParses(t *testing.T) {
	run := synthRun(testRand(t), time.Unix(0, 0), []string{"pebble", "bbolt"}, 3, 0.1, 1)
	run.Cells[1].Dir = "d/1 x" // must not break the name's key=value parts
	var buf bytes.Buffer
	if err := WriteBench(&buf, run); err != nil {
		t.Fatal(err)
	}
	t.Logf("bench.txt:\n%s", buf.String())
	r := benchfmt.NewReader(bytes.NewReader(buf.Bytes()), "bench.txt")
	type key struct{ name, engine, dir string }
	count := map[string]int{}
	units := map[string]bool{}
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.SyntaxError:
			t.Errorf("syntax error: %v", rec)
		case *benchfmt.Result:
			base, parts := rec.Name.Parts()
			kv := map[string]string{}
			for _, p := range parts {
				k, v, ok := strings.Cut(strings.TrimPrefix(string(p), "/"), "=")
				if !ok {
					t.Errorf("%s: name part %q is not key=value", rec.Name, p)
				}
				kv[k] = v
			}
			if kv["engine"] == "" || kv["cores"] != "2" || kv["dir"] == "" {
				t.Errorf("%s: keys %v", rec.Name, kv)
			}
			if rec.GetConfig("goos") == "" || rec.GetConfig("cpu") != "Test CPU" || rec.GetConfig("pkg") == "" {
				t.Errorf("%s: missing config lines", rec.Name)
			}
			count[string(base)]++
			for _, v := range rec.Values {
				units[v.Unit] = true
			}
			if string(base) == "Ingest" {
				if v, ok := rec.Value("mutations_per_sec"); !ok || v <= 0 {
					t.Errorf("%s: mutations_per_sec = %v, %v", rec.Name, v, ok)
				}
			}
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if count["Ingest"] != 6 || count["Scan"] != 6 {
		t.Errorf("result lines per benchmark = %v, want 6 each (2 engines × 3 repeats)", count)
	}
	for u := range units {
		want := Better(u)
		if got := r.Units().GetBetter(u); got != want {
			t.Errorf("unit %s: benchfmt better = %d, want %d", u, got, want)
		}
	}
	if !units["scan_p99_ms"] || !units["mutations"] {
		t.Errorf("units = %v", units)
	}
}
