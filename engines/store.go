package engines

// Store is one index slice's storage: three keyspaces, atomic batches,
// point-in-time read views and durable recovery points. A Store is safe for
// concurrent use by one writer (Apply, recovery-point calls) and any number of
// readers (Get, NewView and the views' iterators).
type Store interface {
	// Apply applies every operation of b atomically: after a crash either all
	// of b is visible or none of it. Operations on the same key apply in
	// batch order (the last one wins). b may be reused once Apply returns.
	Apply(b *Batch, d Durability) error

	// Get returns the value of key in ks. The returned slice belongs to the
	// caller. ok is false when the key is absent.
	Get(ks Keyspace, key []byte) (value []byte, ok bool, err error)

	// NewView returns a point-in-time read view: it sees every batch applied
	// before NewView returned and none applied after. The caller must Close
	// it; an open view may pin engine resources (memtables, pages).
	NewView() (View, error)

	// CreateRecoveryPoint makes the store's current contents durable and
	// restorable under id, with meta (opaque to the engine, typically the
	// timestamp vector) kept beside it. Ids must increase. The caller
	// quiesces writers while it runs.
	CreateRecoveryPoint(id uint64, meta []byte) error

	// RecoveryPoints lists the retained recovery points, oldest first. It
	// works after a reopen (including after a crash): a recovery point whose
	// creation did not complete is not listed.
	RecoveryPoints() ([]RecoveryPoint, error)

	// RollbackTo restores the contents as of recovery point id, and drops
	// every recovery point newer than id (they describe a history that no
	// longer happens). Open views must be closed first.
	RollbackTo(id uint64) error

	// DropRecoveryPoint releases recovery point id and what it pins.
	DropRecoveryPoint(id uint64) error

	// Metrics reports sizes and engine-side counters. It is cheap enough to
	// call once a second.
	Metrics() (Metrics, error)

	// Close releases the store; its files stay on disk.
	Close() error

	// Destroy closes the store and removes the files it created, and only
	// those.
	Destroy() error
}

// RecoveryPoint describes one retained recovery point.
type RecoveryPoint struct {
	ID   uint64
	Meta []byte
}

// View is a point-in-time read view of a Store.
type View interface {
	// Get is Store.Get as of the view.
	Get(ks Keyspace, key []byte) (value []byte, ok bool, err error)
	// NewIter iterates ks over [lower, upper) in byte order; a nil bound is
	// unbounded. The iterator is positioned before the first key: call First
	// or SeekGE.
	NewIter(ks Keyspace, lower, upper []byte) (Iterator, error)
	// Close releases the view. Iterators must be closed first.
	Close() error
}

// Iterator walks a keyspace in ascending byte order within its bounds.
type Iterator interface {
	// First positions at the first key within bounds; false if none.
	First() bool
	// SeekGE positions at the first key ≥ key within bounds; false if none.
	SeekGE(key []byte) bool
	// Next advances; false when past the last key.
	Next() bool
	// Valid reports whether the iterator is positioned at a key.
	Valid() bool
	// Key returns the current key. It is valid until the next positioning
	// call; copy it to keep it.
	Key() []byte
	// Value returns the current value, valid as long as Key.
	Value() []byte
	// Err returns the error that stopped iteration, if any.
	Err() error
	// Close releases the iterator and returns Err.
	Close() error
}

// Metrics are what every engine reports. A figure an engine cannot know is -1.
type Metrics struct {
	// DiskBytes is the space the store's files take, by allocated blocks,
	// retained recovery points included.
	DiskBytes int64
	// EngineBytesWritten is what the engine says it has written (WAL,
	// flushes, compactions) since Open; -1 when the engine does not count.
	EngineBytesWritten int64
	// MemoryBytes is the engine's own memory (caches, memtables); -1 when
	// unknown.
	MemoryBytes int64
	// Extra holds engine-specific figures by name (write_amp, l0_files, …).
	Extra map[string]float64
}

// Compacter is implemented by engines that can compact on request.
type Compacter interface {
	Compact() error
}

// Verifier is implemented by stores that can check their data with the
// engine's own checks, beyond what Open checks. With full unset Verify runs
// the quick checks: the structure the engine keeps about its files (their
// list, sizes, headers), at a cost that hardly grows with the data. With
// full set it reads every byte of data through the engine's checksums and
// ordering checks. Damage is an error wrapping ErrCorrupt naming the file;
// any other error is a failure of the check itself. The caller keeps
// writers quiet while it runs.
type Verifier interface {
	Verify(full bool) error
}

// AsVerifier finds the Verifier of s, looking through stores that wrap
// another (a wrapper exposes it with an Unwrap() Store method). ok is false
// when the engine has no checks of its own.
func AsVerifier(s Store) (v Verifier, ok bool) {
	for s != nil {
		if v, ok := s.(Verifier); ok {
			return v, true
		}
		u, ok := s.(interface{ Unwrap() Store })
		if !ok {
			return nil, false
		}
		s = u.Unwrap()
	}
	return nil, false
}
