package indexer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/projector/collate"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// ScanKind is what a scan returns.
type ScanKind uint8

const (
	// ScanRange returns the entries between Low and High.
	ScanRange ScanKind = iota
	// ScanLookup returns the entries whose key equals Equal, or whose
	// leading components equal Equal when it is shorter than the key.
	ScanLookup
	// ScanCount counts the entries a Range scan (or, with Equal set, a
	// Lookup) would return.
	ScanCount
	// ScanAll returns every entry.
	ScanAll
)

func (k ScanKind) String() string {
	switch k {
	case ScanRange:
		return "range"
	case ScanLookup:
		return "lookup"
	case ScanCount:
		return "count"
	case ScanAll:
		return "all"
	}
	return fmt.Sprintf("ScanKind(%d)", uint8(k))
}

// Inclusion says which bounds of a range are inclusive.
type Inclusion uint8

// Inclusions: a bit for the low bound and one for the high bound.
const (
	IncludeNeither Inclusion = iota // Low < key < High
	IncludeLow                      // Low ≤ key < High
	IncludeHigh                     // Low < key ≤ High
	IncludeBoth                     // Low ≤ key ≤ High
)

func (i Inclusion) String() string {
	return [...]string{"neither", "low", "high", "both"}[i&3]
}

// Consistency is what snapshot a scan reads.
type Consistency uint8

const (
	// AnyConsistency reads the latest snapshot.
	AnyConsistency Consistency = iota
	// RequestPlus reads a snapshot covering the bucket's seqnos at the
	// time of the request (Config.KVSeqnos), waiting for one.
	RequestPlus
	// AtPlus reads a snapshot covering the request's TS, waiting for one.
	AtPlus
)

func (c Consistency) String() string {
	switch c {
	case AnyConsistency:
		return "any"
	case RequestPlus:
		return "request_plus"
	case AtPlus:
		return "at_plus"
	}
	return fmt.Sprintf("Consistency(%d)", uint8(c))
}

// ScanRequest asks for entries of one index.
type ScanRequest struct {
	// InstID names the index instance; when 0, Index names it.
	InstID uint64
	Index  string
	Kind   ScanKind
	// Low and High bound a Range or Count scan; each may hold fewer
	// values than the key has components, comparing with the key's
	// leading components. nil is unbounded.
	Low, High []any
	Inclusion Inclusion
	// Equal is the key (or leading components) of a Lookup, or of a Count
	// that counts a lookup.
	Equal []any
	// Limit caps the entries returned (or counted); 0 is no limit.
	Limit       int
	Consistency Consistency
	// TS is the vector an AtPlus scan must see.
	TS *upr.TsVbuuid
	// Timeout bounds the wait for a covering snapshot; 0 means
	// Config.ScanTimeout.
	Timeout time.Duration
}

// ScanResult is a scan's answer, read from one snapshot.
type ScanResult struct {
	// Entries in key order, then document id (empty for Count).
	Entries []defn.Entry
	// Count is the number of entries returned or counted.
	Count int
	// TS is the snapshot's vector: the result is exactly the index at TS.
	TS *upr.TsVbuuid
}

// Scan reads an index at the requested consistency, merging its partitions
// in key order.
func (ix *Indexer) Scan(ctx context.Context, req ScanRequest) (*ScanResult, error) {
	start := time.Now()
	res, err := ix.scan(ctx, req)
	ix.st.scans.Add(1)
	if err != nil {
		ix.st.scanErrors.Add(1)
		return nil, err
	}
	if ix.cfg.Recorder != nil {
		ix.cfg.Recorder.Record("scan_"+req.Kind.String()+"_"+req.Consistency.String(), time.Since(start))
	}
	return res, nil
}

