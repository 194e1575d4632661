// Command idxbench benchmarks and verifies storage engines under a secondary
// indexer pipeline. See README.md for the subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	_ "github.com/idxbench/idxbench/engines/all"
	"github.com/idxbench/idxbench/harness"
)

// command is one subcommand. run gets the arguments after the subcommand's
// name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"run":       {"run a scenario on engines × dirs × cores and write a results directory", cmdRun},
		"compare":   {"compare two runs (or histories); exit 1 on a significant regression", cmdCompare},
		"capacity":  {"search each cell for the highest ingest rate that meets an SLO (index lag, scan p99)", cmdCapacity},
		"ab":        {"run old and new binaries' cells interleaved (ABAB…) in one matrix, then compare them", cmdAB},
		"report":    {"(re)build report.html of a results directory", cmdReport},
		"engines":   {"list registered engines and their settings", cmdEngines},
		"size":      {"size hardware for a target rate, data size and lag SLO from capacity results", cmdSize},
		"scenarios": {"list built-in scenarios", cmdScenarios},
		"workload":  {"print the first N messages of a workload's UPR stream", cmdWorkload},
		"crashtest": {"kill -9 / restart / verify loop against one engine", cmdCrashtest},
		"node":      {"run one node (kv, index, coordinator, etcd) of a multi-process pipeline", cmdNode},
		"version":   {"print idxbench's version (module version and VCS revision)", cmdVersion},
	}
}

// exitError carries an exit status other than the default 2 for errors.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// failure marks err as a run that worked but found a problem (verification
// failed, a regression): exit status 1 instead of 2, which means bad input.
func failure(err error) error { return &exitError{code: 1, err: err} }

// errHelp asks for usage to be printed with exit status 0.
var errHelp = errors.New("help requested")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 2 && args[0] == "help" {
			// "idxbench help run" is "idxbench run -h".
			if c, ok := cmds[args[1]]; ok {
				err := c.run(ctx, []string{"-h"}, stdout, stderr)
				if errors.Is(err, errHelp) {
					return nil
				}
				return err
			}
			return fmt.Errorf("help: unknown command %q (commands: %s)", args[1], strings.Join(sortedNames(cmds), ", "))
		}
		usage(stdout, cmds)
		return nil
	}
	c, ok := cmds[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q (commands: %s)", args[0], strings.Join(sortedNames(cmds), ", "))
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: idxbench COMMAND [flags]")
	fmt.Fprintln(w)
	for _, n := range sortedNames(cmds) {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'idxbench COMMAND -h' for a command's flags.")
}

func sortedNames(cmds map[string]command) []string {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// exitCode maps run's error to the process exit status: 0 for none or a help
// request, the code an exitError carries, else 2.
func exitCode(err error) int {
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 2
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if os.Getenv(harness.NodeEnv) != "" {
		// A node process a cell started: the job is on stdin.
		err := harness.RunNodeFromStdin(ctx, os.Stdin, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintf(os.Stderr, "idxbench node: %v\n", err)
		}
		os.Exit(exitCode(err))
	}
	if os.Getenv(harness.ChildEnv) != "" {
		// A cell of a matrix run: the parent sent the job on stdin and
		// reports the cell's outcome itself.
		err := harness.RunChild(ctx, os.Stdin, os.Stderr)
		stop()
		os.Exit(exitCode(err))
	}
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, errHelp) {
		fmt.Fprintf(os.Stderr, "idxbench: %v\n", err)
	}
	os.Exit(exitCode(err))
}
