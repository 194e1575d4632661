package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/idxbench/idxbench/results"
)

// CellJob is everything a child process needs to run one cell of the
// matrix. The parent sends it as JSON on the child's standard input.
type CellJob struct {
	Engine string `json:"engine"`
	// DataDir is the data directory (disk) the cell's stores live under; the
	// cell makes its own subdirectory there and removes it afterwards.
	DataDir  string `json:"data_dir"`
	DirLabel string `json:"dir_label"`
	Cores    int    `json:"cores"`
	Repeat   int    `json:"repeat"`
	// Scenario is the scenario's YAML, and Overrides the flags that override
	// its workload values.
	Scenario  []byte    `json:"scenario"`
	Overrides Overrides `json:"overrides"`
	Verify    bool      `json:"verify"`
	// ResultPath is where the child writes its results.Cell as JSON.
	ResultPath string `json:"result_path"`
	// TicksPath, when set, is a ticks.jsonl file the child appends to.
	TicksPath   string `json:"ticks_path,omitempty"`
	MetricsAddr string `json:"metrics_addr,omitempty"`
	// Quiet suppresses the per-second tick lines.
	Quiet bool `json:"quiet,omitempty"`
	// Slowdown, when positive, makes every engine batch take that fraction
	// longer: an injected regression (see slowedEngine).
	Slowdown float64 `json:"slowdown,omitempty"`
	// ProfileDir, when set, receives a CPU profile of every phase (and of
	// a raw_ratio phase's replay), named engine-dir-cCORES-rREPEAT-phase.
	ProfileDir string `json:"profile_dir,omitempty"`
	// Topology is TopologyInproc (the default) or TopologyProcs; with
	// procs, IndexCPUs and KVCPUs are the node processes' CPUs (the
	// cell's own process runs on KVCPUs).
	Topology  string `json:"topology,omitempty"`
	IndexCPUs []int  `json:"index_cpus,omitempty"`
	KVCPUs    []int  `json:"kv_cpus,omitempty"`
	// Executable starts the node processes; default os.Executable().
	Executable string `json:"executable,omitempty"`
	// Etcd lists an external etcd cluster for a procs topology (default:
	// an embedded member in a process of its own).
	Etcd []string `json:"etcd,omitempty"`
	// Attach is the etcd prefix of a cluster of nodes started by hand
	// that the cell drives instead of starting its own (procs, with Etcd).
	Attach string `json:"attach,omitempty"`
}

// Overrides are command-line values that replace the scenario's.
type Overrides struct {
	Seed     *uint64       `json:"seed,omitempty"`
	Docs     *int          `json:"docs,omitempty"`
	Vbuckets *int          `json:"vbuckets,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	// Capacity replaces the settings of every capacity phase (the
	// capacity command's flags).
	Capacity *CapacityOverrides `json:"capacity,omitempty"`
}

// ChildEnv is set in a child process's environment; a binary that sees it
// runs RunChild instead of its usual main.
const ChildEnv = "IDXBENCH_CHILD_CELL"

// RunChild is a child process's whole life: read the job from stdin, run the
// cell, write the result. Its error is the cell's failure.
func RunChild(ctx context.Context, stdin io.Reader, stderr io.Writer) error {
	var job CellJob
	if err := json.NewDecoder(stdin).Decode(&job); err != nil {
		return fmt.Errorf("child: read job: %w", err)
	}
	cell, err := RunCell(ctx, job, stderr)
	if err != nil {
		cell.Error = err.Error()
	}
	data, merr := json.Marshal(cell)
	if merr != nil {
		return merr
	}
	if werr := writeFileAtomic(job.ResultPath, data); werr != nil {
		return werr
	}
	return err
}

// runChildProcess starts a child running job on the first job.Cores CPUs with
// GOMAXPROCS set to match, waits for it, and returns the cell it reported.
// A child that dies without reporting yields a cell carrying the error.
func runChildProcess(ctx context.Context, exe string, job CellJob, stderr io.Writer) results.Cell {
	cell := results.Cell{Engine: job.Engine, Dir: job.DirLabel, Cores: job.Cores, Repeat: job.Repeat, Phases: []results.Phase{}}
	in, err := json.Marshal(job)
	if err != nil {
		cell.Error = err.Error()
		return cell
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), ChildEnv+"=1", "GOMAXPROCS="+strconv.Itoa(job.Cores))
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	// Interrupt rather than kill on cancel, so the child can close its stores.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	cpus, pinErr := firstCPUs(job.Cores)
	start := func() error {
		if pinErr != nil {
			return pinErr
		}
		return startPinnedTo(cmd, cpus)
	}
	if job.Topology == TopologyProcs {
		cpus = job.KVCPUs
		// The cell's own process (driver, oracle) runs beside the KV node.
		cmd.Env = append(os.Environ(), ChildEnv+"=1", "GOMAXPROCS="+strconv.Itoa(len(job.KVCPUs)))
		start = func() error { return startPinnedTo(cmd, job.KVCPUs) }
	}
	if err := start(); err != nil {
		cell.Error = fmt.Sprintf("start child: %v", err)
		return cell
	}
	waitErr := cmd.Wait()
	data, err := os.ReadFile(job.ResultPath)
	if err != nil {
		if waitErr == nil {
			waitErr = err
		}
		cell.Error = fmt.Sprintf("child process failed without a result: %v", waitErr)
		return cell
	}
	if err := json.Unmarshal(data, &cell); err != nil {
		cell.Error = fmt.Sprintf("child result %s: %v", job.ResultPath, err)
	}
	cell.CPUs = cpus
	return cell
}

// firstCPUs is the first cores CPUs this process may use, the set a
// cell's child process is pinned to.
func firstCPUs(cores int) ([]int, error) {
	avail := availableCPUs()
	if cores > len(avail) {
		return nil, fmt.Errorf("%d cores asked for, %d available", cores, len(avail))
	}
	return avail[:cores], nil
}

// startPinnedTo starts cmd with its CPU affinity limited to cpus. A forked
// child inherits the affinity of the thread that forks it, so the mask is
// set on a locked OS thread around Start and restored after.
func startPinnedTo(cmd *exec.Cmd, cpus []int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		return cmd.Start()
	}
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to CPUs %v: %w", cpus, err)
	}
	startErr := cmd.Start()
	if err := unix.SchedSetaffinity(0, &orig); err != nil && startErr == nil {
		// The thread stays locked and is discarded by the runtime when the
		// goroutine exits locked; report nothing else.
		return nil
	}
	return startErr
}

func cpusIn(s *unix.CPUSet) []int {
	var cpus []int
	for c := 0; c < 1024; c++ {
		if s.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// AvailableCores is the number of CPUs this process may run on.
func AvailableCores() int { return len(availableCPUs()) }

// availableCPUs lists the CPUs this process may run on.
func availableCPUs() []int {
	var s unix.CPUSet
	if err := unix.SchedGetaffinity(0, &s); err != nil {
		cpus := make([]int, runtime.NumCPU())
		for i := range cpus {
			cpus[i] = i
		}
		return cpus
	}
	return cpusIn(&s)
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
