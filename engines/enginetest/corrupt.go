package enginetest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/engines"
)

// A Fault damages one file of a closed store.
type Fault struct {
	// Kind is truncate, zero, flip or remove.
	Kind string
	// Path is the file, relative to the store directory.
	Path string
	// Off is where the damage starts: the new length for truncate, the
	// first zeroed byte for zero; Len the number of zeroed bytes.
	Off, Len int64
	// Flips are the offsets of the bytes flip inverts.
	Flips []int64
}

func (f Fault) String() string {
	switch f.Kind {
	case "truncate":
		return fmt.Sprintf("truncate %s to %d bytes", f.Path, f.Off)
	case "zero":
		return fmt.Sprintf("zero %s [%d, %d)", f.Path, f.Off, f.Off+f.Len)
	case "flip":
		return fmt.Sprintf("flip %s bytes %v", f.Path, f.Flips)
	}
	return fmt.Sprintf("%s %s", f.Kind, f.Path)
}

// Apply damages the store in dir.
func (f Fault) Apply(dir string) error {
	path := filepath.Join(dir, f.Path)
	switch f.Kind {
	case "remove":
		return os.Remove(path)
	case "truncate":
		return os.Truncate(path, f.Off)
	}
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer file.Close()
	switch f.Kind {
	case "zero":
		_, err = file.WriteAt(make([]byte, f.Len), f.Off)
	case "flip":
		for _, off := range f.Flips {
			var b [1]byte
			if _, err = file.ReadAt(b[:], off); err != nil {
				break
			}
			b[0] ^= 0xff
			if _, err = file.WriteAt(b[:], off); err != nil {
				break
			}
		}
	default:
		err = fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	return err
}

// faultPage is the size of the block zero clears: a common page and
// filesystem block size.
const faultPage = 4096

// faultsFor returns the faults the suite tries on one file of size bytes:
// a truncation to a random shorter length, a zeroed page (or, for a small
// file, a zeroed middle quarter), three flipped bytes and removal.
func faultsFor(rng *rand.Rand, path string, size int64) []Fault {
	out := []Fault{{Kind: "remove", Path: path}}
	if size == 0 {
		return out
	}
	out = append(out, Fault{Kind: "truncate", Path: path, Off: rng.Int64N(size)})
	z := Fault{Kind: "zero", Path: path, Off: size / 2 / faultPage * faultPage, Len: faultPage}
	if size < 2*faultPage {
		z.Off, z.Len = size*3/8, max(1, size/4)
	}
	z.Len = min(z.Len, size-z.Off)
	out = append(out, z)
	flip := Fault{Kind: "flip", Path: path}
	for range 3 {
		flip.Flips = append(flip.Flips, rng.Int64N(size))
	}
	slices.Sort(flip.Flips)
	flip.Flips = slices.Compact(flip.Flips)
	return append(out, flip)
}

// CorruptionOutcome is what opening and reading a damaged store led to.
type CorruptionOutcome int

const (
	// Intact: it opened and read back exactly what was written.
	Intact CorruptionOutcome = iota
	// Refused: an error wrapping engines.ErrCorrupt (or, for a damaged
	// marker, engines.ErrForeignDir).
	Refused
	// Undetected: it opened and read back something else without an
	// error.
	Undetected
)

func (o CorruptionOutcome) String() string {
	switch o {
	case Intact:
		return "intact"
	case Refused:
		return "refused"
	}
	return "undetected"
}

// RunCorruption is the corruption suite. It builds a store with data in
// every keyspace and two recovery points, closes it, and then, for every
// file of the store (or a sample, see below), tries each fault on a copy:
// truncate the file to a random shorter length, zero a page in its middle,
// flip three random bytes, remove it. The damaged copy is opened, scanned
// in full, its recovery points listed and rolled back to the oldest one,
// which is scanned again. Each step must either fail with an error that
// wraps engines.ErrCorrupt (engines.ErrForeignDir when the marker file was
// hit) and names the store's directory, or return exactly what was
// written. Damage found after Open (a scan, a rollback) must be
// remembered: the next Open of the store must fail with
// engines.ErrCorrupt too (see engines.NoteDamage), or a restarted indexer
// would serve what is left. A wrong answer, an unclassified error or a
// panic fails the case;
// each case runs under recover, so one panic does not hide the others. A
// crash the runtime cannot recover (SIGBUS from a mapped file) ends the
// test binary: the adapter must check files before mapping them.
//
// Each fault runs twice. "closed" damages the store as Close left it;
// every adapter must pass it. "crashed" first removes the seal a clean
// Close writes (engines.SealFile), as a crash would have, so only the
// engine's own checks and the adapter's checks before mapping a file stand
// between the damage and the reader: there a panic or an unclassified
// error still fails the case, but a wrong answer is only logged and
// counted as "undetected" (an engine without checksums, like bbolt, cannot
// tell a flipped value from a written one).
//
// The random lengths and offsets come from a seed logged as "seed: N";
// ENGINETEST_SEED=N reruns the same faults. When the store has more than
// ENGINETEST_CORRUPT_FILES files (default 64), a seeded sample of that
// many is damaged. Engines whose Factory says Durable is false are
// skipped.
func RunCorruption(t *testing.T, f Factory) {
	if !f.Durable {
		t.Skipf("%s engine keeps nothing on disk to damage", f.Name)
	}
	seed := envUint(t, "ENGINETEST_SEED", rand.Uint64())
	t.Logf("seed: %d (rerun: ENGINETEST_SEED=%d go test -run '%s')", seed, seed, runPattern(t.Name()))
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))

	template := filepath.Join(t.TempDir(), "template")
	want := buildCorruptionStore(t, f, template)

	files, err := storeFiles(template)
	if err != nil {
		t.Fatal(err)
	}
	if n := int(envUint(t, "ENGINETEST_CORRUPT_FILES", 64)); len(files) > n {
		rng.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
		files = files[:n]
		slices.SortFunc(files, func(a, b storeFile) int { return strings.Compare(a.path, b.path) })
	}
	var faults []Fault
	for _, file := range files {
		if file.path == engines.BallastFile {
			continue // allocated space, holding nothing
		}
		t.Logf("file %s: %d bytes", file.path, file.size)
		faults = append(faults, faultsFor(rng, file.path, file.size)...)
	}
	counts := map[string]int{}
	for _, mode := range []string{"closed", "crashed"} {
		for _, fault := range faults {
			if mode == "crashed" && fault.Path == engines.SealFile {
				continue
			}
			name := mode + "/" + strings.NewReplacer("/", "_", " ", "_").Replace(fault.Kind+"/"+fault.Path)
			t.Run(name, func(t *testing.T) {
				// A copy, not links: engines write some files in place.
				dir := filepath.Join(t.TempDir(), "store")
				if err := copyTree(template, dir); err != nil {
					t.Fatal(err)
				}
				if mode == "crashed" {
					if err := os.Remove(filepath.Join(dir, engines.SealFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
						t.Fatal(err)
					}
				}
				if err := fault.Apply(dir); err != nil {
					t.Fatalf("%v: %v", fault, err)
				}
				out, why, err := tryDamaged(f, dir, want)
				switch {
				case err != nil:
					t.Errorf("%s, %v: %v", mode, fault, err)
					return
				case out == Undetected && mode == "closed":
					t.Errorf("%s, %v: %v", mode, fault, why)
					return
				case why != nil:
					t.Logf("%s, %v: %s: %v", mode, fault, out, why)
				default:
					t.Logf("%s, %v: %s", mode, fault, out)
				}
				counts[mode+" "+fault.Kind+" "+out.String()]++
			})
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, counts[k])
	}
	t.Logf("%d faults on %d files:%s", len(faults), len(files), b.String())
}

