package harness

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/idxbench/idxbench/indexer"
	"github.com/idxbench/idxbench/workload"
)

// Scenario is a workload spec plus the indexer's settings and a list of
// phases run in order on each cell of the matrix.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Workload is the workload spec (workload.ParseSpec's format), kept raw
	// so its own strict parser owns it.
	Workload yaml.RawMessage `yaml:"workload,omitempty"`
	Indexer  IndexerSettings `yaml:"indexer,omitempty"`
	// IndexNodes is how many index nodes the topology runs; default one
	// more than the most replicas any index asks for.
	IndexNodes int     `yaml:"index_nodes,omitempty"`
	Phases     []Phase `yaml:"phases"`
}

// maxIndexNodes bounds Scenario.IndexNodes.
const maxIndexNodes = 8

// indexNodes is the scenario's index node count over spec's indexes.
func (s *Scenario) indexNodes(spec workload.Spec) int {
	if s.IndexNodes > 0 {
		return s.IndexNodes
	}
	n := 1
	for _, d := range spec.Indexes {
		n = max(n, d.Replicas+1)
	}
	return n
}

// IndexerSettings are the indexer options a scenario may set; zero values
// take the indexer's defaults.
type IndexerSettings struct {
	// SnapshotInterval is the in-memory snapshot (stability timestamp)
	// interval; default 200ms, at least 10ms.
	SnapshotInterval Duration `yaml:"snapshot_interval,omitempty"`
	// PersistInterval is the persistent snapshot interval; default 5s.
	PersistInterval Duration `yaml:"persist_interval,omitempty"`
	// MaxRollbacks is how many persistent snapshots are kept; default 5.
	MaxRollbacks int `yaml:"max_rollbacks,omitempty"`
	// STMode is "local" (default) or "coordinator".
	STMode string `yaml:"st_mode,omitempty"`
	// STOnDemand (local mode only) makes a waiting request_plus or at_plus
	// scan promote a stability timestamp as soon as the stream covers its
	// vector instead of at the next snapshot tick; default false.
	STOnDemand bool `yaml:"st_on_demand,omitempty"`
	// VerifyOnOpen checks each slice's store when the index node reopens
	// it: "none" (default), "quick" (the engine's quick checks and the
	// stored vector) or "full" (the engine's full checks and the back index
	// against the main index). A slice that fails is rebuilt from zero.
	VerifyOnOpen string `yaml:"verify_on_open,omitempty"`
	// Durability of each flushed batch: "nosync" (default) or "sync".
	Durability string `yaml:"durability,omitempty"`
	// QueueSize bounds the mutation queues (key versions); 0 = default.
	QueueSize int `yaml:"queue_size,omitempty"`
	// FlushBatchSize is the number of key versions per engine batch.
	FlushBatchSize int `yaml:"flush_batch_size,omitempty"`
	// BackIndexCacheBytes bounds a per-slice write-through cache of the
	// back index, so upserts need not read the store; 0 (default) reads it.
	BackIndexCacheBytes int64 `yaml:"back_index_cache_bytes,omitempty"`
	// RollbackQueues is what a KV rollback does with the mutation queues:
	// "discard" (default) or "keep" (indexer.Config.RollbackQueues).
	RollbackQueues string `yaml:"rollback_queues,omitempty"`
}

// Phase types; each registers itself (registerPhase) beside its run
// function.
const (
	PhaseLoad      = "load"        // load the initial documents and build every index; verify
	PhaseIngest    = "ingest"      // apply mutations for a count or a duration, optionally at a rate
	PhaseScan      = "scan"        // scan clients for a duration, optionally under ingest
	PhasePersist   = "persist"     // take a persistent snapshot now and time it
	PhaseRawIngest = "raw-ingest"  // write the slice entry stream straight into the engine (baseline)
	PhaseRollback  = "rollback"    // KV failover → indexer rolls back to a persistent snapshot and catches up
	PhaseRestart   = "restart"     // clean indexer restart: reopen, recover, catch up
	PhaseDropIndex = "drop-index"  // drop an index while mutations stream in
	PhaseBuild     = "build-index" // build deferred indexes from one INIT stream while MAINT ingests
	PhaseCapacity  = "capacity"    // search for the highest ingest rate that meets an SLO
	PhaseKVRestart = "kv-restart"  // KV (memcached) restarts: clean, or losing the unpersisted tail of some vbuckets
	PhaseReconfig  = "reconfigure" // restart the index node with other settings (st_mode, st_on_demand, verify_on_open)
)

