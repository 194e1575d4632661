package upr

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// TsVbuuid is a timestamp vector: for each vbucket, a seqno on branch Vbuuid
// inside snapshot [SnapStart, SnapEnd]. The indexer's high-watermark and
// stability timestamps, and the vectors persistent snapshots are taken at,
// are all TsVbuuids.
type TsVbuuid struct {
	Seqnos    []Seqno
	Vbuuids   []Vbuuid
	Snapshots [][2]Seqno
}

// NewTsVbuuid returns the zero vector over n vbuckets.
func NewTsVbuuid(n int) *TsVbuuid {
	return &TsVbuuid{
		Seqnos:    make([]Seqno, n),
		Vbuuids:   make([]Vbuuid, n),
		Snapshots: make([][2]Seqno, n),
	}
}

// Len is the number of vbuckets.
func (ts *TsVbuuid) Len() int { return len(ts.Seqnos) }

// Clone returns a deep copy.
func (ts *TsVbuuid) Clone() *TsVbuuid {
	c := NewTsVbuuid(ts.Len())
	copy(c.Seqnos, ts.Seqnos)
	copy(c.Vbuuids, ts.Vbuuids)
	copy(c.Snapshots, ts.Snapshots)
	return c
}

// Equal reports whether both vectors are identical.
func (ts *TsVbuuid) Equal(o *TsVbuuid) bool {
	if ts.Len() != o.Len() {
		return false
	}
	for i := range ts.Seqnos {
		if ts.Seqnos[i] != o.Seqnos[i] || ts.Vbuuids[i] != o.Vbuuids[i] || ts.Snapshots[i] != o.Snapshots[i] {
			return false
		}
	}
	return true
}

// AsRecent reports whether ts is at least as recent as o: the same vbuuids
// wherever o has one, and every seqno ≥ o's.
func (ts *TsVbuuid) AsRecent(o *TsVbuuid) bool {
	if ts.Len() != o.Len() {
		return false
	}
	for i := range ts.Seqnos {
		if o.Vbuuids[i] != 0 && ts.Vbuuids[i] != o.Vbuuids[i] {
			return false
		}
		if ts.Seqnos[i] < o.Seqnos[i] {
			return false
		}
	}
	return true
}

// SeqnosLE reports whether every seqno of ts is ≤ o's (vbuuids ignored).
func (ts *TsVbuuid) SeqnosLE(o *TsVbuuid) bool {
	if ts.Len() != o.Len() {
		return false
	}
	for i := range ts.Seqnos {
		if ts.Seqnos[i] > o.Seqnos[i] {
			return false
		}
	}
	return true
}

// SnapAligned reports whether every vbucket's seqno is at the end of its
// snapshot (a zero seqno is aligned): only such vectors describe a state the
// bucket actually had, so only they may become stability timestamps.
func (ts *TsVbuuid) SnapAligned() bool {
	for i, s := range ts.Seqnos {
		if s != 0 && s != ts.Snapshots[i][1] {
			return false
		}
	}
	return true
}

// Sum is the total of all seqnos, a cheap progress figure.
func (ts *TsVbuuid) Sum() uint64 {
	var n uint64
	for _, s := range ts.Seqnos {
		n += uint64(s)
	}
	return n
}

func (ts *TsVbuuid) String() string {
	return fmt.Sprintf("ts{vbs=%d sum=%d}", ts.Len(), ts.Sum())
}

// MarshalBinary encodes the vector compactly (uvarints) for a store's meta
// keyspace or a recovery point's meta.
func (ts *TsVbuuid) MarshalBinary() ([]byte, error) {
	buf := make([]byte, 0, 8+ts.Len()*8)
	buf = binary.AppendUvarint(buf, uint64(ts.Len()))
	for i := range ts.Seqnos {
		buf = binary.AppendUvarint(buf, uint64(ts.Seqnos[i]))
		buf = binary.AppendUvarint(buf, uint64(ts.Vbuuids[i]))
		buf = binary.AppendUvarint(buf, uint64(ts.Snapshots[i][0]))
		buf = binary.AppendUvarint(buf, uint64(ts.Snapshots[i][1]))
	}
	return buf, nil
}

var errShortTs = errors.New("timestamp vector: truncated encoding")

// UnmarshalBinary decodes what MarshalBinary wrote.
func (ts *TsVbuuid) UnmarshalBinary(b []byte) error {
	next := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errShortTs
		}
		b = b[n:]
		return v, nil
	}
	n, err := next()
	if err != nil {
		return err
	}
	if n > 1<<16 {
		return fmt.Errorf("timestamp vector: %d vbuckets is out of range", n)
	}
	*ts = *NewTsVbuuid(int(n))
	for i := 0; i < int(n); i++ {
		var v [4]uint64
		for j := range v {
			if v[j], err = next(); err != nil {
				return err
			}
		}
		ts.Seqnos[i], ts.Vbuuids[i] = Seqno(v[0]), Vbuuid(v[1])
		ts.Snapshots[i] = [2]Seqno{Seqno(v[2]), Seqno(v[3])}
	}
	if len(b) != 0 {
		return fmt.Errorf("timestamp vector: %d trailing bytes", len(b))
	}
	return nil
}
