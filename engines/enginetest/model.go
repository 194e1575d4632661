package enginetest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/memory"
)

// Environment variables the model test reads.
const (
	// SeedEnv fixes the model test's seed (a uint64); by default it is
	// drawn from the clock.
	SeedEnv = "ENGINETEST_SEED"
	// StepsEnv sets the number of random steps; default 400.
	StepsEnv = "ENGINETEST_STEPS"
)

// RunModel drives the engine under test and the memory reference engine
// with one random sequence of operations and compares every answer.
func RunModel(t *testing.T, f Factory) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(SeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", SeedEnv, s, err)
		}
		seed = v
	}
	steps := 400
	if s := os.Getenv(StepsEnv); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			t.Fatalf("%s=%q: want a non-negative integer", StepsEnv, s)
		}
		steps = v
	}
	t.Logf("seed: %d (rerun: %s=%d go test ./engines/%s -run '%s' -v)", seed, SeedEnv, seed, f.Name, runPattern(t.Name()))

	root := t.TempDir()
	m := &model{
		t:     t,
		f:     f,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		dir:   filepath.Join(root, "engine"),
		views: map[string]viewPair{},
	}
	ref, err := memory.Open(filepath.Join(root, "model"), engines.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.ref = ref
	if m.s, err = f.Open(m.dir); err != nil {
		t.Fatal(err)
	}
	defer m.close()
	for i := 0; i < steps && !t.Failed(); i++ {
		m.step(i)
	}
	if !t.Failed() {
		m.compareAll("final")
	}
}

// viewPair is a view of the engine under test and the view of the model
// taken at the same moment.
type viewPair struct{ got, want engines.View }

type model struct {
	t      *testing.T
	f      Factory
	rng    *rand.Rand
	dir    string
	s      engines.Store
	ref    *memory.Store
	views  map[string]viewPair
	nextRP uint64
	nview  int
}

func (m *model) close() {
	for name, v := range m.views {
		m.closeView(name, v)
	}
	if m.s != nil {
		if err := m.s.Close(); err != nil {
			m.t.Errorf("close engine: %v", err)
		}
	}
	if err := m.ref.Close(); err != nil {
		m.t.Errorf("close model: %v", err)
	}
}

func (m *model) closeView(name string, v viewPair) {
	delete(m.views, name)
	if err := v.got.Close(); err != nil {
		m.t.Errorf("close view %s: %v", name, err)
	}
	if err := v.want.Close(); err != nil {
		m.t.Errorf("close model view %s: %v", name, err)
	}
}

// key draws from a small key space so that overwrites, deletes of present
// keys and seeks landing on exact keys are all common.
func (m *model) key() []byte {
	n := m.rng.IntN(120)
	// Varying lengths exercise prefix ordering ("k1" < "k10" < "k2").
	return fmt.Appendf(nil, "k%d", n)
}

func (m *model) ks() engines.Keyspace { return engines.Keyspace(m.rng.IntN(int(engines.NumKeyspaces))) }