// Rollback points: where the failed-over vbuckets' new branch starts.
const (
	// PointRecent branches halfway between the newest persistent snapshot
	// and the vbucket's high seqno: the indexer rolls back to that snapshot.
	PointRecent = "recent"
	// PointBoundary branches exactly at the newest persistent snapshot.
	PointBoundary = "boundary"
	// PointUnknownVbuuid loses no data but asks for the streams with a
	// vbuuid the bucket does not know: the indexer rolls back to zero.
	PointUnknownVbuuid = "unknown-vbuuid"
	// PointUnpersisted branches halfway between the indexer's newest
	// persistent snapshot at the time of the failover and the vbucket's
	// high seqno: KV loses only what the indexer had not persisted, so
	// the indexer rolls back to that newest snapshot.
	PointUnpersisted = "unpersisted"
	// PointBelowRestart (a restart phase's) fails vbuckets over while the
	// index node is down, below the vector it restarts from.
	PointBelowRestart = "below-restart"
)

// Phase is one step of a scenario. Which fields apply depends on Type;
// Validate rejects the ones that do not.
type Phase struct {
	Type string `yaml:"type"`
	// Name labels the phase in results; default the type.
	Name string `yaml:"name,omitempty"`
	// Mutations to apply (ingest); 0 means run for Duration.
	Mutations int `yaml:"mutations,omitempty"`
	// Duration of an ingest or scan phase.
	Duration Duration `yaml:"duration,omitempty"`
	// Rate is the target mutations/s (ingest, or the background ingest of a
	// scan phase); 0 is closed loop.
	Rate float64 `yaml:"rate,omitempty"`
	// Scan settings.
	Kind        string `yaml:"kind,omitempty"`        // range|lookup|count|all; default range
	Consistency string `yaml:"consistency,omitempty"` // any|request_plus|at_plus; default any
	Clients     int    `yaml:"clients,omitempty"`     // concurrent scan clients; default 2
	Limit       int    `yaml:"limit,omitempty"`       // entries per scan; default 100
	Index       string `yaml:"index,omitempty"`       // index scanned; default the first secondary index
	UnderIngest bool   `yaml:"under_ingest,omitempty"`
	// ScanRate paces a scan phase's clients open loop at this many scans/s
	// in all (latency counted from each scan's intended start); 0 (default)
	// is closed loop, each client as fast as it can.
	ScanRate float64 `yaml:"scan_rate,omitempty"`
	// Drift samples resident set, goroutines, queue and index lag every
	// second of an ingest or scan phase and judges them for drift (see
	// drift.go): the phase fails when they are not flat after warm-up.
	Drift bool `yaml:"drift,omitempty"`
	// Raw-ingest settings.
	Entries int `yaml:"entries,omitempty"`
	// Rollback settings: how many vbuckets fail over (0: all) and where
	// their new branch starts (recent, boundary, unknown-vbuuid,
	// unpersisted). A rollback phase with under_ingest fails over while
	// mutations stream in (at rate; 0 closed loop), without waiting for
	// the index to catch up, so the mutation queues hold what the flusher
	// has not applied yet.
	Vbuckets int    `yaml:"vbuckets,omitempty"`
	Point    string `yaml:"point,omitempty"`
	// Mode of a kv-restart phase: clean (default), lose-tail (the chosen
	// vbuckets lose their unpersisted tail and keep their vbuuid) or
	// lose-tail-failover (the same under a new failover-log entry).
	Mode string `yaml:"mode,omitempty"`
	// RawRatio makes an ingest phase replay every call the stores got
	// (from the cell's start: the earlier calls untimed) straight into
	// fresh stores afterwards, reporting the pipeline's rate as a fraction
	// of that raw rate.
	RawRatio bool `yaml:"raw_ratio,omitempty"`
	// Indexes a build-index phase builds together (default: every
	// deferred index not built yet).
	Indexes []string `yaml:"indexes,omitempty"`
	// Fault is what a phase injects: a fault phase's fault on the cluster
	// (see PhaseFault), or a build-index phase's while its build is in
	// CATCHUP — kv-rollback (vbuckets fail over; 0: all) or restart (the
	// index node) — after which the catch-up is discarded and the build
	// starts again. Down is how long a fault phase's fault lasts before it
	// heals (default: per fault).
	Fault string   `yaml:"fault,omitempty"`
	Down  Duration `yaml:"down,omitempty"`
	// Wait: false ends a build-index phase once its build is in CATCHUP,
	// leaving it catching up for the next phase, a build-index phase, to
	// complete (default true: the phase ends with its indexes ACTIVE).
	Wait *bool `yaml:"wait,omitempty"`
	// Capacity search settings (capacity.go): the SLO each step is judged
	// against, the length of a step, the factor the rate rises by, the
	// highest rate tried, the rest after a failed step, the precision the
	// search stops at, and how far the backlog may grow in a step.
	SLO        SLO      `yaml:"slo,omitempty"`
	Step       Duration `yaml:"step,omitempty"`
	Growth     float64  `yaml:"growth,omitempty"`
	MaxRate    float64  `yaml:"max_rate,omitempty"`
	CoolOff    Duration `yaml:"cool_off,omitempty"`
	Precision  float64  `yaml:"precision,omitempty"`
	QueueSlack Duration `yaml:"queue_slack,omitempty"`
	// Reconfigure settings: the indexer settings a reconfigure phase
	// restarts the index node with, for the phases after it (unset ones
	// keep their values).
	STMode       string `yaml:"st_mode,omitempty"`
	STOnDemand   *bool  `yaml:"st_on_demand,omitempty"`
	VerifyOnOpen string `yaml:"verify_on_open,omitempty"`
	// Verify compares every index with the oracle at the end of the phase;
	// default true for load and ingest.
	Verify *bool `yaml:"verify,omitempty"`
}

