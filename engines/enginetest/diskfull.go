package enginetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
)

// RunDiskFull fills a small filesystem through a store: it mounts a tmpfs
// of sizeMiB, opens the store on it and applies batches of incompressible
// values until Apply fails. The failure must be an error wrapping
// syscall.ENOSPC or engines.ErrDiskFull that names the store's directory —
// never a panic, a SIGBUS or a hang — and later calls must fail the same
// way or succeed. Close must succeed. Then the space a filler file held is
// given back, the store is reopened, and every batch Apply acknowledged
// must be there, and of the batch that failed all or nothing.
//
// The Factory should open the store with small memtables and reserve (see
// each adapter's disk_reserve_bytes) so the disk fills in seconds. It
// skips when not run as root or when the mount fails; engines whose
// Factory says Durable is false are skipped too.
func RunDiskFull(t *testing.T, f Factory, sizeMiB int) {
	if !f.Durable {
		t.Skipf("%s engine writes nothing to fill a disk with", f.Name)
	}
	mnt := SmallDisk(t, sizeMiB)
	// The filler is given back after the disk filled, so the store can
	// be reopened and read.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "store")
	s, err := f.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if s != nil {
			s.Close()
		}
	}()

	rng := rand.New(rand.NewPCG(7, 7))
	const opsPerBatch, valueBytes = 200, 300
	batch := func(n int) *engines.Batch {
		var b engines.Batch
		for i := range opsPerBatch {
			v := make([]byte, valueBytes)
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			b.Set(engines.Keyspace(i%int(engines.NumKeyspaces)), fmt.Appendf(nil, "b%06d-%03d", n, i), v)
		}
		return &b
	}
	isFull := func(err error) bool {
		return errors.Is(err, syscall.ENOSPC) || errors.Is(err, engines.ErrDiskFull)
	}
	want := map[string]string{} // acknowledged entries
	var failed *engines.Batch
	maxBatches := 4 * sizeMiB << 20 / (opsPerBatch * valueBytes)
	start := time.Now()
	for n := 0; failed == nil; n++ {
		if n == maxBatches {
			t.Fatalf("%d batches (%d MiB) applied to a %d MiB filesystem without an error", n, n*opsPerBatch*valueBytes>>20, sizeMiB)
		}
		b := batch(n)
		err := within(t, "Apply", func() error { return s.Apply(b, engines.NoSync) })
		switch {
		case err == nil:
			for i := range b.Len() {
				op := b.Op(i)
				want[fmt.Sprintf("%s:%q", op.Keyspace, op.Key)] = string(op.Value)
			}
		case !isFull(err):
			t.Fatalf("batch %d: Apply failed, but not with ENOSPC or ErrDiskFull: %v", n, err)
		case !strings.Contains(err.Error(), dir):
			t.Fatalf("batch %d: the error does not name the store directory %s: %v", n, dir, err)
		default:
			t.Logf("batch %d after %v: %v", n, time.Since(start).Round(time.Millisecond), err)
			failed = b
		}
	}
	// Later calls fail the same way, or succeed; none panics or hangs.
	again := batch(-1)
	for i, call := range []struct {
		name string
		fn   func() error
	}{
		{"Apply again", func() error { return s.Apply(again, engines.NoSync) }},
		{"CreateRecoveryPoint", func() error { return s.CreateRecoveryPoint(1, []byte("full")) }},
		{"Get", func() error { _, _, err := s.Get(engines.Main, []byte("b000000-000")); return err }},
		{"Metrics", func() error { _, err := s.Metrics(); return err }},
	} {
		err := within(t, call.name, call.fn)
		switch {
		case err != nil && !isFull(err):
			t.Errorf("%d. %s on a full disk: %v", i, call.name, err)
		case err == nil && i == 0:
			t.Logf("%s succeeded: the engine found room meanwhile", call.name)
			for i := range again.Len() {
				op := again.Op(i)
				want[fmt.Sprintf("%s:%q", op.Keyspace, op.Key)] = string(op.Value)
			}
		}
	}
	if err := within(t, "Close", s.Close); err != nil {
		t.Fatalf("Close after the disk filled: %v", err)
	}
	s = nil

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s, err = f.Open(dir)
	if err != nil {
		t.Fatalf("reopen with space given back: %v", err)
	}
	got := map[string]string{}
	v, err := s.NewView()
	if err != nil {
		t.Fatal(err)
	}
	for ks := range engines.NumKeyspaces {
		it, err := v.NewIter(ks, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			got[fmt.Sprintf("%s:%q", ks, it.Key())] = string(it.Value())
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	v.Close()
	lost := 0
	for k, val := range want {
		if got[k] != val {
			lost++
		}
	}
	extra := 0
	for k := range got {
		if _, ok := want[k]; !ok {
			extra++
		}
	}
	t.Logf("%d entries acknowledged, %d read back after reopening", len(want), len(got))
	if lost > 0 {
		t.Errorf("%d acknowledged entries lost or changed", lost)
	}
	// The failed batch applied wholly or not at all.
	if extra != 0 && extra != failed.Len() {
		t.Errorf("%d entries of the failed batch of %d are there: a batch applied in part", extra, failed.Len())
	}
}

// within runs fn, failing the test if it does not return within a minute
// (an engine stalled on a full disk).
func within(t *testing.T, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("%s did not return within a minute on a full disk", what)
		return nil
	}
}

// SmallDisk mounts a tmpfs of sizeMiB for the test and returns its path,
// unmounted when the test ends: a disk to fill. It skips the test when not
// run as root or when the mount fails.
func SmallDisk(t testing.TB, sizeMiB int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", sizeMiB), "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("mount a %d MiB tmpfs on %s: %v: %s", sizeMiB, mnt, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}
