package harness

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/results"
	"github.com/idxbench/idxbench/results/metricsexport"
)

// RunConfig is what `idxbench run` asks for.
type RunConfig struct {
	// Engines to run; empty means every real engine.
	Engines []string
	// Scenario is a built-in scenario's name or a file; default "default".
	Scenario string
	// Dirs are data directories (one per disk); empty means a temporary
	// directory, removed afterwards.
	Dirs []string
	// Cores are core counts; empty means every available core.
	Cores []int
	// Repeat runs each cell this many times (default 1).
	Repeat    int
	Overrides Overrides
	// Out is the results directory; empty means results-<timestamp> in the
	// working directory.
	Out         string
	Verify      bool
	MetricsAddr string
	// Executable is the binary that runs cells as child processes; default
	// os.Executable().
	Executable string
	Quiet      bool
	// Slowdown injects a regression: every engine batch takes this
	// fraction longer (0.1 = 10%). For checking that compare catches it.
	Slowdown float64
	// CPUProfile writes a CPU profile of every phase of every cell into
	// Out/profiles.
	CPUProfile bool
	// Topology lays a cell's nodes out: TopologyInproc (default) or
	// TopologyProcs.
	Topology string
	// NoSpaceCheck skips the free-space check of the data directories
	// against the scenario's estimated footprint (a rough estimate, which
	// can err large).
	NoSpaceCheck bool
	// Etcd lists an existing etcd cluster's endpoints for the procs
	// topology's metadata and node registry; empty starts an embedded
	// member per cell in a process of its own.
	Etcd []string
	// Attach drives a cluster started by hand (idxbench node on each
	// host, registered in Etcd under this prefix) instead of starting
	// nodes: one cell, on the engine its index nodes run.
	Attach string
	// Sides, when set, makes an interleaved A/B run: every cell runs once
	// per side, the sides alternating (ABAB…) so that whatever else the
	// machine does hits both alike, each side's cells run by its own
	// executable and written to the results directory Out/<label>.
	Sides []Side
}

// Side is one side of an interleaved A/B run.
type Side struct {
	// Label names the side and its results directory ("old", "new").
	Label string
	// Executable runs the side's cells (an idxbench binary).
	Executable string
	// Slowdown, when positive, replaces RunConfig.Slowdown for this side's
	// cells: how a planted regression on one side is measured.
	Slowdown float64
}

// ErrVerification is returned (wrapped) when a cell's verification failed
// or a cell could not finish, after every cell has run.
var ErrVerification = errors.New("verification failed")

// ErrCellFailed is returned (wrapped) when a cell could not finish: a fault
// met during the run — a full disk, a damaged store, a node that died. It
// matches ErrVerification too (errors.Is), so a caller gating on a run's
// outcome sees one kind of failure, while the message says which it was.
var ErrCellFailed error = cellFailed{}

type cellFailed struct{}

func (cellFailed) Error() string        { return "cell failed" }
func (cellFailed) Is(target error) bool { return target == ErrVerification }

// plan is a validated RunConfig.
type plan struct {
	cfg      RunConfig
	scenario *Scenario
	source   []byte
	engines  []string
	dirs     []string // data dirs as given (or the temp dir)
	labels   []string // d0, d1, … for results
	cores    []int
	out      string
}

