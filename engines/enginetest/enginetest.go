package enginetest

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/idxbench/idxbench/engines"
)

// Factory tells the suite how to open the engine under test.
type Factory struct {
	// Name is the engine's registered name, the one its directory marker
	// carries (see engines.ClaimDir).
	Name string
	// Open opens the store in dir, creating it if needed. The suite calls it
	// again on the same dir after Close to test reopening.
	Open func(dir string) (engines.Store, error)
	// Durable is true when contents and recovery points survive Close and
	// Open. Scenarios that reopen a store are skipped when it is false.
	Durable bool
}

// FromRegistry returns a Factory opening the registered engine name with
// opts.
func FromRegistry(name string, opts engines.Options, durable bool) Factory {
	return Factory{
		Name: name,
		Open: func(dir string) (engines.Store, error) {
			e, err := engines.Lookup(name)
			if err != nil {
				return nil, err
			}
			return e.Open(dir, opts)
		},
		Durable: durable,
	}
}

// Run runs the whole conformance suite against f.
func Run(t *testing.T, f Factory) {
	if f.Open == nil || f.Name == "" {
		t.Fatal("enginetest: Factory needs Name and Open")
	}
	t.Run("datadriven", func(t *testing.T) { RunDataDriven(t, f) })
	t.Run("model", func(t *testing.T) { RunModel(t, f) })
	t.Run("concurrent", func(t *testing.T) { RunConcurrent(t, f) })
}

//go:embed testdata/*.txt
var testdata embed.FS

