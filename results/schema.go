package results

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// SchemaVersion is the version of results.json this package writes. Fields
// may be added freely; renaming or removing one needs a bump, and ReadRun
// refuses files of a version it does not know. The JSON Schema in
// schema/results.schema.json describes it (see Validate).
//
// Version 2 made config snake_case with durations as strings and the
// indexer's effective settings, and a cell's engine_options a map of the
// settings that apply to its engine (version 1 had one line; ReadRun turns
// it into the map with ParseSettings).
const SchemaVersion = 2

// Verification outcomes of a phase.
const (
	VerifyPass    = "pass"
	VerifyFail    = "fail"
	VerifySkipped = "skipped"
)

// Run is one invocation of `idxbench run`: a scenario over a matrix of
// cells (engine × data dir × cores × repeat).
type Run struct {
	Schema   int    `json:"schema"`
	Seed     uint64 `json:"seed"`
	Scenario string `json:"scenario"`
	// Config is the full effective configuration: the scenario after flag
	// overrides, so the run can be reproduced from the file alone.
	Config  map[string]any `json:"config"`
	Machine Machine        `json:"machine"`
	Started time.Time      `json:"started"`
	// Finished is zero while the run is still going or was interrupted.
	Finished time.Time `json:"finished"`
	// Partial marks a run that did not finish (interrupted, or written
	// between cells); its cells are complete, but some may be missing.
	Partial bool   `json:"partial"`
	Cells   []Cell `json:"cells"`
	// Summary is derived from Cells when the run is written: per phase of
	// every engine, data dir and core count, each metric's median, range
	// and (with enough repeats) coefficient of variation.
	Summary []Group `json:"summary,omitempty"`
	// Warnings are problems found while writing the run (for example a
	// metric that was not a finite number and was dropped).
	Warnings []string `json:"warnings,omitempty"`
}

// Machine records the facts that make numbers comparable or not.
type Machine struct {
	CPUModel    string `json:"cpu_model"`
	Cores       int    `json:"cores"`
	MemoryBytes uint64 `json:"memory_bytes"`
	// Kernel is the operating system and kernel release ("Linux 6.1.0-18-amd64").
	Kernel      string    `json:"kernel"`
	GoVersion   string    `json:"go_version"`
	GitRevision string    `json:"git_revision"`
	Hostname    string    `json:"hostname,omitempty"`
	DataDirs    []DirInfo `json:"data_dirs"`
}

// DirInfo describes one data directory (one disk of the matrix).
type DirInfo struct {
	Path       string `json:"path"`
	Label      string `json:"label,omitempty"`
	Filesystem string `json:"filesystem"`
	// Device is the mounted source ("/dev/nvme0n1p2"), when known.
	Device    string `json:"device,omitempty"`
	FreeBytes uint64 `json:"free_bytes"`
}

// Cell is one engine on one data dir with one core count, one repeat.
type Cell struct {
	Engine string `json:"engine"`
	// Dir is the data directory's label (d0, d1, …; see Machine.DataDirs),
	// not its path, so runs on different temporary paths still compare.
	Dir    string `json:"dir"`
	Cores  int    `json:"cores"`
	Repeat int    `json:"repeat"`
	// EngineOptions are the effective settings that apply to the cell's
	// engine, defaults included ("cache": "8388608", "compression":
	// "snappy"), and an injected slowdown when there was one.
	EngineOptions map[string]string `json:"engine_options"`
	// EngineDescription is the engine's own one-line account of those
	// settings, with what does not apply to it ("not applicable: …").
	EngineDescription string `json:"engine_description,omitempty"`
	Durability        string `json:"durability"`
	// CPUs are the CPUs the cell's own process was pinned to (in the procs
	// topology its node processes' CPUs are in Nodes).
	CPUs []int `json:"cpus,omitempty"`
	// Error is why the cell could not finish; its phases are those that did.
	Error  string  `json:"error,omitempty"`
	Phases []Phase `json:"phases"`
	// Topology is how the cell's nodes were laid out: "inproc" (one
	// process) or "procs" (a process per node, listed in Nodes).
	Topology string `json:"topology,omitempty"`
	Nodes    []Node `json:"nodes,omitempty"`
}

// Node is one node process of a cell.
type Node struct {
	// Role is "kv" or "index".
	Role string `json:"role"`
	Pid  int    `json:"pid"`
	// CPUs are the CPUs the process was pinned to.
	CPUs []int `json:"cpus"`
}

// Phase is one phase of the scenario as one cell ran it.
type Phase struct {
	Name string `json:"name"`
	// Verify is VerifyPass, VerifyFail or VerifySkipped.
	Verify       string `json:"verify"`
	VerifyDetail string `json:"verify_detail,omitempty"`
	// Metrics is flat; every name carries its unit (see Better).
	Metrics map[string]float64 `json:"metrics"`
	// Series holds per-second samples for charts. The harness may leave it
	// empty and append ticks to ticks.jsonl instead; AttachTicks fills it
	// from there.
	Series []Tick `json:"series,omitempty"`
	// Steps are a capacity phase's steps in the order they ran, one row
	// per rate tried; Capacity is what the search concluded. Both are
	// absent from other phases.
	Steps    []Step    `json:"steps,omitempty"`
	Capacity *Capacity `json:"capacity,omitempty"`
}