func envUint(t *testing.T, name string, def uint64) uint64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}

// corruptionWant is what the template store holds: its live contents and,
// per recovery point, the contents as of it.
type corruptionWant struct {
	live string
	rps  []engines.RecoveryPoint
	atRP []string // contents as of each recovery point
}

// buildCorruptionStore writes the template store in dir: three rounds of
// batches over every keyspace (small and large values, overwrites and
// deletes), a recovery point after the first and second, then closes it.
func buildCorruptionStore(t *testing.T, f Factory, dir string) corruptionWant {
	s, err := f.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2)) // the contents do not depend on the seed
	var want corruptionWant
	for round := range 3 {
		for batch := range 8 {
			var b engines.Batch
			for i := range 200 {
				k := rng.IntN(1500)
				ks := engines.Keyspace(k % int(engines.NumKeyspaces))
				key := fmt.Appendf(nil, "key-%05d", k)
				switch {
				case i%17 == 0:
					b.Delete(ks, key)
				case i%61 == 0:
					// Large enough for an engine's separate value storage.
					b.Set(ks, key, bytes.Repeat(fmt.Appendf(nil, "%d.%d.%d|", round, batch, i), 700))
				default:
					b.Set(ks, key, fmt.Appendf(nil, "v%d.%d.%d", round, batch, i))
				}
			}
			if err := s.Apply(&b, engines.NoSync); err != nil {
				t.Fatal(err)
			}
		}
		if round < 2 {
			if err := s.CreateRecoveryPoint(uint64(round+1), fmt.Appendf(nil, "rp%d", round+1)); err != nil {
				t.Fatal(err)
			}
			want.atRP = append(want.atRP, Dump(t, s))
		}
	}
	want.live = Dump(t, s)
	if want.rps, err = s.RecoveryPoints(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

type storeFile struct {
	path string // relative to the store directory
	size int64
}

// storeFiles lists the regular files under dir, sorted by path.
func storeFiles(dir string) ([]storeFile, error) {
	var out []storeFile
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		out = append(out, storeFile{path: rel, size: fi.Size()})
		return nil
	})
	return out, err
}

