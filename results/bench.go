package results

import (
	"bufio"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// WriteBench writes run in the Go benchmark format, so `benchstat
// bench.txt` summarizes it and `benchstat -col /engine bench.txt` puts
// engines side by side. Every cell × phase (repeats are separate cells) is
// one line:
//
//	BenchmarkIngest/engine=pebble/cores=2/dir=d0 1 5123 mutations_per_sec 3.1 scan_p99_ms
//
// preceded by goos/goarch/pkg/cpu configuration lines and a
// "Unit NAME better=higher|lower" line for each metric whose direction
// Better knows. Phases without metrics write no line.
func WriteBench(w io.Writer, run *Run) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "goos: %s\n", runtime.GOOS)
	fmt.Fprintf(bw, "goarch: %s\n", runtime.GOARCH)
	fmt.Fprintf(bw, "pkg: github.com/idxbench/idxbench\n")
	if run.Machine.CPUModel != "" {
		fmt.Fprintf(bw, "cpu: %s\n", oneLine(run.Machine.CPUModel))
	}
	if run.Scenario != "" {
		fmt.Fprintf(bw, "scenario: %s\n", oneLine(run.Scenario))
	}
	fmt.Fprintf(bw, "seed: %d\n", run.Seed)
	if run.Machine.GitRevision != "" {
		fmt.Fprintf(bw, "revision: %s\n", oneLine(run.Machine.GitRevision))
	}

	units := map[string]bool{}
	for _, c := range run.Cells {
		for _, p := range c.Phases {
			for m := range p.Metrics {
				units[benchToken(m)] = true
			}
		}
	}
	names := make([]string, 0, len(units))
	for u := range units {
		names = append(names, u)
	}
	sort.Strings(names)
	for _, u := range names {
		switch Better(u) {
		case HigherIsBetter:
			fmt.Fprintf(bw, "Unit %s better=higher\n", u)
		case LowerIsBetter:
			fmt.Fprintf(bw, "Unit %s better=lower\n", u)
		}
	}
	fmt.Fprintln(bw)

	for _, c := range run.Cells {
		for _, p := range c.Phases {
			if len(p.Metrics) == 0 {
				continue
			}
			ms := make([]string, 0, len(p.Metrics))
			for m := range p.Metrics {
				ms = append(ms, m)
			}
			sort.Strings(ms)
			fmt.Fprintf(bw, "%s 1", BenchName(&c, p.Name))
			for _, m := range ms {
				fmt.Fprintf(bw, " %s %s", strconv.FormatFloat(p.Metrics[m], 'g', -1, 64), benchToken(m))
			}
			fmt.Fprintln(bw)
		}
	}
	return bw.Flush()
}

// BenchName is the benchmark name of one phase of one cell:
// Benchmark<Phase>/engine=E/cores=N/dir=D.
func BenchName(c *Cell, phase string) string {
	return fmt.Sprintf("Benchmark%s/engine=%s/cores=%d/dir=%s",
		CamelCase(phase), benchToken(c.Engine), c.Cores, benchToken(c.Dir))
}

// benchToken makes s safe inside a benchmark name or unit: no spaces, and
// no slash or equals sign that would split a name key.
func benchToken(s string) string {
	if s == "" {
		return "none"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '=' || r == ' ' || r == '\t' || r == '\n' || r == '\r':
			return '_'
		}
		return r
	}, s)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
