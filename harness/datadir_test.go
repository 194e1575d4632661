package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestClaimDataDir(t *testing.T) {
	root := t.TempDir()

	fresh := filepath.Join(root, "new", "disk")
	created, err := claimDataDir(fresh)
	if err != nil || !created {
		t.Fatalf("new dir: created=%v err=%v", created, err)
	}
	// Claiming it again (an earlier run's dir) is fine and not "created".
	if created, err := claimDataDir(fresh); err != nil || created {
		t.Fatalf("reclaim: created=%v err=%v", created, err)
	}

	empty := filepath.Join(root, "empty")
	os.Mkdir(empty, 0o755)
	if created, err := claimDataDir(empty); err != nil || created {
		t.Fatalf("empty dir: created=%v err=%v", created, err)
	}

	foreign := filepath.Join(root, "foreign")
	os.Mkdir(foreign, 0o755)
	precious := filepath.Join(foreign, "precious.db")
	os.WriteFile(precious, []byte("keep me"), 0o644)
	_, err = claimDataDir(foreign)
	if err == nil || !strings.Contains(err.Error(), foreign) || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("foreign dir: got %v, want a refusal naming it", err)
	}
	if err := removeOwnedDir(foreign); err == nil {
		t.Fatal("removeOwnedDir removed a foreign directory")
	}
	if b, _ := os.ReadFile(precious); string(b) != "keep me" {
		t.Fatal("foreign file was touched")
	}

	file := filepath.Join(root, "afile")
	os.WriteFile(file, nil, 0o644)
	if _, err := claimDataDir(file); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Fatalf("file: got %v", err)
	}

	if os.Geteuid() != 0 {
		ro := filepath.Join(root, "ro")
		os.Mkdir(ro, 0o555)
		if _, err := claimDataDir(ro); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Fatalf("read-only dir: got %v", err)
		}
	}

	sub, err := makeOwnedDir(fresh, "cell-*")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sub, "data"), []byte("x"), 0o644)
	if err := removeOwnedDir(sub); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sub); !os.IsNotExist(err) {
		t.Fatal("owned cell dir survived removal")
	}
}

// TestLockDir: a directory a live run holds is refused with its pid; a lock
// a dead process left is taken over; release frees it.
func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	// A live process that is not this one: the test's parent.
	os.WriteFile(filepath.Join(dir, lockFile), []byte(fmt.Sprintf("%d\n", os.Getppid())), 0o644)
	if _, err := lockDir(dir, "output dir"); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getppid())) {
		t.Fatalf("a directory held by a live process: %v, want refused naming its pid", err)
	}
	// A process that is gone: start one, let it exit, use its pid.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("no process to reap: %v", err)
	}
	os.WriteFile(filepath.Join(dir, lockFile), []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o644)
	release, err := lockDir(dir, "output dir")
	if err != nil {
		t.Fatalf("a lock left by a dead process: %v", err)
	}
	if _, err := lockDir(dir, "output dir"); err == nil {
		t.Fatal("a directory this run holds was taken again")
	}
	release()
	if _, err := os.Stat(filepath.Join(dir, lockFile)); !os.IsNotExist(err) {
		t.Fatalf("release left the lock: %v", err)
	}
}
