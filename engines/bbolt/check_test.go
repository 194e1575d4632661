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
