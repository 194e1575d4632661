package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idxbench/idxbench/results"
)

const tinyScenario = `
name: tiny
workload: {docs: 500, vbuckets: 8}
indexer: {snapshot_interval: 20ms}
phases:
  - type: load
  - {type: ingest, mutations: 500}
`

func TestMatrixRunsEveryCellInAChildProcess(t *testing.T) {
	if AvailableCores() < 2 {
		t.Skip("needs 2 cores to run a 1,2 core matrix")
	}
	root := t.TempDir()
	scen := filepath.Join(root, "tiny.yaml")
	os.WriteFile(scen, []byte(tinyScenario), 0o644)
	diskA, diskB := filepath.Join(root, "a"), filepath.Join(root, "b")
	os.Mkdir(diskB, 0o755) // empty: claimed but not created
	out := filepath.Join(root, "out")
	p, err := Prepare(RunConfig{
		Engines: []string{"memory"}, Scenario: scen, Dirs: []string{diskA, diskB}, Cores: []int{1, 2},
		Out: out, Verify: true, Executable: os.Args[0], Quiet: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	run, err := p.Run(context.Background(), &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if len(run.Cells) != 4 {
		t.Fatalf("%d cells, want 4", len(run.Cells))
	}
	seen := map[string]bool{}
	for _, c := range run.Cells {
		if c.Error != "" {
			t.Errorf("cell %+v: %s", c.Key(), c.Error)
		}
		seen[c.Dir+"/"+string(rune('0'+c.Cores))] = true
	}
	for _, k := range []string{"d0/1", "d0/2", "d1/1", "d1/2"} {
		if !seen[k] {
			t.Errorf("no cell %s in %v", k, seen)
		}
	}
	back, err := results.ReadRun(out)
	if err != nil || back.Partial || len(back.Cells) != 4 {
		t.Fatalf("results.json: %v partial=%v", err, back != nil && back.Partial)
	}
	if data, err := os.ReadFile(filepath.Join(out, results.ResultsFile)); err != nil {
		t.Error(err)
	} else if err := results.Validate(data); err != nil {
		t.Error(err)
	}
	for _, c := range back.Cells {
		if len(c.CPUs) != c.Cores {
			t.Errorf("cell %s pinned to CPUs %v", c.Key(), c.CPUs)
		}
	}
	if !strings.Contains(stdout.String(), "phase ingest") {
		t.Errorf("no summary table:\n%s", stdout.String())
	}
	// The dir idxbench created is gone; the one it was given stays, empty
	// of cell data.
	if _, err := os.Stat(diskA); !os.IsNotExist(err) {
		t.Errorf("created data dir %s was left behind", diskA)
	}
	if ents, _ := os.ReadDir(diskB); len(ents) != 1 || ents[0].Name() != ownerMarker {
		t.Errorf("given data dir holds %v after the run", ents)
	}
}

func TestPrepareRejectsBadInput(t *testing.T) {
	root := t.TempDir()
	foreign := filepath.Join(root, "foreign")
	os.Mkdir(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, "keep"), []byte("x"), 0o644)
	file := filepath.Join(root, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	badYAML := filepath.Join(root, "bad.yaml")
	os.WriteFile(badYAML, []byte("phases: [ {type: load, colour: red} ]"), 0o644)
	badRange := filepath.Join(root, "range.yaml")
	os.WriteFile(badRange, []byte("workload: {vbuckets: 5000}\nphases: [{type: load}]"), 0o644)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	scenario := func(name, body string) string {
		path := filepath.Join(root, name+".yaml")
		os.WriteFile(path, []byte(body), 0o644)
		return path
	}
	const twoIndexes = "workload:\n  indexes:\n    - {name: by_city, keys: [city]}\n    - {name: later, keys: [age], deferred: true}\n    - {name: pk, primary: true}\n"
	cases := []struct {
		name string
		cfg  RunConfig
		want string
	}{
		{"scan of an unknown index", RunConfig{Scenario: scenario("scan-unknown", twoIndexes+"phases: [{type: load}, {type: scan, index: nope, duration: 1s}]")}, `scans index "nope"`},
		{"scan of a deferred index", RunConfig{Scenario: scenario("scan-deferred", twoIndexes+"phases: [{type: load}, {type: scan, index: later, duration: 1s}]")}, "deferred and not built"},
		{"scan with no secondary index", RunConfig{Scenario: scenario("scan-primary", "workload:\n  indexes: [{name: pk, primary: true}]\nphases: [{type: load}, {type: scan, duration: 1s}]")}, "no secondary index"},
		{"drop of an unknown index", RunConfig{Scenario: scenario("drop-unknown", twoIndexes+"phases: [{type: load}, {type: drop-index, index: nope}]")}, `drops index "nope"`},
		{"drop twice", RunConfig{Scenario: scenario("drop-twice", twoIndexes+"phases: [{type: load}, {type: drop-index, index: by_city}, {type: drop-index, name: again, index: by_city}]")}, `drops index "by_city"`},
		{"build of a built index", RunConfig{Scenario: scenario("build-built", twoIndexes+"phases: [{type: load}, {type: build-index, indexes: [by_city]}]")}, `builds index "by_city"`},
		{"build with none left", RunConfig{Scenario: scenario("build-none", twoIndexes+"phases: [{type: load}, {type: build-index}, {type: build-index, name: again}]")}, "no deferred index is left"},
		{"rollback with no index", RunConfig{Scenario: scenario("rollback-none", "workload:\n  indexes: [{name: later, keys: [age], deferred: true}]\nphases: [{type: load}, {type: rollback}]")}, "a rollback needs an index"},
		{"metrics port in use", RunConfig{MetricsAddr: busy.Addr().String()}, "address already in use"},
		{"unknown engine", RunConfig{Engines: []string{"rocks"}}, `unknown engine "rocks"`},
		{"unknown scenario", RunConfig{Scenario: "nope"}, `unknown scenario "nope"`},
		{"unknown field", RunConfig{Scenario: badYAML}, "colour"},
		{"out of range", RunConfig{Scenario: badRange}, "vbuckets"},
		{"missing file", RunConfig{Scenario: filepath.Join(root, "none.yaml")}, "none.yaml"},
		{"cores", RunConfig{Cores: []int{64}}, "--cores 64 out of range"},
		{"dir is a file", RunConfig{Dirs: []string{file}}, "is a file"},
		{"docs override", RunConfig{Overrides: Overrides{Docs: ptr(-1)}}, "docs"},
		{"output dir foreign", RunConfig{Out: foreign}, "not empty"},
		{"data dir foreign", RunConfig{Dirs: []string{foreign}}, "not empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Prepare(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
	// Run refuses a foreign data dir too (it may have been filled since
	// Prepare), before creating anything, and leaves it alone.
	p, err := Prepare(RunConfig{Engines: []string{"memory"}, Scenario: "ingest", Dirs: []string{filepath.Join(root, "later")},
		Out: filepath.Join(root, "out"), Executable: os.Args[0], Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	os.Rename(foreign, filepath.Join(root, "later"))
	_, err = p.Run(context.Background(), &strings.Builder{}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "not empty") || errors.Is(err, ErrVerification) {
		t.Fatalf("foreign data dir: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "later", "keep")); string(b) != "x" {
		t.Fatal("foreign data dir was touched")
	}
	if _, err := os.Stat(filepath.Join(root, "out")); !os.IsNotExist(err) {
		t.Fatal("output dir was created for a run refused at the start")
	}
}

func ptr[T any](v T) *T { return &v }

func TestInterruptLeavesPartialResults(t *testing.T) {
	root := t.TempDir()
	scen := filepath.Join(root, "long.yaml")
	os.WriteFile(scen, []byte(`
workload: {docs: 500, vbuckets: 8}
indexer: {snapshot_interval: 20ms}
phases:
  - type: load
  - {type: ingest, duration: 1m, rate: 1000}
`), 0o644)
	out := filepath.Join(root, "out")
	p, err := Prepare(RunConfig{Engines: []string{"memory"}, Scenario: scen, Repeat: 3, Out: out,
		Executable: os.Args[0], Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(2*time.Second, cancel)
	_, err = p.Run(ctx, &strings.Builder{}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("interrupted run: %v", err)
	}
	r, err := results.ReadRun(out)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Partial || len(r.Cells) != 1 {
		t.Fatalf("partial=%v with %d cells, want a partial run with the one interrupted cell", r.Partial, len(r.Cells))
	}
	if c := r.Cells[0]; c.Error == "" || len(c.Phases) == 0 || c.Phases[0].Verify != results.VerifySkipped {
		t.Fatalf("interrupted cell: error %q, phases %+v", c.Error, c.Phases)
	}
}

// TestCellFailedIsAVerificationFailure: a run whose cell met a fault says
// "cell failed", and still exits like a failed verification (1).
func TestCellFailedIsAVerificationFailure(t *testing.T) {
	err := fmt.Errorf("%w: pebble/d0/c1/r0: disk full", ErrCellFailed)
	if !errors.Is(err, ErrVerification) || !errors.Is(err, ErrCellFailed) || !strings.HasPrefix(err.Error(), "cell failed: ") {
		t.Fatalf("%v: is verification %v, is cell failed %v", err, errors.Is(err, ErrVerification), errors.Is(err, ErrCellFailed))
	}
	if errors.Is(fmt.Errorf("%w: x", ErrVerification), ErrCellFailed) {
		t.Fatal("a verification failure reads as a cell failure")
	}
}

// TestSchemaMismatchEndsTheRunButKeepsResults: a results file that does not
// match the schema is still written, and the run ends with an error that
// counts as a failure (exit 1), not bad input.
func TestSchemaMismatchEndsTheRunButKeepsResults(t *testing.T) {
	dir := t.TempDir()
	run := &results.Run{Schema: results.SchemaVersion, Config: map[string]any{"Scenario": "x"}, Started: time.Now()}
	var schemaErr error
	if err := writeResults(dir, run, &schemaErr); err != nil {
		t.Fatal(err)
	}
	if schemaErr == nil || !errors.Is(schemaErr, ErrVerification) || !errors.Is(schemaErr, results.ErrSchema) || !strings.Contains(schemaErr.Error(), "/config") {
		t.Fatalf("schema error = %v", schemaErr)
	}
	if _, err := results.ReadRun(dir); err != nil {
		t.Errorf("results not written: %v", err)
	}
}
