package bbolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idxbench/idxbench/engines"
)

// boltFile returns the bytes of a closed store's data.db holding a few
// hundred keys, and its page size.
func boltFile(t *testing.T) ([]byte, int) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s")
	s, err := Open(dir, engines.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		var b engines.Batch
		for k := range 100 {
			b.Set(engines.Main, fmt.Appendf(nil, "key-%d-%d", i, k), []byte(strings.Repeat("v", 50)))
		}
		if err := s.Apply(&b, engines.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, dataFile))
	if err != nil {
		t.Fatal(err)
	}
	return data, int(decodeMeta(data).pageSize)
}

// TestCheckFile damages a real bbolt file in the ways that would make bbolt
// read past its end through the mapping (SIGBUS), or trust a page it
// cannot, and checks that checkFile refuses each, naming the file.
func TestCheckFile(t *testing.T) {
	orig, ps := boltFile(t)
	le := binary.LittleEndian
	meta := func(data []byte, i int) []byte { return data[i*ps+pageHeaderSize:] }
	// newer is the meta page bbolt uses (the higher txid).
	newer := 0
	if le.Uint64(meta(orig, 1)[48:]) > le.Uint64(meta(orig, 0)[48:]) {
		newer = 1
	}
	resum := func(m []byte) {
		h := fnv.New64a()
		h.Write(m[:metaChecksumOff])
		le.PutUint64(m[metaChecksumOff:], h.Sum64())
	}
	for _, tc := range []struct {
		name   string
		damage func(d []byte) []byte
		want   string // "" = accepted
	}{
		{name: "intact", damage: func(d []byte) []byte { return d }},
		{name: "empty", damage: func(d []byte) []byte { return nil }},
		{name: "not whole pages", damage: func(d []byte) []byte { return d[:len(d)-100] }, want: "not a whole number"},
		{name: "pages cut off", damage: func(d []byte) []byte { return d[:len(d)-ps] }, want: "counts"},
		{name: "half a meta page", damage: func(d []byte) []byte { return d[:40] }, want: "no valid meta page"},
		{name: "newer meta page damaged, older one used", damage: func(d []byte) []byte {
			meta(d, newer)[3] ^= 0xff
			return d
		}},
		{name: "both meta pages damaged", damage: func(d []byte) []byte {
			meta(d, 0)[20] ^= 0xff
			meta(d, 1)[20] ^= 0xff
			return d
		}, want: "no valid meta page"},
		{name: "high-water mark past the end", damage: func(d []byte) []byte {
			m := meta(d, newer)
			le.PutUint64(m[40:], le.Uint64(m[40:])+10)
			resum(m)
			return d
		}, want: "counts"},
		{name: "root page beyond the high-water mark", damage: func(d []byte) []byte {
			m := meta(d, newer)
			le.PutUint64(m[16:], le.Uint64(m[40:])+1)
			resum(m)
			return d
		}, want: "root page"},
		{name: "freelist page of the wrong type", damage: func(d []byte) []byte {
			fl := le.Uint64(meta(d, newer)[32:])
			le.PutUint16(d[int(fl)*ps+8:], leafPageFlag)
			return d
		}, want: "freelist page"},
		{name: "freelist overflow past the end", damage: func(d []byte) []byte {
			fl := le.Uint64(meta(d, newer)[32:])
			le.PutUint32(d[int(fl)*ps+12:], 1000)
			return d
		}, want: "overflow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), dataFile)
			if err := os.WriteFile(path, tc.damage(append([]byte(nil), orig...)), 0o644); err != nil {
				t.Fatal(err)
			}
			err := checkFile(path)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("checkFile: %v", err)
				}
				return
			}
			if !errors.Is(err, engines.ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkFile = %v, want ErrCorrupt naming %s and saying %q", err, path, tc.want)
			}
		})
	}
}

// findPage returns the first page of the tree (reachable from the meta
// page bbolt uses; a file also holds stale copies) with flag set in its
// header and at least one element.
func findPage(t *testing.T, data []byte, ps int, flag uint16) int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "walk.db")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m0, m1 := decodeMeta(data), decodeMeta(data[ps:])
	m := m0
	if m1.txid > m0.txid {
		m = m1
	}
	w := treeWalker{f: f, path: path, ps: ps, hwm: m.pgid, seen: make([]uint64, m.pgid/64+1)}
	if err := w.bucket(m.root, nil, 0); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	for id := uint64(2); id < m.pgid; id++ {
		p := data[id*uint64(ps):]
		if w.seen[id/64]&(1<<(id%64)) != 0 && le.Uint16(p[8:])&flag != 0 && le.Uint16(p[10:]) > 0 {
			return int(id)
		}
	}
	t.Fatalf("no page of the tree with flag %#x", flag)
	return 0
}

// TestCheckTree damages pages inside a real bbolt file's tree — what
// checkFile (meta pages only) cannot see and what would make bbolt read
// past the file (SIGBUS) or past a page (panic) — and checks that
// checkTree refuses each, naming the file; an intact file passes.
func TestCheckTree(t *testing.T) {
	orig, ps := boltFile(t)
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		damage func(d []byte) []byte
		want   string
	}{
		{name: "intact", damage: func(d []byte) []byte { return d }},
		{name: "branch points past the pages in use", damage: func(d []byte) []byte {
			p := d[findPage(t, d, ps, branchPageFlag)*ps:]
			le.PutUint64(p[pageHeaderSize+8:], uint64(len(d)/ps+100))
			return d
		}, want: "beyond the"},
		{name: "leaf key runs off its page", damage: func(d []byte) []byte {
			p := d[findPage(t, d, ps, leafPageFlag)*ps:]
			le.PutUint32(p[pageHeaderSize+8:], uint32(ps*4))
			return d
		}, want: "runs outside the page"},
		{name: "too many elements", damage: func(d []byte) []byte {
			p := d[findPage(t, d, ps, leafPageFlag)*ps:]
			le.PutUint16(p[10:], 0xFFF0)
			return d
		}, want: "do not fit"},
		{name: "child carries another id", damage: func(d []byte) []byte {
			id := findPage(t, d, ps, leafPageFlag)
			le.PutUint64(d[id*ps:], uint64(id+1))
			return d
		}, want: "carries id"},
		{name: "child of the wrong type", damage: func(d []byte) []byte {
			id := findPage(t, d, ps, leafPageFlag)
			le.PutUint16(d[id*ps+8:], freelistPageFlag)
			return d
		}, want: "neither a branch nor a leaf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), dataFile)
			if err := os.WriteFile(path, tc.damage(append([]byte(nil), orig...)), 0o644); err != nil {
				t.Fatal(err)
			}
			err := checkTree(path)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("checkTree: %v", err)
				}
				return
			}
			if !errors.Is(err, engines.ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkTree = %v, want ErrCorrupt naming %s and saying %q", err, path, tc.want)
			}
		})
	}
}