// Prepare validates cfg without touching any disk, so bad input fails before
// anything is created.
func Prepare(cfg RunConfig) (*plan, error) {
	p := &plan{cfg: cfg}
	if cfg.Scenario == "" {
		cfg.Scenario = "default"
		p.cfg.Scenario = "default"
	}
	sc, src, err := LoadScenario(cfg.Scenario)
	if err != nil {
		return nil, err
	}
	spec, err := EffectiveWorkload(sc, cfg.Overrides)
	if err != nil {
		return nil, err
	}
	if err := checkPhaseRefs(sc, spec, cfg.Topology); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	if err := checkPlan(sc, spec, machineMemory()); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	p.scenario, p.source = sc, src

	p.engines = cfg.Engines
	if len(p.engines) == 0 {
		for _, n := range engines.Names() {
			if e, _ := engines.Lookup(n); e.Real {
				p.engines = append(p.engines, n)
			}
		}
	}
	seen := map[string]bool{}
	for _, n := range p.engines {
		if _, err := engines.Lookup(n); err != nil {
			return nil, err
		}
		if seen[n] {
			return nil, fmt.Errorf("engine %q given twice", n)
		}
		seen[n] = true
	}

	avail := AvailableCores()
	p.cores = cfg.Cores
	if len(p.cores) == 0 {
		p.cores = []int{avail}
	}
	for _, c := range p.cores {
		if c < 1 || c > avail {
			return nil, fmt.Errorf("--cores %d out of range [1,%d] (this machine lets idxbench use %d)", c, avail, avail)
		}
	}
	if cfg.MetricsAddr != "" {
		la, err := metricsexport.ListenAddr(cfg.MetricsAddr)
		if err != nil {
			return nil, err
		}
		// Bound and let go now, so a port in use is bad input before any
		// cell starts rather than a cell that fails.
		l, err := net.Listen("tcp", la)
		if err != nil {
			return nil, fmt.Errorf("--metrics-addr %s: %w", cfg.MetricsAddr, err)
		}
		l.Close()
	}
	if cfg.Slowdown < 0 || cfg.Slowdown > 10 {
		return nil, fmt.Errorf("--inject-slowdown %g out of range [0%%,1000%%]", cfg.Slowdown*100)
	}
	if cfg.Repeat < 0 || cfg.Repeat > 1000 {
		return nil, fmt.Errorf("--repeat %d out of range [1,1000]", cfg.Repeat)
	}
	if p.cfg.Repeat == 0 {
		p.cfg.Repeat = 1
	}
	switch cfg.Topology {
	case "", TopologyInproc:
		p.cfg.Topology = TopologyInproc
	case TopologyProcs:
	default:
		return nil, fmt.Errorf("--topology %q: want inproc or procs", cfg.Topology)
	}
	if cfg.Attach != "" {
		// An attached cluster serves one cell: its bucket is loaded by it.
		switch {
		case len(cfg.Etcd) == 0:
			return nil, errors.New("--attach needs --etcd, the etcd cluster the nodes registered with")
		case len(p.engines) != 1 || len(p.cores) != 1 || len(cfg.Dirs) > 1 || p.cfg.Repeat != 1:
			return nil, errors.New("--attach drives one cell: give one --engine (the index nodes'), and no more than one core count, dir or repeat")
		}
	}
	if len(cfg.Etcd) > 0 {
		if p.cfg.Topology != TopologyProcs {
			return nil, errors.New("--etcd needs --topology procs")
		}
		if err := probeEtcd(cfg.Etcd); err != nil {
			return nil, err
		}
	}
	p.dirs = cfg.Dirs
	for i, d := range p.dirs {
		if d == "" {
			return nil, errors.New("--dir has an empty entry")
		}
		p.labels = append(p.labels, fmt.Sprintf("d%d", i))
		if fi, err := os.Stat(d); err == nil && !fi.IsDir() {
			return nil, fmt.Errorf("data dir %s is a file, not a directory", d)
		}
		if pid, ok := lockedBy(d); ok {
			return nil, fmt.Errorf("data dir %s is in use by another idxbench run (pid %d)", d, pid)
		}
		if ents, err := os.ReadDir(d); err == nil && len(ents) > 0 && !isOwned(d) {
			return nil, fmt.Errorf("data dir %s is not empty and was not created by idxbench; give an empty or new directory", d)
		}
	}
	if !cfg.NoSpaceCheck {
		dirs := p.dirs
		if len(dirs) == 0 {
			dirs = []string{os.TempDir()}
		}
		for _, d := range dirs {
			if err := checkSpace(d, p.engines, sc, spec); err != nil {
				return nil, err
			}
		}
	}
	seenSide := map[string]bool{}
	for _, sd := range cfg.Sides {
		if sd.Label == "" || sd.Label == "." || sd.Label == ".." || strings.ContainsAny(sd.Label, `/\`) || seenSide[sd.Label] {
			return nil, fmt.Errorf("side label %q: want a distinct, non-empty name usable as a directory", sd.Label)
		}
		seenSide[sd.Label] = true
		fi, err := os.Stat(sd.Executable)
		if err != nil {
			return nil, fmt.Errorf("side %s: binary %s: %w", sd.Label, sd.Executable, err)
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return nil, fmt.Errorf("side %s: %s is not an executable file", sd.Label, sd.Executable)
		}
		if sd.Slowdown < 0 || sd.Slowdown > 10 {
			return nil, fmt.Errorf("side %s: slowdown %g%% out of range [0%%,1000%%]", sd.Label, sd.Slowdown*100)
		}
	}
	if len(cfg.Sides) == 1 {
		return nil, errors.New("an A/B run needs two sides or more")
	}
	p.out = cfg.Out
	if p.out == "" {
		p.out = "results-" + time.Now().Format("20060102-150405")
	}
	if pid, ok := lockedBy(p.out); ok {
		return nil, fmt.Errorf("output dir %s is in use by another idxbench run (pid %d)", p.out, pid)
	}
	if ents, err := os.ReadDir(p.out); err == nil && len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(p.out, "results.json")); err != nil {
			return nil, fmt.Errorf("output dir %s is not empty and holds no idxbench results; give a new or empty directory", p.out)
		}
		return nil, fmt.Errorf("output dir %s already holds results; give a new directory so they are not overwritten", p.out)
	} else if err == nil || !errors.Is(err, os.ErrNotExist) {
		if fi, serr := os.Stat(p.out); serr == nil && !fi.IsDir() {
			return nil, fmt.Errorf("output dir %s is a file", p.out)
		}
	}
	return p, nil
}

// Run runs every cell of the plan — data dirs × core counts × engines ×
// repeats, one child process each, one after another — and writes the
// results directory after every cell, so an interrupted run still leaves a
// valid (partial) one. It returns the run and, if any cell failed or did not
// verify, an error wrapping ErrVerification.
func (p *plan) Run(ctx context.Context, stdout, stderr io.Writer) (*results.Run, error) {
	runs, err := p.run(ctx, stdout, stderr)
	if len(runs) == 0 {
		return nil, err
	}
	return runs[0], err
}

// RunAB is Run for an interleaved A/B plan (RunConfig.Sides): it returns
// each side's run, in the order of Sides.
func (p *plan) RunAB(ctx context.Context, stdout, stderr io.Writer) ([]*results.Run, error) {
	if len(p.cfg.Sides) < 2 {
		return nil, errors.New("not an A/B plan: give two sides")
	}
	return p.run(ctx, stdout, stderr)
}

// run claims and locks the directories, then runs every side's cells.
func (p *plan) run(ctx context.Context, stdout, stderr io.Writer) ([]*results.Run, error) {
	exe := p.cfg.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find own executable for cell processes: %w", err)
		}
	}
	dirs, labels := p.dirs, p.labels
	var cleanup []string
	if len(dirs) == 0 {
		tmp, err := makeOwnedDir("", "idxbench-data-")
		if err != nil {
			return nil, fmt.Errorf("temporary data dir: %w", err)
		}
		cleanup = append(cleanup, tmp)
		dirs, labels = []string{tmp}, []string{"tmp"}
	} else {
		for _, d := range dirs {
			created, err := claimDataDir(d)
			if err != nil {
				return nil, err
			}
			if created {
				cleanup = append(cleanup, d)
			}
		}
	}
	var locks []func()
	defer func() {
		for _, release := range locks {
			release()
		}
		for _, d := range cleanup {
			removeOwnedDir(d)
		}
	}()
	for _, d := range dirs {
		release, err := lockDir(d, "data dir")
		if err != nil {
			return nil, err
		}
		locks = append(locks, release)
	}
	if err := os.MkdirAll(p.out, 0o755); err != nil {
		return nil, fmt.Errorf("output dir %s: %w", p.out, err)
	}
	// Taken before anything is written: of two runs given one --out, the
	// second is refused and the first's results stay whole.
	release, err := lockDir(p.out, "output dir")
	if err != nil {
		return nil, err
	}
	locks = append(locks, release)
	if ents, err := os.ReadDir(p.out); err == nil {
		for _, e := range ents {
			if e.Name() != lockFile {
				return nil, fmt.Errorf("output dir %s is no longer empty (another run wrote to it); give a new directory", p.out)
			}
		}
	}
	profileDir := ""
	if p.cfg.CPUProfile {
		profileDir = filepath.Join(p.out, "profiles")
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			return nil, fmt.Errorf("profile dir %s: %w", profileDir, err)
		}
	}

	sides := p.cfg.Sides
	if len(sides) == 0 {
		sides = []Side{{Executable: exe}}
	}
	return p.runSides(ctx, sides, dirs, labels, profileDir, stdout, stderr)
}

// sideRun is one side's run in progress: where it writes and what it has.
type sideRun struct {
	Side
	out   string // results directory
	ticks string
	run   *results.Run
}

// profiles is where the side's CPU profiles go: dir itself, or a
// subdirectory per side of an A/B run, so the sides' profiles of one cell
// do not overwrite each other.
func (sr *sideRun) profiles(dir string) string {
	if dir == "" || sr.Label == "" {
		return dir
	}
	sub := filepath.Join(dir, sr.Label)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return dir
	}
	return sub
}

// runSides runs the matrix once per side, interleaved cell by cell, and
// writes each side's results directory after every cell.
func (p *plan) runSides(ctx context.Context, sides []Side, dirs, labels []string, profileDir string, stdout, stderr io.Writer) ([]*results.Run, error) {
	wl, _ := EffectiveWorkload(p.scenario, p.cfg.Overrides)
	config, err := p.EffectiveConfig()
	if err != nil {
		return nil, err
	}
	machine := results.CollectMachine(dirs)
	machine.LabelDirs(labels)
	started := time.Now().UTC()
	var srs []*sideRun
	for _, sd := range sides {
		sr := &sideRun{Side: sd, out: p.out}
		cfg := config
		if sd.Label != "" {
			sr.out = filepath.Join(p.out, sd.Label)
			if err := os.MkdirAll(sr.out, 0o755); err != nil {
				return nil, fmt.Errorf("results dir of side %s: %w", sd.Label, err)
			}
			cfg = maps.Clone(config)
			binaries := map[string]any{}
			for _, o := range sides {
				binaries[o.Label] = o.Executable
			}
			cfg["ab"] = map[string]any{"side": sd.Label, "binaries": binaries}
			if sd.Slowdown > 0 {
				cfg["slowdown"] = sd.Slowdown
			}
		}
		sr.ticks = filepath.Join(sr.out, results.TicksFile)
		sr.run = &results.Run{
			Schema: results.SchemaVersion, Seed: wl.Seed, Scenario: p.scenario.Name,
			Config: cfg, Machine: machine, Started: started, Partial: true,
		}
		srs = append(srs, sr)
	}
	all := func() []*results.Run {
		var out []*results.Run
		for _, sr := range srs {
			out = append(out, sr.run)
		}
		return out
	}
	fmt.Fprintf(stderr, "idxbench: scenario %s, seed %d, engines %s, cores %v, %d dir(s), results in %s\n",
		p.scenario.Name, wl.Seed, strings.Join(p.engines, ","), p.cores, len(dirs), p.out)
	if len(srs) > 1 {
		var names []string
		for _, sr := range srs {
			names = append(names, sr.Label+"="+sr.Executable)
		}
		fmt.Fprintf(stderr, "idxbench: A/B run, sides %s alternating cell by cell\n", strings.Join(names, ", "))
	}

	var failed []string
	faulted := false // a cell failed with an error, not only a verification
	var schemaErr error
	total := len(dirs) * len(p.cores) * len(p.engines) * p.cfg.Repeat * len(srs)
	done := 0
	runStart := time.Now()
cells:
	for di, dir := range dirs {
		for _, cores := range p.cores {
			for _, eng := range p.engines {
				for r := 0; r < p.cfg.Repeat; r++ {
					for _, sr := range srs {
						if ctx.Err() != nil {
							break cells
						}
						job := CellJob{
							Engine: eng, DataDir: dir, DirLabel: labels[di], Cores: cores, Repeat: r,
							Scenario: p.source, Overrides: p.cfg.Overrides, Verify: p.cfg.Verify,
							ResultPath:  filepath.Join(sr.out, fmt.Sprintf(".cell-%s-%s-c%d-r%d.json", eng, labels[di], cores, r)),
							TicksPath:   sr.ticks,
							MetricsAddr: p.cfg.MetricsAddr,
							Quiet:       p.cfg.Quiet,
							Slowdown:    cmp.Or(sr.Slowdown, p.cfg.Slowdown),
							ProfileDir:  sr.profiles(profileDir),
							Topology:    p.cfg.Topology,
							Etcd:        p.cfg.Etcd,
							Attach:      p.cfg.Attach,
							Executable:  sr.Executable,
						}
						if job.Topology == TopologyProcs {
							var err error
							if job.IndexCPUs, job.KVCPUs, err = NodeCPUs(cores); err != nil {
								return all(), err
							}
						}
						side := ""
						if sr.Label != "" {
							side = " side=" + sr.Label
						}
						fmt.Fprintf(stderr, "--- cell %d/%d engine=%s dir=%s cores=%d repeat=%d%s%s\n",
							done+1, total, eng, labels[di], cores, r, side, remaining(time.Since(runStart), done, total))
						cell := runChildProcess(ctx, sr.Executable, job, stderr)
						os.Remove(job.ResultPath)
						done++
						if msg := cellProblem(cell); msg != "" {
							faulted = faulted || cell.Error != ""
							failed = append(failed, fmt.Sprintf("%s/%s/c%d/r%d%s: %s", eng, labels[di], cores, r, side, msg))
							fmt.Fprintf(stderr, "--- cell failed: %s\n", msg)
						}
						sr.run.Cells = append(sr.run.Cells, cell)
						if err := writeResults(sr.out, sr.run, &schemaErr); err != nil {
							return all(), err
						}
					}
				}
			}
		}
	}
	for _, sr := range srs {
		sr.run.Finished = time.Now().UTC()
		sr.run.Partial = ctx.Err() != nil
		if err := writeResults(sr.out, sr.run, &schemaErr); err != nil {
			return all(), err
		}
		if sr.Label != "" {
			fmt.Fprintf(stdout, "\n=== side %s (%s)\n", sr.Label, sr.Executable)
		}
		PrintSummary(stdout, sr.run)
		fmt.Fprintf(stdout, "\nresults: %s\n", sr.out)
	}
	if ctx.Err() != nil {
		return all(), fmt.Errorf("interrupted; partial results in %s", p.out)
	}
	if len(failed) > 0 {
		kind := ErrVerification
		if faulted {
			kind = ErrCellFailed
		}
		return all(), fmt.Errorf("%w: %s", kind, strings.Join(failed, "; "))
	}
	if schemaErr != nil {
		return all(), schemaErr
	}
	return all(), nil
}

// writeResults writes a results directory. A file that does not match the
// schema is still written and the run goes on — its measurements are worth
// keeping — but the first such mismatch is kept in *schemaErr for the run
// to end with (exit status 1), so tests and nightly jobs see it.
func writeResults(dir string, run *results.Run, schemaErr *error) error {
	err := results.WriteDir(dir, run)
	if err != nil && errors.Is(err, results.ErrSchema) {
		if *schemaErr == nil {
			*schemaErr = fmt.Errorf("%w: %w", ErrResultsSchema, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// ErrResultsSchema is returned (wrapped) by a run whose results.json did
// not match its schema (see results.Validate). It matches ErrVerification
// (errors.Is), so the run exits with status 1, not as bad input.
var ErrResultsSchema error = schemaMismatch{}

type schemaMismatch struct{}

func (schemaMismatch) Error() string        { return "results written, but" }
func (schemaMismatch) Is(target error) bool { return target == ErrVerification }

// remaining estimates the time left from the cells done so far, as
// " (about 3m10s left)", or "" before the first cell ends.
func remaining(elapsed time.Duration, done, total int) string {
	if done == 0 || done >= total {
		return ""
	}
	left := elapsed / time.Duration(done) * time.Duration(total-done)
	return fmt.Sprintf(" (about %s left)", left.Round(time.Second))
}

// cellProblem says what went wrong in a cell, or "" when it ran and every
// verification passed.
func cellProblem(c results.Cell) string {
	if c.Error != "" {
		return c.Error
	}
	for _, ph := range c.Phases {
		if ph.Verify == "fail" {
			return fmt.Sprintf("phase %s: verification failed: %s", ph.Name, ph.VerifyDetail)
		}
	}
	return ""
}

// EffectiveConfig is the run's configuration as results.json records it
// (see results/schema/results.schema.json): snake_case keys, durations as
// strings, the workload spec and phases after flag overrides, and the
// indexer's settings after its defaults — what the cells ran, not what the
// scenario happened to spell out.
func (p *plan) EffectiveConfig() (map[string]any, error) {
	wl, err := EffectiveWorkload(p.scenario, p.cfg.Overrides)
	if err != nil {
		return nil, err
	}
	wlMap, err := yamlToJSONValue(wl)
	if err != nil {
		return nil, fmt.Errorf("workload spec: %w", err)
	}
	phases, err := yamlToJSONValue(p.effectivePhases())
	if err != nil {
		return nil, fmt.Errorf("scenario phases: %w", err)
	}
	overrides := map[string]any{}
	if o := p.cfg.Overrides; o.Seed != nil {
		overrides["seed"] = *o.Seed
	}
	if o := p.cfg.Overrides; o.Docs != nil {
		overrides["docs"] = *o.Docs
	}
	if o := p.cfg.Overrides; o.Vbuckets != nil {
		overrides["vbuckets"] = *o.Vbuckets
	}
	if o := p.cfg.Overrides; o.Duration != 0 {
		overrides["duration"] = o.Duration.String()
	}
	cfg := map[string]any{
		"scenario":      p.scenario.Name,
		"scenario_yaml": string(p.source),
		"workload":      wlMap,
		"indexer":       effectiveIndexer(p.scenario.Indexer, wl.Vbuckets),
		"phases":        phases,
		"engines":       p.engines,
		"dirs":          append([]string{}, p.dirs...),
		"cores":         p.cores,
		"repeat":        p.cfg.Repeat,
		"verify":        p.cfg.Verify,
		"overrides":     overrides,
		"slowdown":      p.cfg.Slowdown,
		"topology":      p.cfg.Topology,
		"cpu_profile":   p.cfg.CPUProfile,
	}
	if len(p.cfg.Etcd) > 0 {
		cfg["etcd"] = p.cfg.Etcd
	}
	if p.cfg.MetricsAddr != "" {
		cfg["metrics_addr"] = p.cfg.MetricsAddr
	}
	return cfg, nil
}

// effectiveIndexer is the indexer configuration every cell's index node
// gets from the scenario's settings (indexerConfig, as the pipeline builds
// it), after the indexer's own defaults.
func effectiveIndexer(s IndexerSettings, vbuckets int) map[string]any {
	c := indexerConfig(s, engines.Engine{}, engines.Options{}, "", vbuckets)
	c.EnsureDefaults()
	return map[string]any{
		"num_vbuckets":           c.NumVbuckets,
		"snapshot_interval":      c.SnapshotInterval.String(),
		"persist_interval":       c.PersistInterval.String(),
		"max_rollbacks":          c.MaxRollbacks,
		"st_mode":                c.STMode,
		"durability":             c.Durability.String(),
		"queue_size":             c.QueueSize,
		"flush_batch_size":       c.FlushBatchSize,
		"back_index_cache_bytes": c.BackIndexCacheBytes,
		"lag_sample_every":       c.LagSampleEvery,
		"scan_timeout":           c.ScanTimeout.String(),
	}
}

// yamlToJSONValue re-reads v's YAML form as plain maps and slices, so its
// JSON uses the same snake_case names and duration strings ("200ms") as the
// scenario files people write.
func yamlToJSONValue(v any) (any, error) {
	data, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// probeEtcd checks that an etcd cluster answers at endpoints, so a wrong
// address is bad input before any cell starts.
func probeEtcd(endpoints []string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("--etcd %s: %w", strings.Join(endpoints, ","), err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "/idxbench/probe"); err != nil {
		return fmt.Errorf("--etcd %s: no etcd answers: %w", strings.Join(endpoints, ","), err)
	}
	return nil
}
