package results

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestBetter(t *testing.T) {
	for _, tc := range []struct {
		metric string
		want   int
	}{
		{"mutations_per_sec", HigherIsBetter},
		{"mutations_per_cpu_sec", HigherIsBetter},
		{"raw_mutations_per_cpu_sec", HigherIsBetter},
		{"scan_warmup_ms", Neutral},
		{"driver_target_mutations_per_sec", Neutral},
		{"scans_per_sec", HigherIsBetter},
		{"scan_mismatches", LowerIsBetter},
		{"pipeline_to_raw_ratio", HigherIsBetter},
		{"cpu_us_per_mutation_index_node", LowerIsBetter}, // a node's share goes the total's way
		{"peak_rss_bytes_kv_node", LowerIsBetter},
		{"cpu_us_per_mutation", LowerIsBetter},
		{"scan_p50_ms", LowerIsBetter},
		{"scan_p99_ms", LowerIsBetter},
		{"persist_ms", LowerIsBetter},
		{"rollback_ms", LowerIsBetter},
		{"recovery_ms", LowerIsBetter},
		{"index_lag_p99_ms", LowerIsBetter},
		{"write_amp", LowerIsBetter},
		{"space_amp", LowerIsBetter},
		{"disk_bytes", LowerIsBetter},
		{"cpu_seconds", LowerIsBetter},
		{"peak_rss_bytes", LowerIsBetter},
		{"bytes_written", LowerIsBetter},
		{"bytes_written_per_mutation", LowerIsBetter},
		{"cpu_seconds_per_million_mutations", LowerIsBetter},
		{"bytes_written_per_entry", LowerIsBetter},
		{"engine_bytes_written_per_entry", LowerIsBetter},
		{"wall_seconds", LowerIsBetter},
		{"entries_per_sec", HigherIsBetter},
		{"entries", Neutral},
		{"mutations", Neutral},
		{"free_bytes", Neutral},
		{"snapshots_total", Neutral},
		{"something_unknown", Neutral},
	} {
		if got := Better(tc.metric); got != tc.want {
			t.Errorf("Better(%q) = %d, want %d", tc.metric, got, tc.want)
		}
	}
}

func TestCamelCase(t *testing.T) {
	for in, want := range map[string]string{
		"ingest": "Ingest", "initial_build": "InitialBuild", "scan-any": "ScanAny",
		"kv rollback": "KvRollback", "restart2": "Restart2", "": "Phase", "__": "Phase",
	} {
		if got := CamelCase(in); got != want {
			t.Errorf("CamelCase(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSchemaNames pins the JSON names scripts rely on (DESIGN.md,
// "Measurements and outputs").
func TestSchemaNames(t *testing.T) {
	run := synthRun(testRand(t), time.Unix(0, 0), []string{"a"}, 1, 0, 1)
	run.Cells[0].Error = "x"
	run.Cells[0].Phases[0].VerifyDetail = "y"
	data, err := json.Marshal(run)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	json.Unmarshal(data, &top)
	need := func(what string, m map[string]json.RawMessage, keys ...string) {
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s lacks %q; has %v", what, k, sortedKeys(m))
			}
		}
	}
	need("run", top, "schema", "seed", "config", "machine", "cells", "partial", "started", "finished", "scenario")
	var machine map[string]json.RawMessage
	json.Unmarshal(top["machine"], &machine)
	need("machine", machine, "cpu_model", "cores", "memory_bytes", "kernel", "go_version", "git_revision", "data_dirs")
	var cells []map[string]json.RawMessage
	json.Unmarshal(top["cells"], &cells)
	need("cell", cells[0], "engine", "dir", "cores", "repeat", "engine_options", "durability", "error", "phases")
	var phases []map[string]json.RawMessage
	json.Unmarshal(cells[0]["phases"], &phases)
	need("phase", phases[0], "name", "verify", "verify_detail", "metrics", "series")
	var series []map[string]json.RawMessage
	json.Unmarshal(phases[0]["series"], &series)
	need("tick", series[0], "elapsed", "op", "ops_per_sec", "p50_ms", "p95_ms", "p99_ms", "max_ms", "errors", "gauges")
}

func sortedKeys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestWriteDirReadRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	run := synthRun(testRand(t), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), []string{"pebble", "bbolt"}, 2, 0.1, 1)
	run.Partial = true
	if err := WriteDir(dir, run); err != nil {
		t.Fatal(err)
	}
	// A second call (the harness writes after every cell) replaces the files.
	run.Partial = false
	run.Cells[0].Phases[0].Metrics["write_amp"] = math.NaN()
	if err := WriteDir(dir, run); err != nil {
		t.Fatal(err)
	}
	if _, ok := run.Cells[0].Phases[0].Metrics["write_amp"]; !ok {
		t.Fatal("WriteDir modified the caller's run")
	}
	for _, f := range []string{ResultsFile, BenchFile, ReportFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v (size %v)", f, err, fi)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
	got, err := ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Partial {
		t.Error("Partial still set after the final write")
	}
	if _, ok := got.Cells[0].Phases[0].Metrics["write_amp"]; ok {
		t.Error("NaN metric was written")
	}
	if len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], "write_amp") {
		t.Errorf("warnings = %q, want one naming write_amp", got.Warnings)
	}
	delete(run.Cells[0].Phases[0].Metrics, "write_amp")
	got.Warnings = nil
	if !reflect.DeepEqual(got.Cells, run.Cells) {
		t.Errorf("cells differ after round trip")
	}
	if !got.Started.Equal(run.Started) || got.Seed != run.Seed || got.Machine.CPUModel != run.Machine.CPUModel {
		t.Errorf("run header differs: %+v", got)
	}
}

