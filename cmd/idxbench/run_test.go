package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/harness"
	"github.com/idxbench/idxbench/results"
)

func TestMain(m *testing.M) {
	// `idxbench run` starts each cell as a child process of its own
	// executable, which under test is this test binary.
	if os.Getenv(harness.ChildEnv) != "" {
		err := harness.RunChild(context.Background(), os.Stdin, os.Stderr)
		os.Exit(exitCode(err))
	}
	if os.Getenv(harness.NodeEnv) != "" {
		err := harness.RunNodeFromStdin(context.Background(), os.Stdin, os.Stdout, os.Stderr)
		os.Exit(exitCode(err))
	}
	os.Exit(m.Run())
}

const tinyScenario = `
name: tiny
description: a few hundred documents
workload: {docs: 400, vbuckets: 8}
indexer: {snapshot_interval: 20ms}
phases:
  - type: load
  - {type: ingest, mutations: 400}
`

func TestRunWritesAVerifiedResultsDirectory(t *testing.T) {
	tmp := t.TempDir()
	scen := filepath.Join(tmp, "tiny.yaml")
	os.WriteFile(scen, []byte(tinyScenario), 0o644)
	out := filepath.Join(tmp, "out")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"run", "--engine", "memory", "--scenario", scen, "--out", out, "--quiet", "--seed", "42"}, &stdout, &stderr)
	if exitCode(err) != 0 {
		t.Fatalf("exit %d: %v\n%s", exitCode(err), err, stderr.String())
	}
	r, err := results.ReadRun(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Seed != 42 || len(r.Cells) != 1 || r.Partial {
		t.Fatalf("results: seed %d, %d cells, partial %v", r.Seed, len(r.Cells), r.Partial)
	}
	for _, ph := range r.Cells[0].Phases {
		if ph.Verify != results.VerifyPass {
			t.Errorf("phase %s: %s %s", ph.Name, ph.Verify, ph.VerifyDetail)
		}
	}
	// results.json describes itself: it matches the schema in the
	// repository, and its config holds the settings the cell ran with
	// (the indexer's defaults filled in, durations as strings).
	data, err := os.ReadFile(filepath.Join(out, results.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := results.Validate(data); err != nil {
		t.Error(err)
	}
	ix, _ := r.Config["indexer"].(map[string]any)
	if ix["snapshot_interval"] != "20ms" || ix["max_rollbacks"] != float64(5) || ix["st_mode"] != "local" || ix["queue_size"] != float64(262144) {
		t.Errorf("config.indexer = %v", ix)
	}
	if c := r.Cells[0]; c.EngineOptions == nil || len(c.CPUs) == 0 || c.EngineDescription == "" {
		t.Errorf("cell: engine options %v, description %q, cpus %v", c.EngineOptions, c.EngineDescription, c.CPUs)
	}
	for _, f := range []string{"results.json", "bench.txt", "report.html", "ticks.jsonl"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("results dir lacks %s", f)
		}
	}
	if !strings.Contains(stdout.String(), "phase ingest") || !strings.Contains(stdout.String(), "memory") {
		t.Errorf("no comparison table on stdout:\n%s", stdout.String())
	}
}

func TestRunPrintSpec(t *testing.T) {
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"run", "--scenario", "ingest", "--docs", "1234", "--duration", "3s", "--print-spec"}, &stdout, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"docs: 1234", "duration: 3s", "type: ingest"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("effective spec lacks %q:\n%s", want, stdout.String())
		}
	}
	sc, err := harness.ParseScenario(stdout.Bytes())
	if err != nil {
		t.Fatalf("printed spec does not parse back: %v", err)
	}
	if len(sc.Phases) != 2 {
		t.Fatalf("printed spec has %d phases", len(sc.Phases))
	}
}

func TestRunBadInputExitsTwoWithOneLine(t *testing.T) {
	tmp := t.TempDir()
	foreign := filepath.Join(tmp, "foreign")
	os.Mkdir(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, "data"), []byte("precious"), 0o644)
	badYAML := filepath.Join(tmp, "bad.yaml")
	os.WriteFile(badYAML, []byte("phases:\n  - type: load\n    bogus: 1\n"), 0o644)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close() // nothing listens there now
	// An output dir another live run holds (the test's parent stands in).
	busyOut := filepath.Join(tmp, "busy-out")
	os.Mkdir(busyOut, 0o755)
	os.WriteFile(filepath.Join(busyOut, ".idxbench-lock"), []byte(fmt.Sprintf("%d\n", os.Getppid())), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--engine", "nosuch"}, `unknown engine "nosuch"`},
		{[]string{"run", "--scenario", "nosuch"}, `unknown scenario "nosuch"`},
		{[]string{"run", "--scenario", badYAML}, "bogus"},
		{[]string{"run", "--vbuckets", "0"}, "vbuckets"},
		{[]string{"run", "--vbuckets", "x"}, "--vbuckets"},
		{[]string{"run", "--cores", "0"}, "--cores 0"},
		{[]string{"run", "--dir", foreign}, "not empty"},
		{[]string{"run", "--seed", "-1"}, "--seed"},
		{[]string{"run", "--duration", "soon"}, "duration"},
		{[]string{"run", "--inject-slowdown", "10"}, "inject-slowdown"},
		// Explicit zeros that were the default in silence.
		{[]string{"run", "--repeat", "0"}, "--repeat 0: want at least 1"},
		{[]string{"run", "--duration", "0s"}, "--duration 0s: want a positive duration"},
		// Settings that validate but cannot run here, refused before work.
		{[]string{"run", "--engine", "memory", "--docs", "100000000000"}, "workload.docs: 100000000000 documents need about"},
		{[]string{"run", "--engine", "memory", "--scenario", "rollback", "--vbuckets", "8"}, "vbuckets: fails over 256 vbuckets, the workload has 8"},
		{[]string{"run", "--nosuchflag"}, "nosuchflag"},
		{[]string{"run", "extra"}, "unexpected argument"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"run", "--topology", "cluster"}, `--topology "cluster"`},
		{[]string{"run", "--etcd", refusedAddr}, "--etcd needs --topology procs"},
		{[]string{"run", "--engine", "memory", "--out", busyOut}, "in use by another idxbench run"},
		{[]string{"run", "--topology", "procs", "--etcd", refusedAddr}, "no etcd answers"},
		{[]string{"node"}, `--role ""`},
		{[]string{"node", "--role", "kv", "--listen", busy.Addr().String()}, "address already in use"},
		{[]string{"node", "--role", "kv", "--listen", "nohost"}, "nohost"},
		{[]string{"node", "--role", "index", "--dir", tmp}, "--kv"},
		{[]string{"node", "--role", "index", "--kv", refusedAddr, "--dir", filepath.Join(tmp, "ix")}, "connection refused"},
		{[]string{"node", "--role", "index", "--kv", refusedAddr, "--dir", tmp, "--engine", "nosuch"}, `unknown engine "nosuch"`},
	} {
		var out bytes.Buffer
		err := run(context.Background(), tc.args, &out, &out)
		if code := exitCode(err); code != 2 {
			t.Errorf("%v: exit %d (%v), want 2", tc.args, code, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %q, want one line containing %q", tc.args, err, tc.want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(foreign, "data")); string(b) != "precious" {
		t.Fatal("a refused data dir was touched")
	}
}

func TestScenariosListsBuiltins(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"scenarios"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"default", "ingest", "scan", "raw-ingest"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("scenarios output lacks %s:\n%s", name, out.String())
		}
	}
}
