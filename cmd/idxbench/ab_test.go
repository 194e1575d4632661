package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/results"
)

// TestABInterleavesAndCompares runs old and new (both this test binary, the
// new side slowed by an injected 50%) on the tiny scenario: the cells
// alternate old, new, old, new; each side leaves a valid results directory
// recording its side and slowdown; the comparison table follows.
func TestABInterleavesAndCompares(t *testing.T) {
	tmp := t.TempDir()
	scen := filepath.Join(tmp, "tiny.yaml")
	os.WriteFile(scen, []byte(tinyScenario), 0o644)
	out := filepath.Join(tmp, "out")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"ab", "--old", os.Args[0], "--new", os.Args[0], "--inject-slowdown-new", "50%",
		"--engine", "memory", "--scenario", scen, "--repeat", "2", "--out", out, "--quiet"}, &stdout, &stderr)
	if code := exitCode(err); code != 0 && code != 1 {
		t.Fatalf("exit %d: %v\n%s", code, err, stderr.String())
	}
	var sides []string
	for _, m := range regexp.MustCompile(`--- cell (\d+)/4 .* side=(\w+)`).FindAllStringSubmatch(stderr.String(), -1) {
		sides = append(sides, m[2])
	}
	if strings.Join(sides, ",") != "old,new,old,new" {
		t.Errorf("cells ran on sides %v, want old,new,old,new:\n%s", sides, stderr.String())
	}
	for _, side := range []string{"old", "new"} {
		dir := filepath.Join(out, side)
		data, err := os.ReadFile(filepath.Join(dir, results.ResultsFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := results.Validate(data); err != nil {
			t.Errorf("%s: %v", side, err)
		}
		r, err := results.ReadRun(dir)
		if err != nil {
			t.Fatal(err)
		}
		ab, _ := r.Config["ab"].(map[string]any)
		if len(r.Cells) != 2 || ab["side"] != side {
			t.Errorf("%s: %d cells, config.ab %v", side, len(r.Cells), ab)
		}
		wantSlow := side == "new"
		for _, c := range r.Cells {
			if _, slowed := c.EngineOptions["injected_slowdown"]; slowed != wantSlow {
				t.Errorf("%s cell %s: engine options %v", side, c.Key(), c.EngineOptions)
			}
		}
	}
	if !strings.Contains(stdout.String(), "mutations_per_sec") || !strings.Contains(stdout.String(), "=== side new") {
		t.Errorf("no per-side tables and comparison on stdout:\n%s", stdout.String())
	}
}

func TestABBadInput(t *testing.T) {
	tmp := t.TempDir()
	notExec := filepath.Join(tmp, "plain")
	os.WriteFile(notExec, []byte("x"), 0o644)
	for name, args := range map[string][]string{
		"no new":         {"ab", "--old", os.Args[0]},
		"not executable": {"ab", "--old", os.Args[0], "--new", notExec},
		"missing":        {"ab", "--old", filepath.Join(tmp, "nope"), "--new", os.Args[0]},
		"bad slowdown":   {"ab", "--old", os.Args[0], "--new", os.Args[0], "--inject-slowdown-new", "ten"},
		"bad threshold":  {"ab", "--old", os.Args[0], "--new", os.Args[0], "--threshold", "x"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), append(args, "--out", filepath.Join(tmp, "o-"+strings.ReplaceAll(name, " ", "-"))), &out, &out)
		if exitCode(err) != 2 || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: exit %d: %v", name, exitCode(err), err)
		}
	}
}
