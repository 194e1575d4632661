package main

import (
	"context"
	"fmt"
	"io"

	"github.com/idxbench/idxbench/engines"
	_ "github.com/idxbench/idxbench/engines/all"
)

// cmdEngines lists the registered engines: name, whether it is a real
// (on-disk) engine or the in-memory reference, its one-line doc, and the
// settings the default options lead to.
func cmdEngines(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("engines")
	pos, err := parseFlags(fs, "", args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("engines: unexpected argument %q", pos[0])
	}
	for i, name := range engines.Names() {
		e, err := engines.Lookup(name)
		if err != nil {
			return err
		}
		kind := "real"
		if !e.Real {
			kind = "reference"
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "%s (%s)\n", e.Name, kind)
		fmt.Fprintf(stdout, "  %s\n", e.Doc)
		if e.Describe != nil {
			var opts engines.Options
			fmt.Fprintf(stdout, "  settings: %s\n", e.Describe(*opts.EnsureDefaults()))
		}
	}
	return nil
}
