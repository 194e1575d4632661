package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/harness"
)

// crashtest's children are this test binary: with harness.CrashChildEnv set
// it runs the child before any test (TestMain belongs to run_test.go).
func init() {
	if os.Getenv(harness.CrashChildEnv) != "" {
		if err := harness.RunCrashChild(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

func TestCrashtestBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cycles", "1"}, "--engine is required"},
		{[]string{"--engine", "pebble"}, "--cycles is required"},
		{[]string{"--engine", "memory", "--cycles", "1"}, "keeps nothing on disk"},
		{[]string{"--engine", "nosuch", "--cycles", "1"}, "unknown engine"},
		{[]string{"--engine", "pebble", "--cycles", "-3"}, "cycles must be at least 1"},
		{[]string{"--engine", "pebble", "--cycles", "1", "--seed", "x"}, "--seed"},
		{[]string{"--engine", "pebble", "--cycles", "1", "--vbuckets", "0"}, "vbuckets"},
		{[]string{"--engine", "pebble", "--cycles", "1", "--min-run", "2s", "--max-run", "1s"}, "below min run"},
		{[]string{"--engine", "pebble", "--cycles", "1", "--rate", "-1"}, "--rate"},
		// An explicit 0 was the default in silence.
		{[]string{"--engine", "pebble", "--cycles", "1", "--min-run", "0s"}, "--min-run 0s: want a positive duration"},
		{[]string{"--engine", "pebble", "--cycles", "1", "--max-run", "0"}, "--max-run 0s: want a positive duration"},
		{[]string{"--engine", "pebble", "--cycles", "1", "--verify-on-open", "deep"}, "verify on open"},
		{[]string{"--engine", "pebble", "--cycles", "1", "extra"}, "unexpected argument"},
		{[]string{"--engine", "pebble", "--cycles", "1", "--damage", "flip"}, `damage "flip": want truncate or none`},
		{[]string{"--nosuchflag"}, "flag provided but not defined"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"crashtest"}, tc.args...), &stdout, &stderr)
		if exitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), tc.want) {
			t.Errorf("%v: exit %d, error %v; want exit 2 and %q", tc.args, exitCode(err), err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error is not one line: %q", tc.args, err)
		}
	}
}

func TestCrashtestRunsAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"crashtest", "--engine", "bbolt", "--cycles", "2", "--seed", "5", "--docs", "300", "--vbuckets", "8",
		"--rate", "2000", "--min-run", "50ms", "--max-run", "300ms", "--dir", dir}
	err := run(context.Background(), args, &stdout, &stderr)
	if exitCode(err) != 0 {
		t.Fatalf("exit %d: %v\n%s%s", exitCode(err), err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if !strings.HasPrefix(out, "seed: 5\n") {
		t.Errorf("output does not start with the seed:\n%s", out)
	}
	for _, want := range []string{"cycle 1/2: verified", "cycle 2/2: verified", "final: verified", "summary: seed 5, 2 cycles, kills:", "mean recover"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("crashtest left %d entries in %s after passing, want only its owner marker", len(ents), dir)
	}
}

func TestCrashtestHelp(t *testing.T) {
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"crashtest", "-h"}, &stdout, &stdout)
	if exitCode(err) != 0 || !strings.Contains(stdout.String(), "--engine E --cycles N") || !strings.Contains(stdout.String(), "-max-run") {
		t.Errorf("help: exit %d\n%s", exitCode(err), stdout.String())
	}
}