func (m *model) step(i int) {
	t := m.t
	switch p := m.rng.IntN(100); {
	case p < 40: // batch
		var b engines.Batch
		n := 1 + m.rng.IntN(20)
		for range n {
			ks, k := m.ks(), m.key()
			if m.rng.IntN(4) == 0 {
				b.Delete(ks, k)
				continue
			}
			v := fmt.Appendf(nil, "v%d.%d", i, m.rng.IntN(1000))
			if m.rng.IntN(8) == 0 {
				v = nil
			}
			b.Set(ks, k, v)
		}
		d := engines.NoSync
		if m.rng.IntN(5) == 0 {
			d = engines.Sync
		}
		if err := m.ref.Apply(&b, d); err != nil {
			t.Fatalf("step %d: model apply: %v", i, err)
		}
		if err := m.s.Apply(&b, d); err != nil {
			t.Fatalf("step %d: apply %d ops: %v", i, b.Len(), err)
		}

	case p < 55: // get, from the store or a view
		ks, k := m.ks(), m.key()
		got, want := m.s.Get, m.ref.Get
		where := "store"
		if name, v, ok := m.anyView(); ok && m.rng.IntN(2) == 0 {
			got, want, where = v.got.Get, v.want.Get, "view "+name
		}
		gv, gok, err := got(ks, k)
		if err != nil {
			t.Fatalf("step %d: get %v/%s from %s: %v", i, ks, k, where, err)
		}
		wv, wok, _ := want(ks, k)
		if gok != wok || !bytes.Equal(gv, wv) {
			t.Fatalf("step %d: get %v/%s from %s = %q, %t; model says %q, %t", i, ks, k, where, gv, gok, wv, wok)
		}

	case p < 63: // open a view
		if len(m.views) >= 4 {
			return
		}
		m.nview++
		name := fmt.Sprintf("v%d", m.nview)
		wv, err := m.ref.NewView()
		if err != nil {
			t.Fatal(err)
		}
		gv, err := m.s.NewView()
		if err != nil {
			t.Fatalf("step %d: new view: %v", i, err)
		}
		m.views[name] = viewPair{got: gv, want: wv}

	case p < 70: // close a view
		if name, v, ok := m.anyView(); ok {
			m.closeView(name, v)
		}

	case p < 82: // iterate a view, or a fresh one
		name, v, ok := m.anyView()
		if !ok {
			m.compareAll(fmt.Sprintf("step %d", i))
			return
		}
		m.compareIter(fmt.Sprintf("step %d: view %s", i, name), v)

	case p < 88: // recovery point
		m.nextRP += 1 + uint64(m.rng.IntN(3))
		meta := fmt.Appendf(nil, "ts-%d", i)
		if err := m.ref.CreateRecoveryPoint(m.nextRP, meta); err != nil {
			t.Fatal(err)
		}
		if err := m.s.CreateRecoveryPoint(m.nextRP, meta); err != nil {
			t.Fatalf("step %d: recovery point %d: %v", i, m.nextRP, err)
		}
		m.compareRPs(i)

	case p < 92: // rollback (views closed first, as the contract asks)
		id, ok := m.anyRP(i)
		if !ok {
			return
		}
		for name, v := range m.views {
			m.closeView(name, v)
		}
		if err := m.ref.RollbackTo(id); err != nil {
			t.Fatal(err)
		}
		if err := m.s.RollbackTo(id); err != nil {
			t.Fatalf("step %d: rollback to %d: %v", i, id, err)
		}
		m.compareRPs(i)
		m.compareAll(fmt.Sprintf("step %d: after rollback to %d", i, id))

	case p < 95: // drop
		id, ok := m.anyRP(i)
		if !ok {
			return
		}
		if err := m.ref.DropRecoveryPoint(id); err != nil {
			t.Fatal(err)
		}
		if err := m.s.DropRecoveryPoint(id); err != nil {
			t.Fatalf("step %d: drop %d: %v", i, id, err)
		}
		m.compareRPs(i)

	default: // reopen, for durable engines
		if !m.f.Durable {
			return
		}
		for name, v := range m.views {
			m.closeView(name, v)
		}
		if err := m.s.Close(); err != nil {
			t.Fatalf("step %d: close: %v", i, err)
		}
		s, err := m.f.Open(m.dir)
		if err != nil {
			m.s = nil
			t.Fatalf("step %d: reopen: %v", i, err)
		}
		m.s = s
		m.compareRPs(i)
		m.compareAll(fmt.Sprintf("step %d: after reopen", i))
	}
}

func (m *model) anyView() (string, viewPair, bool) {
	if len(m.views) == 0 {
		return "", viewPair{}, false
	}
	names := sortedKeys(m.views)
	name := names[m.rng.IntN(len(names))]
	return name, m.views[name], true
}

func (m *model) anyRP(step int) (uint64, bool) {
	rps, err := m.ref.RecoveryPoints()
	if err != nil {
		m.t.Fatal(err)
	}
	if len(rps) == 0 {
		// An unknown id must be refused by both.
		id := m.nextRP + 100
		if err := m.s.RollbackTo(id); err == nil {
			m.t.Fatalf("step %d: rollback to unknown recovery point %d succeeded", step, id)
		}
		return 0, false
	}
	return rps[m.rng.IntN(len(rps))].ID, true
}

