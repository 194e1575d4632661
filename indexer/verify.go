package indexer

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/workload/upr"
)

// Verification levels for Config.VerifyOnOpen.
const (
	// VerifyNone trusts a store once the engine opened it (its own checks
	// at open: the seal of a clean close, the files it reads to start).
	VerifyNone = "none"
	// VerifyQuick adds the engine's quick checks (engines.Verifier with
	// full unset) and checks that the slice's stored vector is well formed.
	VerifyQuick = "quick"
	// VerifyFull adds the engine's full checks, which read every byte of
	// data, and checks that the back index and the main index agree.
	VerifyFull = "full"
)

// maxReported bounds the disagreements one verification names.
const maxReported = 3

// verifySlice checks a slice's store as Config.VerifyOnOpen asks, after
// loadSlice read its vector. Damage is an error wrapping engines.ErrCorrupt
// that names the slice, so openSlice rebuilds the slice instead of serving
// it. An engine with no checks of its own (engines.AsVerifier) gets the
// indexer's checks alone.
func verifySlice(cfg *Config, s *slice) error {
	if cfg.VerifyOnOpen == VerifyNone {
		return nil
	}
	start := time.Now()
	full := cfg.VerifyOnOpen == VerifyFull
	if v, ok := engines.AsVerifier(s.store); ok {
		if err := v.Verify(full); err != nil {
			return fmt.Errorf("verify slice %q: %w", s.name, err)
		}
		if cfg.Recorder != nil {
			cfg.Recorder.Record("verify_engine_on_open", time.Since(start))
		}
	}
	if err := checkVector(s.ts); err != nil {
		return fmt.Errorf("verify slice %q: meta %q: %w: %w", s.name, metaTS, engines.ErrCorrupt, err)
	}
	if full {
		if err := checkEntries(s.store, s.primary); err != nil {
			return fmt.Errorf("verify slice %q: %w", s.name, err)
		}
	}
	if cfg.Recorder != nil {
		cfg.Recorder.Record("verify_on_open", time.Since(start))
	}
	return nil
}

// checkVector reports a stored vector no flush could have written: per
// vbucket a snapshot whose start is past its end, a seqno past its
// snapshot's end, or a seqno without a branch.
func checkVector(ts *upr.TsVbuuid) error {
	for vb, s := range ts.Seqnos {
		snap := ts.Snapshots[vb]
		switch {
		case snap[0] > snap[1]:
			return fmt.Errorf("vb %d: snapshot [%d,%d] starts past its end", vb, snap[0], snap[1])
		case s > snap[1]:
			return fmt.Errorf("vb %d: seqno %d past its snapshot [%d,%d]", vb, s, snap[0], snap[1])
		case s != 0 && ts.Vbuuids[vb] == 0:
			return fmt.Errorf("vb %d: seqno %d on no branch", vb, s)
		}
	}
	return nil
}

// checkEntries checks that the main and back keyspaces agree: every main
// key splits into a key and a document id; for a secondary index the
// document's back entry holds exactly that key, and there are as many back
// entries as main ones (so no back entry lacks its main entry); a primary
// index keeps no back entries. Disagreements are an error wrapping
// engines.ErrCorrupt naming the first few.
func checkEntries(st engines.Store, primary bool) (err error) {
	v, err := st.NewView()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, v.Close()) }()
	var bad []string
	note := func(format string, args ...any) {
		if len(bad) < maxReported {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	var matched, wrong int
	it, err := v.NewIter(engines.Main, nil, nil)
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		key, docid, serr := splitMainKey(it.Key())
		if serr != nil {
			wrong++
			note("%v", serr)
			continue
		}
		if primary {
			matched++
			continue
		}
		back, found, gerr := v.Get(engines.Back, docid)
		switch {
		case gerr != nil:
			return errors.Join(gerr, it.Close())
		case !found:
			wrong++
			note("main entry of %q has no back entry", docid)
		case !bytes.Equal(back, key):
			wrong++
			note("main entry of %q has key %x, its back entry %x", docid, key, back)
		default:
			matched++
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	backs := 0
	bit, err := v.NewIter(engines.Back, nil, nil)
	if err != nil {
		return err
	}
	for ok := bit.First(); ok; ok = bit.Next() {
		backs++
	}
	if err := bit.Close(); err != nil {
		return err
	}
	if primary && backs > 0 {
		wrong++
		note("a primary index holds %d back entries", backs)
	}
	// A back entry matches at most one main entry (its key ++ its
	// document id), so back entries beyond the matched ones have none.
	if !primary && backs > matched {
		wrong += backs - matched
		note("%d back entries have no main entry", backs-matched)
	}
	if wrong > 0 {
		return fmt.Errorf("%d entries disagree (%s): %w", wrong, strings.Join(bad, "; "), engines.ErrCorrupt)
	}
	return nil
}
