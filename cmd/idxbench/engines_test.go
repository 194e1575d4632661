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
