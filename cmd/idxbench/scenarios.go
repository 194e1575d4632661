package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/idxbench/idxbench/harness"
)

func cmdScenarios(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("scenarios")
	pos, err := parseFlags(fs, "", args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("scenarios: unexpected argument %q", pos[0])
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, name := range harness.BuiltinScenarios() {
		sc, _, err := harness.LoadScenario(name)
		if err != nil {
			return fmt.Errorf("built-in scenario %s: %w", name, err)
		}
		fmt.Fprintf(tw, "%s\t%s\n", name, sc.Description)
	}
	return tw.Flush()
}
