package badger_test

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/badger"
	"github.com/idxbench/idxbench/engines/enginetest"
)

// The kill test runs a seeded plan of batches, recovery points and
// rollbacks against a store in a child process (this test binary, rerun),
// which kills itself with SIGKILL before or during one step. The parent
// then opens what the kill left, as the indexer does after a restart, and
// checks it against a model of the plan: the live contents are those
// before or after the step the kill interrupted, the recovery points are
// the model's, and rolling back to the newest one gives exactly the
// contents it was taken at (no write newer than the point survives, none
// older is lost).
//
// The crash test (idxbench crashtest) found a divergence whose suspect was
// this adapter's recovery points; this is the adapter's half of that
// check, in seconds and without the pipeline.

var (
	flagSeed      = flag.Uint64("seed", 0, "seed of the kill test's plans (0: derive one from the time)")
	flagKillCases = flag.Int("kill-cases", 6, "how many kill -9 cases TestKillDuringPlan runs")
)

// killChildEnv holds a killJob as JSON in a kill test's child process.
const killChildEnv = "IDXBENCH_BADGER_KILL_CHILD"

// killJob is one child's work: run steps [0, Kill) of the plan from Seed,
// then kill the process, during step Kill when Mid is set (after a delay
// of Delay), else right away.
type killJob struct {
	Dir   string
	Seed  uint64
	Steps int
	Kill  int
	Mid   bool
	Delay time.Duration
}

// killOpts keeps memtables small, so the plans flush and compact too.
var killOpts = engines.Options{CacheBytes: 1 << 20, MemtableBytes: 1 << 20,
	Extra: map[string]string{badger.ExtraIndexCacheBytes: "1048576"}}

// planStep is one step of a plan.
type planStep struct {
	kind     stepKind
	batch    engines.Batch
	id       uint64 // persist: the new recovery point; rollback: the target
	meta     []byte // persist: its meta
	drop     uint64 // persist: the oldest point to drop after it, or 0
	retained []uint64
}

type stepKind uint8

const (
	stepApply stepKind = iota
	stepPersist
	stepRollback
)

// plan is a seeded sequence of steps and, after each, the model's contents
// and recovery points.
type plan struct {
	steps  []planStep
	after  []string          // after[i]: contents after step i
	points map[uint64]string // recovery point id → contents at it
	saved  map[uint64]map[string][]byte
	metas  map[uint64][]byte // recovery point id → meta
	kept   [][]uint64        // kept[i]: retained point ids after step i
	live   map[string][]byte // the model's live contents: keyspace byte ++ key → value
	rng    *rand.Rand
	ids    uint64
	keys   [engines.NumKeyspaces]int
}

func newPlan(seed uint64, n int) *plan {
	p := &plan{points: map[uint64]string{}, saved: map[uint64]map[string][]byte{}, metas: map[uint64][]byte{}, live: map[string][]byte{},
		rng: rand.New(rand.NewPCG(seed, 0x6b696c6c)), keys: [engines.NumKeyspaces]int{400, 400, 1}}
	var retained []uint64
	for i := range n {
		var st planStep
		switch u := p.rng.IntN(100); {
		case u < 12:
			p.ids++
			st = planStep{kind: stepPersist, id: p.ids, meta: fmt.Appendf(nil, "rp%d@step%d", p.ids, i)}
			p.points[st.id], p.saved[st.id], p.metas[st.id] = p.dump(), maps.Clone(p.live), st.meta
			retained = append(retained, st.id)
			if len(retained) > 3 {
				st.drop = retained[0]
				retained = retained[1:]
			}
		case u < 18 && len(retained) > 0:
			st = planStep{kind: stepRollback, id: retained[p.rng.IntN(len(retained))]}
			retained = retained[:slices.Index(retained, st.id)+1]
			p.live = maps.Clone(p.saved[st.id])
		default:
			st.kind = stepApply
			p.fill(&st.batch, i)
		}
		st.retained = slices.Clone(retained)
		p.steps = append(p.steps, st)
		p.after = append(p.after, p.dump())
		p.kept = append(p.kept, st.retained)
	}
	return p
}

// fill adds a batch of random sets and deletes to b and applies it to the
// model.
func (p *plan) fill(b *engines.Batch, step int) {
	for range 1 + p.rng.IntN(60) {
		ks := engines.Keyspace(p.rng.IntN(2))
		key := fmt.Appendf(nil, "k%03d", p.rng.IntN(p.keys[ks]))
		mk := string([]byte{byte(ks)}) + string(key)
		if p.rng.IntN(3) == 0 {
			b.Delete(ks, key)
			delete(p.live, mk)
			continue
		}
		var v []byte
		if ks == engines.Back {
			v = fmt.Appendf(nil, "%d-%s", step, strings.Repeat("v", p.rng.IntN(200)))
		}
		b.Set(ks, key, v)
		p.live[mk] = v
	}
	ts := fmt.Appendf(nil, "%d", step)
	b.Set(engines.Meta, []byte("ts"), ts)
	p.live[string([]byte{byte(engines.Meta)})+"ts"] = ts
}

// dump formats the model as enginetest.Dump formats a store.
func (p *plan) dump() string {
	keys := make([]string, 0, len(p.live))
	for k := range p.live {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s:%q=%q\n", engines.Keyspace(k[0]), k[1:], p.live[k])
	}
	return b.String()
}