func (ix *Indexer) scan(ctx context.Context, req ScanRequest) (*ScanResult, error) {
	lower, upper, empty, err := scanBounds(req)
	if err != nil {
		return nil, err
	}
	var snap *snapshot
	switch req.Consistency {
	case AnyConsistency:
		snap, err = ix.acquire()
	case RequestPlus:
		if ix.cfg.KVSeqnos == nil {
			return nil, errors.New("indexer: request_plus scan needs Config.KVSeqnos")
		}
		snap, err = ix.waitFor(ctx, ix.cfg.KVSeqnos(), ix.timeout(req), true)
	case AtPlus:
		if req.TS == nil {
			return nil, errors.New("indexer: at_plus scan without a vector")
		}
		snap, err = ix.waitFor(ctx, req.TS, ix.timeout(req), true)
	default:
		return nil, fmt.Errorf("indexer: unknown scan consistency %d", req.Consistency)
	}
	if err != nil {
		return nil, err
	}
	defer snap.release()
	si := snap.lookup(req.InstID, req.Index)
	if si == nil {
		if req.InstID != 0 {
			return nil, fmt.Errorf("scan instance %d: %w", req.InstID, ErrNoSuchIndex)
		}
		return nil, fmt.Errorf("scan %q: %w", req.Index, ErrNoSuchIndex)
	}
	res := &ScanResult{TS: snap.ts.Clone()}
	if empty {
		return res, nil
	}
	if err := scanViews(si, lower, upper, req.Limit, req.Kind == ScanCount, res); err != nil {
		return nil, fmt.Errorf("scan %q: %w", si.inst.defn.Name, err)
	}
	return res, nil
}

func (ix *Indexer) timeout(req ScanRequest) time.Duration {
	if req.Timeout > 0 {
		return req.Timeout
	}
	return ix.cfg.ScanTimeout
}

// scanBounds turns the request into main-keyspace bounds [lower, upper).
// empty is set when no key can qualify.
func scanBounds(req ScanRequest) (lower, upper []byte, empty bool, err error) {
	enc := func(vs []any) ([]byte, error) {
		b, err := collate.AppendComposite(nil, vs)
		if err != nil {
			return nil, fmt.Errorf("indexer: scan bound %v: %w", vs, err)
		}
		return b, nil
	}
	useEqual := req.Kind == ScanLookup || (req.Kind == ScanCount && req.Equal != nil)
	switch {
	case req.Kind == ScanAll:
		return nil, nil, false, nil
	case useEqual:
		if len(req.Equal) == 0 {
			return nil, nil, false, errors.New("indexer: lookup without a key")
		}
		if lower, err = enc(req.Equal); err != nil {
			return nil, nil, false, err
		}
		return lower, collate.PrefixEnd(lower), false, nil
	case req.Kind == ScanRange || req.Kind == ScanCount:
	default:
		return nil, nil, false, fmt.Errorf("indexer: unknown scan kind %d", req.Kind)
	}
	if req.Low != nil {
		k, err := enc(req.Low)
		if err != nil {
			return nil, nil, false, err
		}
		lower = k
		if req.Inclusion&IncludeLow == 0 {
			// Past every key whose leading components equal Low.
			if lower = collate.PrefixEnd(k); lower == nil {
				return nil, nil, true, nil
			}
		}
	}
	if req.High != nil {
		k, err := enc(req.High)
		if err != nil {
			return nil, nil, false, err
		}
		upper = k
		if req.Inclusion&IncludeHigh != 0 {
			upper = collate.PrefixEnd(k)
		}
	}
	if lower != nil && upper != nil && bytes.Compare(lower, upper) >= 0 {
		return nil, nil, true, nil
	}
	return lower, upper, false, nil
}

// partCursor walks one partition's entries.
type partCursor struct {
	it     engines.Iterator
	ok     bool
	encKey []byte
	docid  []byte
}

func (c *partCursor) load() error {
	if !c.ok {
		return c.it.Err()
	}
	var err error
	c.encKey, c.docid, err = splitMainKey(c.it.Key())
	return err
}

// less orders entries by key, then document id.
func (c *partCursor) less(o *partCursor) bool {
	if d := bytes.Compare(c.encKey, o.encKey); d != 0 {
		return d < 0
	}
	return bytes.Compare(c.docid, o.docid) < 0
}

