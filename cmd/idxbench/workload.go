package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/idxbench/idxbench/results"
	"github.com/idxbench/idxbench/workload"
	"github.com/idxbench/idxbench/workload/upr"
)

const workloadSynopsis = "--dump N [--seed S] [--spec FILE] [--docs N] [--vbuckets N]"

// dumpBatch is how many operations the dump applies between drains of the
// feed.
const dumpBatch = 64

// cmdWorkload prints the first N messages of a workload's UPR stream, one a
// line, then the generator's digest. What it shows, exactly:
//
//  1. a bucket shaped by the spec (default or --spec, with --seed, --docs and
//     --vbuckets overriding it) is loaded with the spec's documents;
//  2. one feed requests every vbucket from seqno 0 (endless), in vbucket
//     order, so each stream begins with its answer and a backfill snapshot;
//  3. the feed is drained (the feed serves vbuckets round-robin, at most 32
//     events from one at a time); whenever it has nothing, the next 64
//     operations of the spec's mix are applied — until N messages are
//     printed or the spec's mutation count is exhausted and drained.
//
// The same spec and seed print the same lines; EmitNanos is not printed.
func cmdWorkload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("workload")
	dump := fs.Int("dump", 0, "print the first `N` messages of the stream")
	seed := fs.Uint64("seed", 0, "seed (default: the spec's)")
	specPath := fs.String("spec", "", "workload spec `FILE` (YAML; default: the built-in default spec)")
	docs := fs.Int("docs", -1, "initial documents (default: the spec's)")
	vbuckets := fs.Int("vbuckets", 0, "vbuckets, 1..1024 (default: the spec's)")
	pos, err := parseFlags(fs, workloadSynopsis, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("workload: unexpected argument %q (usage: idxbench workload %s)", pos[0], workloadSynopsis)
	}
	if *dump <= 0 {
		return fmt.Errorf("workload: --dump N with N > 0 is required (usage: idxbench workload %s)", workloadSynopsis)
	}
	spec := workload.DefaultSpec()
	if *specPath != "" {
		if spec, err = workload.LoadSpec(*specPath); err != nil {
			return err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["seed"] {
		spec.Seed = *seed
	}
	if set["docs"] {
		spec.Docs = *docs
	}
	if set["vbuckets"] {
		// The generator reads 0 as the default: an explicit 0 is refused
		// here rather than replaced in silence.
		if *vbuckets == 0 {
			return fmt.Errorf("workload: --vbuckets 0 out of range 1..%d", workload.MaxVbuckets)
		}
		spec.Vbuckets = *vbuckets
	}
	g, err := workload.NewGenerator(spec) // validates; errors name the field
	if err != nil {
		return err
	}
	// The dump loads every document first.
	if err := g.Spec().CheckMemory(results.MemTotal()); err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	w := bufio.NewWriter(stdout)
	if err := dumpStream(ctx, g, *dump, w); err != nil {
		return err
	}
	fmt.Fprintf(w, "digest %s load=%d mutations=%d\n", g.Digest(), g.Loaded(), g.Ops())
	return w.Flush()
}

func dumpStream(ctx context.Context, g *workload.Generator, n int, w *bufio.Writer) error {
	spec := g.Spec()
	b := g.NewBucket(workload.BucketOptions{Clock: func() int64 { return 0 }})
	g.Load(b)
	f := b.NewFeed()
	defer f.Close()
	for vb := range spec.Vbuckets {
		req := upr.StreamRequest{Vb: upr.Vbno(vb), End: workload.EndlessSeqno}
		if err := f.Request(req); err != nil {
			return fmt.Errorf("workload: %w", err)
		}
	}
	buf := make([]upr.Event, 256)
	var line []byte
	for printed := 0; printed < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, err := f.Poll(buf[:min(len(buf), n-printed)])
		if err != nil {
			return fmt.Errorf("workload: %w", err)
		}
		if k == 0 {
			left := dumpBatch
			if spec.Mutations > 0 {
				left = min(left, spec.Mutations-int(g.Ops()))
			}
			if left <= 0 {
				return nil // the workload is over and drained
			}
			for range left {
				g.Apply(b, g.Next())
			}
			continue
		}
		for i := range buf[:k] {
			line = append(buf[i].AppendText(line[:0]), '\n')
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
		printed += k
	}
	return nil
}