// Label is the phase's name in results.
func (p Phase) Label() string {
	if p.Name != "" {
		return p.Name
	}
	return p.Type
}

// Verifies reports whether the phase ends with a verification.
func (p Phase) Verifies() bool {
	if p.Verify != nil {
		return *p.Verify
	}
	k := phaseKinds[p.Type]
	return k != nil && k.verifies
}

// Duration is a time.Duration written as "200ms", "5s", "2m" in YAML.
type Duration time.Duration

func (d Duration) MarshalYAML() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalYAML(b []byte) error {
	s := strings.Trim(strings.TrimSpace(string(b)), `"'`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (like 500ms, 10s, 2m)", s)
	}
	if v < 0 {
		return fmt.Errorf("duration %s is negative", s)
	}
	*d = Duration(v)
	return nil
}

// D is the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParseScenario decodes a scenario strictly (unknown fields are errors) and
// validates it. The workload section is checked by the caller, which owns
// the workload spec parser.
func ParseScenario(data []byte) (*Scenario, error) {
	var s Scenario
	if err := decodeScenario(data, &s); err != nil {
		return nil, err
	}
	if err := explicitZeros(data, &s); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// decodeScenario decodes strictly. go-yaml v1.19.2 panics on some malformed
// input (goccy/go-yaml#735, found by FuzzParseScenario); that becomes an
// error too.
func decodeScenario(data []byte, s *Scenario) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed YAML (the decoder failed: %v)", r)
		}
	}()
	if err := yaml.UnmarshalWithOptions(data, s, yaml.DisallowUnknownField()); err != nil {
		return errors.New(oneLine(yaml.FormatError(err, false, false)))
	}
	return nil
}