// Step is one rate a capacity search tried: open-loop ingest at a target
// rate for a period, judged against the phase's SLO.
type Step struct {
	TargetPerSec   float64 `json:"target_mutations_per_sec"`
	AchievedPerSec float64 `json:"achieved_mutations_per_sec"`
	Seconds        float64 `json:"seconds"`
	Mutations      int64   `json:"mutations"`
	// Pass says whether the step met every condition; Why names each one
	// it missed ("lag p99 1.8s > 1s; queue grew by 12000"), empty on a pass.
	Pass bool   `json:"pass"`
	Why  string `json:"why,omitempty"`
	// Index lag over the step (emission to visibility in a snapshot).
	LagP50Ms float64 `json:"index_lag_p50_ms"`
	LagP99Ms float64 `json:"index_lag_p99_ms"`
	// ScanP99Ms is the request_plus scan p99 under the step's ingest; 0
	// when the SLO sets no scan bound.
	ScanP99Ms  float64 `json:"scan_p99_ms,omitempty"`
	ScanErrors int64   `json:"scan_errors,omitempty"`
	// PendingStart and PendingEnd are the mutations the bucket held that
	// no snapshot covered, at the step's start and end.
	PendingStart int64 `json:"pending_start"`
	PendingEnd   int64 `json:"pending_end"`
	// PendingGrowth is how much the backlog grew over the step, read from
	// a least-squares line through samples taken every 100ms (so a
	// momentary stall at either end does not decide it); it is what the
	// step is judged on.
	PendingGrowth float64 `json:"pending_growth"`
	// CPUSeconds is the CPU every process of the cell used in the step;
	// BytesWritten what they wrote to storage.
	CPUSeconds   float64 `json:"cpu_seconds"`
	BytesWritten float64 `json:"bytes_written"`
	// EngineBytesWritten is what the engines report writing (-1 when they
	// do not count).
	EngineBytesWritten float64 `json:"engine_bytes_written"`
}

// Capacity is what a capacity search concluded.
type Capacity struct {
	// SustainablePerSec is the split between passing and failing steps
	// that misclassifies the fewest (0: no rate tried passed).
	SustainablePerSec float64 `json:"sustainable_mutations_per_sec"`
	// Misclassified is how many steps fall on the wrong side of it: 0 for
	// a clean search, more when the system was noisy around its limit.
	Misclassified int `json:"misclassified_steps"`
	// SLO the steps were judged against.
	LagP99Ms  float64 `json:"slo_lag_p99_ms"`
	ScanP99Ms float64 `json:"slo_scan_p99_ms,omitempty"`
	// Stop says why the search ended: "converged", "max_rate",
	// "nothing_sustainable" or "bound" (its time bound ran out first, so
	// the answer is less precise than asked).
	Stop         string  `json:"stop"`
	BoundSeconds float64 `json:"bound_seconds"`
}

// Tick is one second of one operation type in a phase.
type Tick struct {
	// Elapsed is seconds since the phase began.
	Elapsed   float64 `json:"elapsed"`
	Op        string  `json:"op"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50Ms     float64 `json:"p50_ms"`
	P95Ms     float64 `json:"p95_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	Errors    int64   `json:"errors"`
	// Gauges are pipeline levels at the tick (mutation_queue_size,
	// docs_pending, st_age_ms, …).
	Gauges map[string]float64 `json:"gauges,omitempty"`
}

// CellKey identifies a cell within a run.
type CellKey struct {
	Engine string `json:"engine"`
	Dir    string `json:"dir"`
	Cores  int    `json:"cores"`
	Repeat int    `json:"repeat"`
}

// Key returns the cell's identity.
func (c *Cell) Key() CellKey {
	return CellKey{Engine: c.Engine, Dir: c.Dir, Cores: c.Cores, Repeat: c.Repeat}
}

// String formats the key as engine/dir/cN/rN, the form error messages use.
func (k CellKey) String() string {
	return k.Engine + "/" + k.Dir + "/c" + itoa(k.Cores) + "/r" + itoa(k.Repeat)
}

// Phase returns the phase named name, or nil.
func (c *Cell) Phase(name string) *Phase {
	for i := range c.Phases {
		if c.Phases[i].Name == name {
			return &c.Phases[i]
		}
	}
	return nil
}

// VerifyCounts counts the run's phases by verification outcome, and the
// cells that ended in an error.
func (r *Run) VerifyCounts() (pass, fail, skipped, cellErrors int) {
	for _, c := range r.Cells {
		if c.Error != "" {
			cellErrors++
		}
		for _, p := range c.Phases {
			switch p.Verify {
			case VerifyPass:
				pass++
			case VerifyFail:
				fail++
			default:
				skipped++
			}
		}
	}
	return
}

// ParseSettings turns an engine's one-line description of its settings
// ("cache=8388608 memtable=4194304 compression=snappy", "bbolt v1.4.0:
// page_size=4096 …; cache: not applicable") into a map of its key=value
// words. Words without '=' are left out: they are prose for people, kept
// whole in Cell.EngineDescription.
func ParseSettings(desc string) map[string]string {
	m := map[string]string{}
	for _, w := range strings.Fields(desc) {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			continue
		}
		m[k] = strings.TrimRight(v, ",;")
	}
	return m
}

// UnmarshalJSON reads a cell of any schema version: version 1 wrote
// engine_options as one line, which becomes the map (ParseSettings) and the
// description.
func (c *Cell) UnmarshalJSON(data []byte) error {
	type plain Cell
	aux := struct {
		*plain
		// Shadows plain's field, so either form reaches the check below.
		EngineOptions json.RawMessage `json:"engine_options"`
	}{plain: (*plain)(c)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	c.EngineOptions = nil
	raw := bytes.TrimSpace(aux.EngineOptions)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
	case raw[0] == '"':
		var line string
		if err := json.Unmarshal(raw, &line); err != nil {
			return fmt.Errorf("engine_options: %w", err)
		}
		c.EngineOptions = ParseSettings(line)
		if c.EngineDescription == "" {
			c.EngineDescription = line
		}
	default:
		if err := json.Unmarshal(raw, &c.EngineOptions); err != nil {
			return fmt.Errorf("engine_options: %w", err)
		}
	}
	return nil
}