func (m *model) compareRPs(step int) {
	want, err := m.ref.RecoveryPoints()
	if err != nil {
		m.t.Fatal(err)
	}
	got, err := m.s.RecoveryPoints()
	if err != nil {
		m.t.Fatalf("step %d: recovery points: %v", step, err)
	}
	if !slices.EqualFunc(got, want, func(a, b engines.RecoveryPoint) bool {
		return a.ID == b.ID && bytes.Equal(a.Meta, b.Meta)
	}) {
		m.t.Fatalf("step %d: recovery points = %s; model says %s", step, fmtRPs(got), fmtRPs(want))
	}
}

func fmtRPs(rps []engines.RecoveryPoint) string {
	var b bytes.Buffer
	for _, rp := range rps {
		fmt.Fprintf(&b, "[%d %q]", rp.ID, rp.Meta)
	}
	return b.String()
}

// compareAll compares every keyspace of fresh views of both stores.
func (m *model) compareAll(where string) {
	wv, err := m.ref.NewView()
	if err != nil {
		m.t.Fatal(err)
	}
	defer wv.Close()
	gv, err := m.s.NewView()
	if err != nil {
		m.t.Fatalf("%s: new view: %v", where, err)
	}
	defer gv.Close()
	for ks := engines.Keyspace(0); ks < engines.NumKeyspaces; ks++ {
		g, err := collect(gv, ks, nil, nil)
		if err != nil {
			m.t.Fatalf("%s: scan %v: %v", where, ks, err)
		}
		w, _ := collect(wv, ks, nil, nil)
		if g != w {
			m.t.Fatalf("%s: keyspace %v differs:\n got: %s\nwant: %s", where, ks, g, w)
		}
	}
}

// compareIter runs one random sequence of positioning calls on both views.
func (m *model) compareIter(where string, v viewPair) {
	ks := m.ks()
	var lo, up []byte
	if m.rng.IntN(2) == 0 {
		lo = m.key()
	}
	if m.rng.IntN(2) == 0 {
		up = m.key()
	}
	gi, err := v.got.NewIter(ks, lo, up)
	if err != nil {
		m.t.Fatalf("%s: new iter: %v", where, err)
	}
	wi, _ := v.want.NewIter(ks, lo, up)
	defer wi.Close()
	var trace bytes.Buffer
	fmt.Fprintf(&trace, "iter %v [%q, %q):", ks, lo, up)
	for range 1 + m.rng.IntN(30) {
		var g, w bool
		switch p := m.rng.IntN(10); {
		case p == 0:
			g, w = gi.First(), wi.First()
			trace.WriteString(" first")
		case p < 3:
			k := m.key()
			g, w = gi.SeekGE(k), wi.SeekGE(k)
			fmt.Fprintf(&trace, " seek(%s)", k)
		default:
			if !wi.Valid() {
				continue
			}
			g, w = gi.Next(), wi.Next()
			trace.WriteString(" next")
		}
		if g != w || g && (!bytes.Equal(gi.Key(), wi.Key()) || !bytes.Equal(gi.Value(), wi.Value())) {
			var gk, wk []byte
			if g {
				gk = gi.Key()
			}
			if w {
				wk = wi.Key()
			}
			m.t.Fatalf("%s: %s → valid=%t key=%q; model: valid=%t key=%q", where, trace.String(), g, gk, w, wk)
		}
	}
	if err := gi.Close(); err != nil {
		m.t.Fatalf("%s: close iter: %v", where, err)
	}
}

// collect renders every entry of ks within bounds as k=v pairs.
func collect(v engines.View, ks engines.Keyspace, lo, up []byte) (string, error) {
	it, err := v.NewIter(ks, lo, up)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	for ok := it.First(); ok; ok = it.Next() {
		fmt.Fprintf(&b, "%s=%s ", it.Key(), it.Value())
	}
	return b.String(), it.Close()
}

// runPattern turns a test name into a -run pattern matching it alone.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}