// scanViews reads [lower, upper) of every partition of si, merged in key
// order, into res; count-only scans just count.
func scanViews(si *snapInstance, lower, upper []byte, limit int, countOnly bool, res *ScanResult) (err error) {
	curs := make([]*partCursor, 0, len(si.views))
	defer func() {
		for _, c := range curs {
			err = errors.Join(err, c.it.Close())
		}
	}()
	for _, v := range si.views {
		it, err := v.view.NewIter(engines.Main, lower, upper)
		if err != nil {
			return err
		}
		c := &partCursor{it: it}
		curs = append(curs, c)
		c.ok = it.First()
		if err := c.load(); err != nil {
			return err
		}
	}
	if countOnly {
		for _, c := range curs {
			for c.ok {
				if limit > 0 && res.Count >= limit {
					return nil
				}
				res.Count++
				c.ok = c.it.Next()
			}
			if err := c.it.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	if limit > 0 {
		res.Entries = make([]defn.Entry, 0, min(limit, 4096))
	}
	for limit <= 0 || res.Count < limit {
		var min *partCursor
		for _, c := range curs {
			if c.ok && (min == nil || c.less(min)) {
				min = c
			}
		}
		if min == nil {
			return nil
		}
		key, err := collate.Decode(min.encKey)
		if err != nil {
			return fmt.Errorf("entry of %q: %w", min.docid, err)
		}
		res.Entries = append(res.Entries, defn.Entry{Key: key, DocID: string(min.docid)})
		res.Count++
		min.ok = min.it.Next()
		if err := min.load(); err != nil {
			return err
		}
	}
	return nil
}

// acquire returns the latest snapshot with a reference the caller releases.
func (ix *Indexer) acquire() (*snapshot, error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return nil, ErrClosed
	}
	if ix.recovering {
		return nil, ErrRecovering
	}
	ix.snap.refs.Add(1)
	return ix.snap, nil
}

// covers reports whether snapshot vector have includes want: every nonzero
// seqno of want reached, on the same branch where both name one.
func covers(have, want *upr.TsVbuuid) bool {
	if have.Len() != want.Len() {
		return false
	}
	for vb, w := range want.Seqnos {
		if w == 0 {
			continue
		}
		if have.Seqnos[vb] < w {
			return false
		}
		if hv, wv := have.Vbuuids[vb], want.Vbuuids[vb]; hv != 0 && wv != 0 && hv != wv {
			return false
		}
	}
	return true
}

// waitFor returns (with a reference) the first snapshot covering want. A
// zero timeout waits as long as ctx allows. With demand set (a scan), a
// wait that is not served at once registers want with the timekeeper: with
// Config.STOnDemand the flusher promotes as soon as the stream covers it,
// and either way the time from then to the snapshot is recorded as
// "st_delay".
func (ix *Indexer) waitFor(ctx context.Context, want *upr.TsVbuuid, timeout time.Duration, demand bool) (*snapshot, error) {
	if want == nil || want.Len() != ix.cfg.NumVbuckets {
		return nil, fmt.Errorf("indexer: consistency vector must cover %d vbuckets", ix.cfg.NumVbuckets)
	}
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	ix.mu.Lock()
	gen := ix.rollbackGen
	ix.mu.Unlock()
	var demandID uint64
	defer func() {
		if demandID != 0 {
			ix.mu.Lock()
			ix.tk.dropDemand(demandID)
			ix.mu.Unlock()
		}
	}()
	for {
		ix.mu.Lock()
		switch {
		case ix.closed:
			ix.mu.Unlock()
			return nil, ErrClosed
		case ix.rollbackGen != gen:
			ix.mu.Unlock()
			return nil, ErrIndexRollback
		case !ix.recovering && covers(ix.snap.ts, want):
			s := ix.snap
			s.refs.Add(1)
			var met int64
			if demandID != 0 {
				met = ix.tk.demandMet(demandID)
			}
			ix.mu.Unlock()
			if met != 0 && ix.cfg.Recorder != nil {
				ix.cfg.Recorder.Record("st_delay", time.Duration(max(time.Now().UnixNano()-met, 0)))
			}
			return s, nil
		}
		ch := ix.snapCh
		kick := false
		if demand && demandID == 0 {
			demandID = ix.tk.addDemand(want)
			ix.tk.stamp(time.Now().UnixNano())
			kick = ix.tk.due && ix.cfg.STOnDemand
		}
		ix.mu.Unlock()
		if kick {
			ix.kickFlusher()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-expired:
			return nil, ErrScanTimeout
		}
	}
}