// RunDataDriven replays every scenario file under testdata/.
func RunDataDriven(t *testing.T, f Factory) {
	names, err := fs.Glob(testdata, "testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	src := sourceDir()
	for _, name := range names {
		base := filepath.Base(name)
		t.Run(strings.TrimSuffix(base, ".txt"), func(t *testing.T) {
			if strings.HasPrefix(base, "durable_") && !f.Durable {
				t.Skipf("%s engine keeps nothing across Close", f.Name)
			}
			r := &runner{f: f, root: t.TempDir(), views: map[string]engines.View{}}
			r.dir = filepath.Join(r.root, "store")
			defer r.cleanup(t)
			// Prefer the file in the source tree, so -rewrite can update it;
			// fall back to the embedded copy (trimmed paths, vendored use).
			if path := filepath.Join(src, "testdata", base); src != "" && fileExists(path) {
				datadriven.RunTest(t, path, r.run)
				return
			}
			data, err := testdata.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			datadriven.RunTestFromString(t, string(data), r.run)
		})
	}
}

func sourceDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	return filepath.Dir(file)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// runner holds one scenario file's state.
type runner struct {
	f     Factory
	root  string // per-file temporary directory
	dir   string // the store's directory, root/store
	s     engines.Store
	views map[string]engines.View
}

func (r *runner) cleanup(t *testing.T) {
	for name, v := range r.views {
		if err := v.Close(); err != nil {
			t.Errorf("close view %s: %v", name, err)
		}
	}
	if r.s != nil {
		if err := r.s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	}
}

func (r *runner) run(t *testing.T, d *datadriven.TestData) string {
	out, err := r.exec(t, d)
	if err != nil {
		return "error: " + classify(err) + "\n"
	}
	if out == "" {
		return "ok\n"
	}
	return out
}

// classify renders err as an engine-independent class, so one expected
// output fits every engine. The full message goes to the test log.
func classify(err error) string {
	switch {
	case errors.Is(err, engines.ErrForeignDir):
		return "foreign directory"
	case errors.Is(err, syscall.ENOTDIR):
		return "not a directory"
	case errors.Is(err, engines.ErrNoRecoveryPoint):
		return "no such recovery point"
	case errors.Is(err, engines.ErrClosed):
		return "closed"
	case errors.Is(err, engines.ErrCorrupt):
		return "corrupt"
	}
	return "unexpected: " + err.Error()
}

func (r *runner) store(t *testing.T, d *datadriven.TestData) engines.Store {
	if r.s == nil {
		d.Fatalf(t, "no open store")
	}
	return r.s
}

func (r *runner) exec(t *testing.T, d *datadriven.TestData) (string, error) {
	switch d.Cmd {
	case "open":
		if r.s != nil {
			d.Fatalf(t, "store already open")
		}
		s, err := r.f.Open(r.dir)
		if err != nil {
			t.Logf("open: %v", err)
			return "", err
		}
		r.s = s
		return "", nil

	case "close":
		s := r.store(t, d)
		r.s = nil
		return "", s.Close()

	case "reopen":
		s := r.store(t, d)
		r.s = nil
		if err := s.Close(); err != nil {
			return "", err
		}
		s, err := r.f.Open(r.dir)
		if err != nil {
			return "", err
		}
		r.s = s
		return "", nil

	case "destroy":
		s := r.store(t, d)
		r.s = nil
		if err := s.Destroy(); err != nil {
			return "", err
		}
		_, err := os.Stat(r.dir)
		return fmt.Sprintf("dir removed: %t\n", errors.Is(err, fs.ErrNotExist)), nil

	case "batch":
		var b engines.Batch
		for _, line := range lines(d.Input) {
			f := strings.Fields(line)
			if len(f) < 3 {
				d.Fatalf(t, "bad batch line %q (want: set KS KEY [VALUE] | del KS KEY)", line)
			}
			ks := keyspace(t, d, f[1])
			switch {
			case f[0] == "set" && len(f) <= 4:
				var v string
				if len(f) == 4 {
					v = f[3]
				}
				b.Set(ks, []byte(f[2]), []byte(v))
			case f[0] == "del" && len(f) == 3:
				b.Delete(ks, []byte(f[2]))
			default:
				d.Fatalf(t, "bad batch line %q", line)
			}
		}
		dur := engines.NoSync
		if d.HasArg("sync") {
			dur = engines.Sync
		}
		return "", r.store(t, d).Apply(&b, dur)

	case "get":
		var ks string
		d.ScanArgs(t, "ks", &ks)
		get := r.store(t, d).Get
		if v := r.maybeView(t, d); v != nil {
			get = v.Get
		}
		var b strings.Builder
		for _, k := range lines(d.Input) {
			v, ok, err := get(keyspace(t, d, ks), []byte(k))
			if err != nil {
				return "", err
			}
			if ok {
				fmt.Fprintf(&b, "%s=%s\n", k, v)
			} else {
				fmt.Fprintf(&b, "%s: absent\n", k)
			}
		}
		return b.String(), nil

	case "view":
		var name string
		d.ScanArgs(t, "name", &name)
		if _, dup := r.views[name]; dup {
			d.Fatalf(t, "view %s already open", name)
		}
		v, err := r.store(t, d).NewView()
		if err != nil {
			return "", err
		}
		r.views[name] = v
		return "", nil

	case "close-view":
		var name string
		d.ScanArgs(t, "name", &name)
		v, ok := r.views[name]
		if !ok {
			d.Fatalf(t, "no view %s", name)
		}
		delete(r.views, name)
		return "", v.Close()

	case "scan", "iter":
		return r.iter(t, d)

	case "recovery-point":
		var id uint64
		var meta string
		d.ScanArgs(t, "id", &id)
		d.MaybeScanArgs(t, "meta", &meta)
		return "", r.store(t, d).CreateRecoveryPoint(id, []byte(meta))

	case "recovery-points":
		rps, err := r.store(t, d).RecoveryPoints()
		if err != nil {
			return "", err
		}
		if len(rps) == 0 {
			return "(none)\n", nil
		}
		var b strings.Builder
		for _, rp := range rps {
			fmt.Fprintf(&b, "id=%d meta=%s\n", rp.ID, rp.Meta)
		}
		return b.String(), nil

	case "rollback", "drop":
		var id uint64
		d.ScanArgs(t, "id", &id)
		var err error
		if d.Cmd == "rollback" {
			err = r.store(t, d).RollbackTo(id)
		} else {
			err = r.store(t, d).DropRecoveryPoint(id)
		}
		if err != nil && !strings.Contains(err.Error(), strconv.FormatUint(id, 10)) {
			t.Errorf("%s: error %q does not name recovery point %d", d.Pos, err, id)
		}
		return "", err

	case "metrics":
		m, err := r.store(t, d).Metrics()
		if err != nil {
			return "", err
		}
		t.Logf("metrics: %+v", m)
		return fmt.Sprintf("disk_bytes>=0: %t\nengine_bytes_written>=-1: %t\nmemory_bytes>=-1: %t\n",
			m.DiskBytes >= 0, m.EngineBytesWritten >= -1, m.MemoryBytes >= -1), nil

	case "open-bad":
		return r.openBad(t, d)
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return "", nil
}

// maybeView returns the view named by the view= argument, or nil.
func (r *runner) maybeView(t *testing.T, d *datadriven.TestData) engines.View {
	var name string
	if !d.MaybeScanArgs(t, "view", &name) {
		return nil
	}
	v, ok := r.views[name]
	if !ok {
		d.Fatalf(t, "no view %s", name)
	}
	return v
}

// iter runs "scan" (every key within bounds) or "iter" (the positioning
// operations given as input lines: first, seek KEY, next) and prints each
// position as key=value, or "." when the iterator is exhausted. Without
// view= it uses a temporary view.
func (r *runner) iter(t *testing.T, d *datadriven.TestData) (string, error) {
	var ksName, lower, upper string
	d.ScanArgs(t, "ks", &ksName)
	var lo, up []byte
	if d.MaybeScanArgs(t, "lower", &lower) {
		lo = []byte(lower)
	}
	if d.MaybeScanArgs(t, "upper", &upper) {
		up = []byte(upper)
	}
	v := r.maybeView(t, d)
	if v == nil {
		tmp, err := r.store(t, d).NewView()
		if err != nil {
			return "", err
		}
		defer func() {
			if err := tmp.Close(); err != nil {
				t.Errorf("close temporary view: %v", err)
			}
		}()
		v = tmp
	}
	it, err := v.NewIter(keyspace(t, d, ksName), lo, up)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	show := func(ok bool) {
		if ok != it.Valid() {
			t.Errorf("%s: positioning returned %t but Valid is %t", d.Pos, ok, it.Valid())
		}
		if ok {
			fmt.Fprintf(&b, "%s=%s\n", it.Key(), it.Value())
		} else {
			b.WriteString(".\n")
		}
	}
	if d.Cmd == "scan" {
		n := 0
		for ok := it.First(); ok; ok = it.Next() {
			show(true)
			n++
		}
		if n == 0 {
			b.WriteString("(empty)\n")
		}
	} else {
		for _, line := range lines(d.Input) {
			f := strings.Fields(line)
			switch {
			case f[0] == "first" && len(f) == 1:
				show(it.First())
			case f[0] == "next" && len(f) == 1:
				show(it.Next())
			case f[0] == "seek" && len(f) == 2:
				show(it.SeekGE([]byte(f[1])))
			default:
				d.Fatalf(t, "bad iter op %q (want first, next, seek KEY)", line)
			}
		}
	}
	if err := it.Close(); err != nil {
		return "", err
	}
	return b.String(), nil
}

// openBad prepares a bad directory of the kind given, opens the engine on
// it, and checks that the error names the path and nothing was touched.
func (r *runner) openBad(t *testing.T, d *datadriven.TestData) (string, error) {
	var kind string
	d.ScanArgs(t, "kind", &kind)
	// Each case lives in its own directory, so the before/after comparison
	// sees only what the case set up.
	base := filepath.Join(r.root, "bad", kind)
	mustMkdir(t, base)
	path := filepath.Join(base, "store")
	var check string // a file that must survive untouched
	switch kind {
	case "other-engine":
		other := "not-" + r.f.Name
		if _, err := engines.ClaimDir(path, other); err != nil {
			t.Fatal(err)
		}
		check = filepath.Join(path, "data")
		mustWrite(t, check, "another engine's data")
	case "non-empty":
		mustMkdir(t, path)
		check = filepath.Join(path, "notes.txt")
		mustWrite(t, check, "somebody's notes")
	case "file":
		check = path
		mustWrite(t, check, "just a file")
	case "under-file":
		check = path
		mustWrite(t, check, "just a file")
		path = filepath.Join(path, "sub")
	default:
		d.Fatalf(t, "unknown kind %q (other-engine, non-empty, file, under-file)", kind)
	}
	before := snapshotTree(t, base)
	s, err := r.f.Open(path)
	if err == nil {
		s.Close()
		return "opened\n", nil
	}
	t.Logf("open %s: %v", kind, err)
	var b strings.Builder
	fmt.Fprintf(&b, "error: %s\n", classifyOpen(err))
	fmt.Fprintf(&b, "names path: %t\n", strings.Contains(err.Error(), path))
	fmt.Fprintf(&b, "untouched: %t\n", snapshotTree(t, base) == before)
	return b.String(), nil
}

// classifyOpen is classify, except that an error which is none of the
// sentinels (the OS refusing a path under a file) is "other" rather than
// its engine-specific message.
func classifyOpen(err error) string {
	c := classify(err)
	if strings.HasPrefix(c, "unexpected: ") {
		return "other"
	}
	return c
}

// snapshotTree renders names, sizes and contents of the files under dir.
func snapshotTree(t *testing.T, dir string) string {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.Type().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s %q\n", path, data)
		} else {
			fmt.Fprintf(&b, "%s/\n", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func keyspace(t *testing.T, d *datadriven.TestData, name string) engines.Keyspace {
	for ks := engines.Keyspace(0); ks < engines.NumKeyspaces; ks++ {
		if ks.String() == name {
			return ks
		}
	}
	d.Fatalf(t, "unknown keyspace %q", name)
	return 0
}

func lines(input string) []string {
	var out []string
	for _, l := range strings.Split(input, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// sortedKeys is used by the model test to print map contents stably.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
