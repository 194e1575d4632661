package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestEnginesListsEveryAdapter(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"engines"}, &out, &errOut); err != nil {
		t.Fatalf("idxbench engines: %v\n%s", err, errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		"memory (reference)\n",
		"bbolt (real)\n",
		"pebble (real)\n",
		"badger (real)\n",
		"settings: bbolt ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "  settings: ") != strings.Count(got, " (real)\n")+strings.Count(got, " (reference)\n") {
		t.Errorf("not every engine has a settings line:\n%s", got)
	}
}

func TestEnginesRejectsArguments(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"engines", "extra"}, &out, &out); err == nil {
		t.Fatal("extra argument accepted")
	}
}

// TestHelpAndVersion: "help CMD" prints that command's usage with its
// flags written --name; version names the Go version.
func TestHelpAndVersion(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"help", "run"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "usage: idxbench run ") || !strings.Contains(out.String(), "  --docs N\n") ||
		strings.Contains(out.String(), "\n  -docs") {
		t.Fatalf("help run:\n%s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"version"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "idxbench ") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("version: %q", out.String())
	}
	if err := run(context.Background(), []string{"help", "nosuch"}, &out, &out); exitCode(err) != 2 {
		t.Fatalf("help of an unknown command: %v", err)
	}
}
