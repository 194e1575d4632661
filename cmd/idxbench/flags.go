package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// newFlagSet returns a flag set that reports errors instead of printing them
// and exiting, so every bad flag becomes one error line and exit status 2.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args; -h prints the flag set's defaults to stdout and
// returns errHelp. Positional arguments may come before or after flags.
func parseFlags(fs *flag.FlagSet, synopsis string, args []string, stdout io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printUsage(stdout, fs, synopsis)
				return nil, errHelp
			}
			return nil, fmt.Errorf("%s: %s", fs.Name(), strings.TrimSpace(err.Error()))
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// printUsage prints a command's synopsis and its flags the way the docs
// write them: --name, the value's kind, the text, the default.
func printUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "usage: idxbench %s %s\n", fs.Name(), synopsis)
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		if kind == "string" {
			kind = "VALUE" // a flag read as text and parsed later
		}
		head := "  --" + f.Name
		if kind != "" {
			head += " " + kind
		}
		fmt.Fprintf(w, "%s\n    \t%s", head, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// parseFraction reads flag name's value "10%" as 0.1, or a bare fraction
// like 0.1 (a bare number above 1 is refused, so "10" is not 1000%).
func parseFraction(name, s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(t, "%"), 64)
	if err != nil || v != v {
		return 0, fmt.Errorf("--%s %q: want a percentage like 10%% or a fraction like 0.1", name, s)
	}
	if pct {
		v /= 100
	} else if v > 1 {
		return 0, fmt.Errorf("--%s %q: a bare number is a fraction; write %s%% for a percentage", name, s, t)
	}
	if v < 0 || v > 10 {
		return 0, fmt.Errorf("--%s %q out of range [0%%, 1000%%]", name, s)
	}
	return v, nil
}
