package pebble_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/enginetest"
	"github.com/idxbench/idxbench/engines/pebble"
)

// TestDiskFull fills a small tmpfs through the store (root only).
func TestDiskFull(t *testing.T) {
	opts := engines.Options{CacheBytes: 1 << 20, MemtableBytes: 1 << 20, Extra: map[string]string{pebble.ExtraDiskReserveBytes: "4194304"}}
	enginetest.RunDiskFull(t, enginetest.FromRegistry(pebble.Name, opts, true), 16)
}

// TestDiskFullRacingFiller fills a small tmpfs from another writer while
// the store applies batches (root only): space the store did not take
// runs out while it writes. Apply must fail with ENOSPC or ErrDiskFull,
// nothing may panic, Close must work, and with the filler gone every
// acknowledged batch must be there. (When the filler takes the last bytes
// under a WAL or MANIFEST write, the ballast is spent; see
// TestDiskFullBallast for that path made certain.)
func TestDiskFullRacingFiller(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	released := 0
	for round := range 4 {
		mnt := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt).CombinedOutput(); err != nil {
			t.Skipf("mount: %v: %s", err, out)
		}
		var logs bytes.Buffer
		var logMu sync.Mutex
		opts := engines.Options{CacheBytes: 1 << 20, MemtableBytes: 1 << 20,
			Extra:  map[string]string{pebble.ExtraDiskReserveBytes: "1048576"},
			Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))}
		dir := filepath.Join(mnt, "store")
		s, err := pebble.Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		// The filler takes what it can, 64 KiB at a time, until the disk is
		// full, racing the store.
		filler := filepath.Join(mnt, "filler")
		done := make(chan struct{})
		go func() {
			defer close(done)
			f, err := os.Create(filler)
			if err != nil {
				return
			}
			defer f.Close()
			chunk := make([]byte, 64<<10)
			for {
				if _, err := f.Write(chunk); err != nil {
					return
				}
				time.Sleep(200 * time.Microsecond)
			}
		}()
		want := map[string]bool{}
		var applyErr error
		for n := 0; applyErr == nil && n < 5000; n++ {
			var b engines.Batch
			for i := range 100 {
				k := fmt.Sprintf("%d-%04d-%03d", round, n, i)
				b.Set(engines.Main, []byte(k), bytes.Repeat([]byte{byte(n + i)}, 300))
			}
			if applyErr = s.Apply(&b, engines.NoSync); applyErr == nil {
				for i := range b.Len() {
					want[string(b.Op(i).Key)] = true
				}
			}
		}
		<-done
		if !errors.Is(applyErr, syscall.ENOSPC) && !errors.Is(applyErr, engines.ErrDiskFull) {
			t.Fatalf("round %d: Apply failed, but not with ENOSPC or ErrDiskFull: %v", round, applyErr)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
		logMu.Lock()
		if strings.Contains(logs.String(), "ballast was released") {
			released++
		}
		logMu.Unlock()
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		s, err = pebble.Open(dir, opts)
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		got := 0
		for k := range want {
			if _, ok, err := s.Get(engines.Main, []byte(k)); err != nil || !ok {
				t.Fatalf("round %d: acknowledged key %s: %t, %v", round, k, ok, err)
			}
			got++
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Fatalf("umount: %v: %s", err, out)
		}
		t.Logf("round %d: %d keys acknowledged and read back; %v", round, got, applyErr)
	}
	t.Logf("the ballast was spent in %d of 4 rounds", released)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestDiskFullBallast: a WAL write that meets a full disk — made certain
// by injecting ENOSPC into the first write of a WAL once armed — does not
// reach pebble, which would treat it as fatal: pebble's OnDiskFull hook
// gives the ballast back and retries the write, which succeeds; the batch
// is acknowledged, and later writes are refused with ErrDiskFull. After a
// reopen every acknowledged batch is there, and the store holds a ballast
// again.
func TestDiskFullBallast(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	var armed atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpFileWrite && strings.HasSuffix(op.Path, ".log") && armed.CompareAndSwap(true, false) {
			return &fs.PathError{Op: "write", Path: op.Path, Err: syscall.ENOSPC}
		}
		return nil
	})
	wrap := func(inner vfs.FS) vfs.FS { return errorfs.Wrap(inner, inj) }
	var logs bytes.Buffer
	var logMu sync.Mutex
	opts := engines.Options{CacheBytes: 1 << 20, MemtableBytes: 1 << 20, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))}
	s, err := pebble.OpenWithFS(dir, opts, wrap)
	if err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(dir, engines.BallastFile)
	if _, err := os.Stat(ballast); err != nil {
		t.Fatalf("no ballast after Open: %v", err)
	}
	apply := func(n int) error {
		var b engines.Batch
		b.Set(engines.Main, fmt.Appendf(nil, "k%03d", n), []byte("v"))
		return s.Apply(&b, engines.Sync)
	}
	if err := apply(0); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	if err := apply(1); err != nil {
		t.Fatalf("the write that met the full disk was not retried after the ballast went: %v", err)
	}
	if armed.Load() {
		t.Fatal("test setup: no WAL write happened while armed")
	}
	if _, err := os.Stat(ballast); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the ballast is still there: %v", err)
	}
	err = apply(2)
	if !errors.Is(err, engines.ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Apply after the disk filled = %v, want ErrDiskFull and ENOSPC naming the store", err)
	}
	logMu.Lock()
	if !strings.Contains(logs.String(), "ballast was released") {
		t.Errorf("the release was not logged:\n%s", logs.String())
	}
	logMu.Unlock()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range []string{"k000", "k001"} {
		if _, ok, err := s.Get(engines.Main, []byte(k)); err != nil || !ok {
			t.Fatalf("acknowledged %s after reopening: %t, %v", k, ok, err)
		}
	}
	if _, err := os.Stat(ballast); err != nil {
		t.Fatalf("no ballast after reopening: %v", err)
	}
	if err := apply(3); err != nil {
		t.Fatalf("Apply after reopening with room: %v", err)
	}
}