// run executes step i against s.
func (p *plan) run(s engines.Store, i int) error {
	st := &p.steps[i]
	switch st.kind {
	case stepPersist:
		if err := s.CreateRecoveryPoint(st.id, st.meta); err != nil {
			return err
		}
		if st.drop != 0 {
			return s.DropRecoveryPoint(st.drop)
		}
		return nil
	case stepRollback:
		return s.RollbackTo(st.id)
	}
	return s.Apply(&st.batch, engines.NoSync)
}

// TestKillChild is the child's side of TestKillDuringPlan; it does nothing
// in a normal test run.
func TestKillChild(t *testing.T) {
	env := os.Getenv(killChildEnv)
	if env == "" {
		t.Skip("only run as TestKillDuringPlan's child")
	}
	var job killJob
	if err := json.Unmarshal([]byte(env), &job); err != nil {
		t.Fatal(err)
	}
	p := newPlan(job.Seed, job.Steps)
	s, err := badger.Open(job.Dir, killOpts)
	if err != nil {
		t.Fatal(err)
	}
	kill := func() {
		if err := syscall.Kill(os.Getpid(), syscall.SIGKILL); err != nil {
			panic(err)
		}
		select {}
	}
	for i := range job.Kill {
		if err := p.run(s, i); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if !job.Mid {
		kill()
	}
	go func() {
		time.Sleep(job.Delay)
		kill()
	}()
	if err := p.run(s, job.Kill); err != nil {
		t.Fatalf("step %d: %v", job.Kill, err)
	}
	select {} // the killer comes
}

// TestKillDuringPlan runs kill -9 cases; each reruns with -seed.
func TestKillDuringPlan(t *testing.T) {
	if os.Getenv(killChildEnv) != "" {
		t.Skip("child")
	}
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed: %d (rerun: go test ./engines/badger -run TestKillDuringPlan -seed %d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for c := range *flagKillCases {
		job := killJob{Dir: filepath.Join(t.TempDir(), "store"), Seed: rng.Uint64(), Steps: 100 + rng.IntN(400)}
		job.Kill = rng.IntN(job.Steps)
		// Kills during a rollback are the interesting ones: aim at one
		// often.
		p := newPlan(job.Seed, job.Steps)
		if rng.IntN(2) == 0 {
			for k := job.Kill; k < job.Steps; k++ {
				if p.steps[k].kind == stepRollback {
					job.Kill = k
					break
				}
			}
		}
		job.Mid = rng.IntN(4) != 0
		job.Delay = time.Duration(rng.IntN(3000)) * time.Microsecond
		t.Run(fmt.Sprintf("case%d", c), func(t *testing.T) { checkKill(t, job, p) })
	}
}

func checkKill(t *testing.T, job killJob, p *plan) {
	env, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+string(env))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL (%v): %s", err, out)
	}
	k := job.Kill
	what := fmt.Sprintf("kill before step %d of %d", k, job.Steps)
	if job.Mid {
		what = fmt.Sprintf("kill %s into step %d of %d", job.Delay, k, job.Steps)
	}
	kind := p.steps[k].kind
	t.Logf("%s (step kind %d, target %d)", what, kind, p.steps[k].id)

	// What the model allows: the state before step k, or after it when
	// the kill may have come after (part of) it.
	before, keptBefore := "", []uint64(nil)
	if k > 0 {
		before, keptBefore = p.after[k-1], p.kept[k-1]
	}
	okStates := []string{before}
	okKept := [][]uint64{keptBefore}
	if job.Mid {
		okStates = append(okStates, p.after[k])
		okKept = append(okKept, p.kept[k])
		if kind == stepPersist && p.steps[k].drop != 0 {
			// Created, but killed before the drop.
			okKept = append(okKept, append(slices.Clone(keptBefore), p.steps[k].id))
		}
	}

	s, err := badger.Open(job.Dir, killOpts)
	if err != nil {
		t.Fatalf("%s: open: %v", what, err)
	}
	defer s.Close()
	if got := enginetest.Dump(t, s); !slices.Contains(okStates, got) {
		t.Errorf("%s: live contents are neither before nor after the step:\n got %s\nwant %s", what, got, strings.Join(okStates, "\n  or "))
	}
	rps, err := s.RecoveryPoints()
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, rp := range rps {
		ids = append(ids, rp.ID)
		if string(rp.Meta) != string(p.metas[rp.ID]) {
			t.Errorf("%s: recovery point %d has meta %q, want %q", what, rp.ID, rp.Meta, p.metas[rp.ID])
		}
	}
	if !slices.ContainsFunc(okKept, func(k []uint64) bool { return slices.Equal(k, ids) }) {
		t.Errorf("%s: recovery points %v, want one of %v", what, ids, okKept)
	}
	if len(rps) == 0 {
		return
	}
	newest := rps[len(rps)-1].ID
	if err := s.RollbackTo(newest); err != nil {
		t.Fatalf("%s: roll back to %d: %v", what, newest, err)
	}
	if got, want := enginetest.Dump(t, s), p.points[newest]; got != want {
		t.Errorf("%s: after rolling back to recovery point %d:\n got %s\nwant %s", what, newest, got, want)
	}
}