func TestReadRunErrors(t *testing.T) {
	tmp := t.TempDir()
	write := func(name, body string) string {
		d := filepath.Join(tmp, name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, ResultsFile), []byte(body), 0o644)
		return d
	}
	empty := filepath.Join(tmp, "empty")
	os.MkdirAll(empty, 0o755)
	for _, tc := range []struct {
		path, want string
	}{
		{filepath.Join(tmp, "nope"), "missing results.json"},
		{empty, "missing results.json"},
		{write("corrupt", `{"schema": 1, "cells": [`), "corrupt results file"},
		{write("notjson", `hello`), "corrupt results file"},
		{write("noschema", `{"cells": []}`), `no "schema" field`},
		{write("future", `{"schema": 99}`), "schema 99 is not supported"},
		{write("badtype", `{"schema": 1, "seed": "x"}`), "corrupt results file"},
	} {
		_, err := ReadRun(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("ReadRun(%s) = %v, want an error naming the path and %q", tc.path, err, tc.want)
		}
	}
}

func TestReadHistory(t *testing.T) {
	tmp := t.TempDir()
	rng := testRand(t)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// Written out of order; ReadHistory sorts by start time.
	for i, day := range []int{3, 1, 2} {
		r := synthRun(rng, base.AddDate(0, 0, day), []string{"pebble"}, 1, 0.05, 1)
		r.Seed = uint64(day)
		if err := WriteDir(filepath.Join(tmp, "run"+string(rune('a'+i))), r); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(tmp, "not-a-run"), 0o755)
	// A history of symlinks to results directories reads the same.
	links := t.TempDir()
	for _, n := range []string{"runa", "runb", "runc"} {
		if err := os.Symlink(filepath.Join(tmp, n), filepath.Join(links, n)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := ReadHistory(links); err != nil || len(got) != 3 {
		t.Errorf("history of symlinks: %d runs, %v", len(got), err)
	}
	runs, err := ReadHistory(tmp)
	if err != nil {
		t.Fatal(err)
	}
	var seeds []uint64
	for _, r := range runs {
		seeds = append(seeds, r.Seed)
	}
	if !reflect.DeepEqual(seeds, []uint64{1, 2, 3}) {
		t.Errorf("history order by seed = %v, want [1 2 3]", seeds)
	}
	one, err := ReadHistory(filepath.Join(tmp, "runa"))
	if err != nil || len(one) != 1 || one[0].Seed != 3 {
		t.Errorf("ReadHistory(one run) = %v, %v", one, err)
	}
	if _, err := ReadHistory(filepath.Join(tmp, "not-a-run")); err == nil || !strings.Contains(err.Error(), "no results") {
		t.Errorf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(tmp, "runb", ResultsFile), []byte("{"), 0o644)
	if _, err := ReadHistory(tmp); err == nil || !strings.Contains(err.Error(), "runb") {
		t.Errorf("corrupt member: %v, want error naming runb", err)
	}
}

func TestTicks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, TicksFile)
	w, err := OpenTickWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	key := CellKey{Engine: "pebble", Dir: "d0", Cores: 2, Repeat: 0}
	for i := 1; i <= 3; i++ {
		if err := w.Write(TickRecord{CellKey: key, Phase: "ingest", Tick: Tick{Elapsed: float64(i), Op: "batch", OpsPerSec: 100, P99Ms: math.Inf(1)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn final line, as a crash mid-write leaves, is skipped.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"engine":"pebble","pha`)
	f.Close()
	recs, err := ReadTicks(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[2].Elapsed != 3 || recs[0].CellKey != key || recs[0].P99Ms != 0 {
		t.Fatalf("ticks = %+v", recs)
	}

	run := &Run{Schema: 1, Cells: []Cell{{Engine: "pebble", Dir: "d0", Cores: 2, Phases: []Phase{{Name: "ingest"}, {Name: "scan"}}}}}
	got := AttachTicks(run, recs)
	if len(got.Cells[0].Phases[0].Series) != 3 || len(got.Cells[0].Phases[1].Series) != 0 {
		t.Errorf("attached: %+v", got.Cells[0].Phases)
	}
	if len(run.Cells[0].Phases[0].Series) != 0 {
		t.Error("AttachTicks modified its input")
	}

	os.WriteFile(path, []byte("{\"op\":1}\n{}\n"), 0o644)
	if _, err := ReadTicks(path); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("bad first line: %v", err)
	}
}

func TestCollectMachine(t *testing.T) {
	dir := t.TempDir()
	m := CollectMachine([]string{dir, filepath.Join(dir, "not", "yet")})
	if m.Cores < 1 || m.GoVersion == "" || m.Kernel == "" {
		t.Errorf("machine = %+v", m)
	}
	if len(m.DataDirs) != 2 {
		t.Fatalf("data dirs = %+v", m.DataDirs)
	}
	for _, d := range m.DataDirs {
		if _, err := os.Stat("/proc/self/mountinfo"); err == nil && d.Filesystem == "" {
			t.Errorf("%s: no filesystem found", d.Path)
		}
		if d.FreeBytes == 0 {
			t.Errorf("%s: no free bytes", d.Path)
		}
	}
	if _, err := os.Stat("/proc/meminfo"); err == nil && m.MemoryBytes == 0 {
		t.Error("memory not read")
	}
	t.Logf("%+v", m)
}

func TestWriteDirUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	run := &Run{Schema: SchemaVersion}
	err := WriteDir(filepath.Join(file, "out"), run)
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("WriteDir under a file: %v, want an error naming %s", err, file)
	}
	if err := WriteDir(t.TempDir(), nil); err == nil {
		t.Error("nil run accepted")
	}
}

func TestGitRevisionIn(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-c", "user.email=t@example.com", "-c", "user.name=t"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	os.WriteFile(filepath.Join(dir, "f"), []byte("1"), 0o644)
	git("add", "f")
	git("commit", "-q", "-m", "x")
	head := git("rev-parse", "HEAD")
	if got := gitRevisionIn(dir); got != head {
		t.Errorf("clean tree: %q, want %q", got, head)
	}
	os.WriteFile(filepath.Join(dir, "f"), []byte("2"), 0o644)
	if got := gitRevisionIn(dir); got != head+"-dirty" {
		t.Errorf("modified tree: %q, want %q", got, head+"-dirty")
	}
	if got := gitRevisionIn(t.TempDir()); got != "" {
		t.Errorf("not a repository: %q", got)
	}
}
