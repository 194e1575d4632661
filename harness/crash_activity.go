// The crash test's activity file: what a child is doing when it is killed
// (ingest, a rollback, a recovery point), so the parent can report which
// kinds of kill each cycle covered.

package harness

import (
	"fmt"
	"os"
	"sync"

	"github.com/idxbench/idxbench/engines"
)

// activity is the child's status file: what it is doing now, one word,
// rewritten in place with a single write so a kill never tears it.
type activity struct {
	mu       sync.Mutex
	f        *os.File
	base     string
	persists int // recovery points being created or dropped
	last     string
}

func openActivity(path string) (*activity, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("crash status file: %w", err)
	}
	return &activity{f: f}, nil
}

func (a *activity) set(base string) {
	a.mu.Lock()
	a.base = base
	a.writeLocked()
	a.mu.Unlock()
}

func (a *activity) persist(delta int) {
	a.mu.Lock()
	a.persists += delta
	a.writeLocked()
	a.mu.Unlock()
}

func (a *activity) writeLocked() {
	s := a.base
	if s == KillIngest && a.persists > 0 {
		s = KillPersist
	}
	if s == a.last {
		return
	}
	a.last = s
	var buf [16]byte
	copy(buf[:], s)
	for i := len(s); i < len(buf)-1; i++ {
		buf[i] = ' '
	}
	buf[len(buf)-1] = '\n'
	a.f.WriteAt(buf[:], 0)
}

func (a *activity) close() error { return a.f.Close() }

// trackedEngine wraps e so the status file says "persist" while a recovery
// point is being created or dropped.
func trackedEngine(e engines.Engine, a *activity) engines.Engine {
	return engines.WrapStores(e, func(_ string, s engines.Store) engines.Store {
		return &trackedStore{Store: s, a: a}
	})
}

type trackedStore struct {
	engines.Store
	a *activity
}

func (s *trackedStore) CreateRecoveryPoint(id uint64, meta []byte) error {
	s.a.persist(1)
	defer s.a.persist(-1)
	return s.Store.CreateRecoveryPoint(id, meta)
}

func (s *trackedStore) DropRecoveryPoint(id uint64) error {
	s.a.persist(1)
	defer s.a.persist(-1)
	return s.Store.DropRecoveryPoint(id)
}