// oneLine folds a multi-line parser message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Validate checks every field it owns and names the first bad one by path.
func (s *Scenario) Validate() error {
	ix := s.Indexer
	if ix.SnapshotInterval != 0 && ix.SnapshotInterval.D() < 10*time.Millisecond {
		return fmt.Errorf("indexer.snapshot_interval: %s is below the 10ms minimum", ix.SnapshotInterval.D())
	}
	if ix.PersistInterval != 0 && ix.PersistInterval.D() < ix.SnapshotInterval.D() {
		return fmt.Errorf("indexer.persist_interval: %s is shorter than the snapshot interval", ix.PersistInterval.D())
	}
	if ix.MaxRollbacks < 0 || ix.MaxRollbacks > 100 {
		return fmt.Errorf("indexer.max_rollbacks: %d out of range [1,100]", ix.MaxRollbacks)
	}
	switch ix.STMode {
	case "", "local", "coordinator":
	default:
		return fmt.Errorf("indexer.st_mode: %q is not local or coordinator", ix.STMode)
	}
	switch ix.VerifyOnOpen {
	case "", indexer.VerifyNone, indexer.VerifyQuick, indexer.VerifyFull:
	default:
		return fmt.Errorf("indexer.verify_on_open: %q is not none, quick or full", ix.VerifyOnOpen)
	}
	if ix.STOnDemand && ix.STMode == "coordinator" {
		return errors.New("indexer.st_on_demand: needs st_mode local (the coordinator chooses every stability timestamp)")
	}
	switch ix.Durability {
	case "", "nosync", "sync":
	default:
		return fmt.Errorf("indexer.durability: %q is not nosync or sync", ix.Durability)
	}
	switch ix.RollbackQueues {
	case "", indexer.RollbackQueuesDiscard, indexer.RollbackQueuesKeep:
	default:
		return fmt.Errorf("indexer.rollback_queues: %q is not %s or %s", ix.RollbackQueues, indexer.RollbackQueuesDiscard, indexer.RollbackQueuesKeep)
	}
	if ix.QueueSize < 0 {
		return fmt.Errorf("indexer.queue_size: %d is negative", ix.QueueSize)
	}
	if ix.BackIndexCacheBytes < 0 {
		return fmt.Errorf("indexer.back_index_cache_bytes: %d is negative", ix.BackIndexCacheBytes)
	}
	if ix.FlushBatchSize < 0 {
		return fmt.Errorf("indexer.flush_batch_size: %d is negative", ix.FlushBatchSize)
	}
	if s.IndexNodes < 0 || s.IndexNodes > maxIndexNodes {
		return fmt.Errorf("index_nodes: %d out of range [1,%d]", s.IndexNodes, maxIndexNodes)
	}
	if len(s.Phases) == 0 {
		return errors.New("phases: a scenario needs at least one phase")
	}
	seen := map[string]bool{}
	for i := range s.Phases {
		p := &s.Phases[i]
		at := fmt.Sprintf("phases[%d]", i)
		if err := p.validate(at); err != nil {
			return err
		}
		if seen[p.Label()] {
			return fmt.Errorf("%s.name: %q is used by an earlier phase", at, p.Label())
		}
		seen[p.Label()] = true
	}
	return checkPendingBuilds(s.Phases)
}

func (p *Phase) validate(at string) error {
	k := phaseKinds[p.Type]
	if k == nil {
		return fmt.Errorf("%s.type: unknown phase type %q (known: %s)", at, p.Type, strings.Join(PhaseTypes(), ", "))
	}
	if err := p.checkSettings(at, k); err != nil {
		return err
	}
	if p.Mutations < 0 {
		return fmt.Errorf("%s.mutations: %d is negative", at, p.Mutations)
	}
	if p.Rate < 0 {
		return fmt.Errorf("%s.rate: %g is negative", at, p.Rate)
	}
	if k.validate != nil {
		return k.validate(p, at)
	}
	return nil
}

//go:embed scenarios/*.yaml
var builtin embed.FS

// BuiltinScenarios lists the built-in scenarios' names, sorted.
func BuiltinScenarios() []string {
	ents, _ := builtin.ReadDir("scenarios")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// LoadScenario returns the built-in scenario called nameOrFile, or else
// reads it as a file. The returned source is the YAML as given.
func LoadScenario(nameOrFile string) (*Scenario, []byte, error) {
	data, err := builtin.ReadFile(path.Join("scenarios", nameOrFile+".yaml"))
	if err != nil {
		if !strings.ContainsAny(nameOrFile, "/.") {
			return nil, nil, fmt.Errorf("unknown scenario %q (built-in: %s; or give a file path)",
				nameOrFile, strings.Join(BuiltinScenarios(), ", "))
		}
		data, err = os.ReadFile(nameOrFile)
		if err != nil {
			return nil, nil, fmt.Errorf("scenario file: %w", err)
		}
	}
	s, err := ParseScenario(data)
	if err != nil {
		return nil, nil, fmt.Errorf("scenario %s: %w", nameOrFile, err)
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(path.Base(nameOrFile), ".yaml")
	}
	return s, bytes.TrimSpace(data), nil
}
