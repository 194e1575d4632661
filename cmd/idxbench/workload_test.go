package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runWorkload(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"workload"}, args...), &out, &errOut)
	return out.String(), err
}

func TestWorkloadDump(t *testing.T) {
	args := []string{"--dump", "300", "--docs", "40", "--vbuckets", "4", "--seed", "7"}
	a, err := runWorkload(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	if len(lines) != 301 {
		t.Fatalf("%d lines, want 300 messages and the digest", len(lines))
	}
	if !strings.HasPrefix(lines[0], "vb=0 stream-begin vbuuid=") {
		t.Errorf("first line %q", lines[0])
	}
	if !strings.HasPrefix(lines[300], "digest ") || !strings.Contains(lines[300], "load=40") {
		t.Errorf("last line %q", lines[300])
	}
	kinds := map[string]int{}
	for _, l := range lines[:300] {
		f := strings.Fields(l)
		kinds[f[1]]++
	}
	// 4 answers, 4 backfills of 40 documents, then live snapshots of
	// mutations (and deletions, expirations).
	if kinds["stream-begin"] != 4 || kinds["snapshot"] < 5 || kinds["mutation"] < 100 {
		t.Errorf("message kinds %v", kinds)
	}
	b, err := runWorkload(t, args...)
	if err != nil || a != b {
		t.Fatalf("same seed, different output (%v)", err)
	}
	c, err := runWorkload(t, "--dump", "300", "--docs", "40", "--vbuckets", "4", "--seed", "8")
	if err != nil || c == a {
		t.Fatalf("different seed, same output (%v)", err)
	}
}

func TestWorkloadDumpSpec(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "w.yaml")
	spec := "vbuckets: 1\ndocs: 2\nmutations: 3\nops: {update: 1}\n"
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runWorkload(t, "--dump", "1000", "--spec", p)
	if err != nil {
		t.Fatal(err)
	}
	// begin, backfill marker + 2, then 3 updates in one live snapshot; the
	// workload ends before 1000 messages.
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 1+3+4+1 || !strings.Contains(lines[len(lines)-1], "mutations=3") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestWorkloadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("ops:\n  updat: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--dump N with N > 0 is required"},
		{[]string{"--dump", "0"}, "--dump N with N > 0 is required"},
		{[]string{"--dump", "x"}, `invalid value "x" for flag -dump`},
		{[]string{"--dump", "1", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"--dump", "1", "extra"}, `unexpected argument "extra"`},
		{[]string{"--dump", "1", "--vbuckets", "5000"}, "workload.vbuckets: must be in 1..1024, got 5000"},
		{[]string{"--dump", "1", "--docs", "-2"}, "workload.docs: must be ≥ 0"},
		{[]string{"--dump", "1", "--vbuckets", "0"}, "--vbuckets 0 out of range 1..1024"}, // was the default in silence
		{[]string{"--dump", "1", "--docs", "100000000000"}, "100000000000 documents need about"},
		{[]string{"--dump", "1", "--spec", filepath.Join(dir, "none.yaml")}, "none.yaml"},
		{[]string{"--dump", "1", "--spec", bad}, `workload.ops.updat: unknown field "updat" (line 2)`},
	} {
		_, err := runWorkload(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("workload %q: error %v, want %q", tc.args, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("workload %q: multi-line error %q", tc.args, err)
		}
		if code := exitCode(err); code != 2 {
			t.Errorf("workload %q: exit %d, want 2", tc.args, code)
		}
	}
	out, err := runWorkload(t, "-h")
	if exitCode(err) != 0 || !strings.Contains(out, "usage: idxbench workload --dump N") {
		t.Errorf("-h: %v\n%s", err, out)
	}
}