// copyTree copies the directories and regular files under src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, fi.Mode().Perm())
		case d.Type().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(to, data, fi.Mode().Perm())
		}
		return fmt.Errorf("%q is neither a directory nor a regular file", path)
	})
}

// tryDamaged opens the damaged store in dir and reads everything, turning
// a panic into an error. why is the error that refused the store, or how
// the contents differ; err is set when the outcome is not acceptable in
// any mode (a panic, an error that is not classified or does not name the
// store).
func tryDamaged(f Factory, dir string, want corruptionWant) (out CorruptionOutcome, why, err error) {
	var s engines.Store
	defer func() {
		if r := recover(); r != nil {
			out, err = Intact, fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
		if s != nil {
			// Closing may report the damage too; the verdict stands.
			func() {
				defer func() { recover() }()
				s.Close()
			}()
		}
	}()
	refused := func(step string, e error) (CorruptionOutcome, error, error) {
		if !errors.Is(e, engines.ErrCorrupt) && !errors.Is(e, engines.ErrForeignDir) {
			return Refused, e, fmt.Errorf("%s: error does not wrap engines.ErrCorrupt: %w", step, e)
		}
		if !strings.Contains(e.Error(), dir) {
			return Refused, e, fmt.Errorf("%s: error does not name the store directory %q: %w", step, dir, e)
		}
		if s == nil {
			return Refused, fmt.Errorf("%s: %w", step, e), nil
		}
		// Damage found after Open must be remembered: a store served
		// again after a restart would answer from what is left.
		s.Close()
		s = nil
		s2, err := f.Open(dir)
		if err == nil {
			s2.Close()
			return Refused, e, fmt.Errorf("%s found damage (%w), but the store opens again without an error", step, e)
		}
		if !errors.Is(err, engines.ErrCorrupt) {
			return Refused, e, fmt.Errorf("%s found damage (%v); reopening fails, but not with engines.ErrCorrupt: %w", step, e, err)
		}
		return Refused, fmt.Errorf("%s: %w (reopening: %v)", step, e, err), nil
	}
	if s, err = f.Open(dir); err != nil {
		s = nil
		return refused("open", err)
	}
	got, err := dump(s)
	if err != nil {
		return refused("scan", err)
	}
	if got != want.live {
		return Undetected, fmt.Errorf("opened and scanned without error, but the contents differ:\n%s", diffLines(got, want.live)), nil
	}
	rps, err := s.RecoveryPoints()
	if err != nil {
		return refused("recovery points", err)
	}
	if !slices.EqualFunc(rps, want.rps, func(a, b engines.RecoveryPoint) bool { return a.ID == b.ID && bytes.Equal(a.Meta, b.Meta) }) {
		return Undetected, fmt.Errorf("recovery points %v, want %v", rps, want.rps), nil
	}
	// Newest first: rolling back drops the newer points.
	for i := len(want.rps) - 1; i >= 0; i-- {
		id := want.rps[i].ID
		if err := s.RollbackTo(id); err != nil {
			return refused(fmt.Sprintf("rollback to %d", id), err)
		}
		got, err = dump(s)
		if err != nil {
			return refused(fmt.Sprintf("scan after rollback to %d", id), err)
		}
		if got != want.atRP[i] {
			return Undetected, fmt.Errorf("rolled back to %d without error, but the contents differ from the recovery point's:\n%s", id, diffLines(got, want.atRP[i])), nil
		}
	}
	return Intact, nil, nil
}

// dump is Dump returning errors instead of failing a test.
func dump(s engines.Store) (string, error) {
	v, err := s.NewView()
	if err != nil {
		return "", err
	}
	defer v.Close()
	var b strings.Builder
	for ks := range engines.NumKeyspaces {
		it, err := v.NewIter(ks, nil, nil)
		if err != nil {
			return "", err
		}
		for ok := it.First(); ok; ok = it.Next() {
			fmt.Fprintf(&b, "%s:%q=%q\n", ks, it.Key(), it.Value())
		}
		if err := it.Close(); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// diffLines summarises how two dumps differ: counts and the first
// differing line of each.
func diffLines(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("%d lines, want %d; first difference at line %d:\n got: %.200s\nwant: %.200s", len(g)-1, len(w)-1, i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(g)-1, len(w)-1)
}
