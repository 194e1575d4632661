package bbolt

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	"github.com/idxbench/idxbench/engines"
)

// bbolt's on-disk layout, as far as checkFile needs it (bbolt keeps these
// in an internal package). A page starts with a 16-byte header: id uint64,
// flags uint16, count uint16, overflow uint32. A meta page's body follows:
// magic, version, pageSize, flags uint32; root bucket {root pgid, sequence
// uint64}; freelist pgid, high-water pgid, txid, checksum uint64 — the
// checksum being FNV-64a of the 56 bytes before it. Integers are in host
// order, little-endian on every platform idxbench runs on.
const (
	pageHeaderSize   = 16
	metaSize         = 64
	boltMagic        = 0xED0CDAED
	boltFormat       = 2
	metaChecksumOff  = 56
	leafPageFlag     = 0x02
	branchPageFlag   = 0x01
	freelistPageFlag = 0x10
	noFreelist       = ^uint64(0)
)

type boltMeta struct {
	pageSize uint64
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages [0, pgid) are in use or free
	txid     uint64
	err      string // why the meta page is invalid; "" when it is valid
}

func decodeMeta(page []byte) boltMeta {
	if len(page) < pageHeaderSize+metaSize {
		return boltMeta{err: "cut short"}
	}
	b := page[pageHeaderSize : pageHeaderSize+metaSize]
	le := binary.LittleEndian
	m := boltMeta{
		pageSize: uint64(le.Uint32(b[8:])),
		root:     le.Uint64(b[16:]),
		freelist: le.Uint64(b[32:]),
		pgid:     le.Uint64(b[40:]),
		txid:     le.Uint64(b[48:]),
	}
	h := fnv.New64a()
	h.Write(b[:metaChecksumOff])
	switch {
	case le.Uint32(b[0:]) != boltMagic:
		m.err = "bad magic"
	case le.Uint32(b[4:]) != boltFormat:
		m.err = fmt.Sprintf("version %d", le.Uint32(b[4:]))
	case le.Uint64(b[metaChecksumOff:]) != h.Sum64():
		m.err = "checksum mismatch"
	case m.pageSize < 512 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0:
		m.err = fmt.Sprintf("page size %d", m.pageSize)
	}
	return m
}

// checkFile checks the bbolt file at path before bolt.Open maps it. bbolt
// maps far more than the file (initial_mmap_size) and trusts its meta page
// for where pages are, so a page past the end of a file cut short would be
// read through the mapping and kill the process with SIGBUS. checkFile
// reads both meta pages with plain reads and refuses, with an error
// wrapping engines.ErrCorrupt that names the file: a file without a valid
// meta page; one whose size is not a multiple of its page size; one
// shorter than the pages its meta page counts; a root or freelist page
// beyond them, of the wrong type, or running past the end of the file. An
// empty file is left to bbolt (it initialises one); the caller decides
// whether the store may be new.
func checkFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("bbolt: file %q (%d bytes): %s: %w", path, size, fmt.Sprintf(format, args...), engines.ErrCorrupt)
	}
	read := func(off, n int64) ([]byte, error) {
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			return nil, err
		}
		return buf, nil
	}
	first, err := read(0, pageHeaderSize+metaSize)
	if err != nil {
		return fmt.Errorf("bbolt: read %q: %w", path, err)
	}
	m0 := decodeMeta(first)
	// The second meta page is one page in; its page size comes from the
	// first, or, when that is damaged, from the second itself (bbolt tries
	// the same).
	m1 := boltMeta{err: "no valid second meta page"}
	for _, ps := range []uint64{m0.pageSize, 4096, 1024, 2048, 8192, 16384, 32768, 65536} {
		if ps == 0 || int64(ps) >= size {
			continue
		}
		second, err := read(int64(ps), pageHeaderSize+metaSize)
		if err != nil {
			return fmt.Errorf("bbolt: read %q: %w", path, err)
		}
		if m1 = decodeMeta(second); m1.err == "" && m1.pageSize == ps {
			break
		}
		m1 = boltMeta{err: "no valid second meta page"}
	}
	// bbolt uses the valid meta page with the higher transaction id.
	m := m0
	switch {
	case m0.err != "" && m1.err != "":
		return bad("no valid meta page (first: %s; second: %s)", m0.err, m1.err)
	case m0.err != "" || (m1.err == "" && m1.txid > m0.txid):
		m = m1
	}
	ps := int64(m.pageSize)
	if size%ps != 0 {
		return bad("not a whole number of %d-byte pages", ps)
	}
	if m.pgid > uint64(size/ps) || m.pgid < 2 {
		return bad("the meta page of transaction %d counts %d pages, the file holds %d", m.txid, m.pgid, size/ps)
	}
	checkPage := func(what string, id uint64, flags uint16) error {
		if id >= m.pgid {
			return bad("%s page %d is beyond the %d pages in use", what, id, m.pgid)
		}
		hdr, err := read(int64(id)*ps, pageHeaderSize)
		if err != nil {
			return fmt.Errorf("bbolt: read %q: %w", path, err)
		}
		le := binary.LittleEndian
		gotID, gotFlags, overflow := le.Uint64(hdr), le.Uint16(hdr[8:]), uint64(le.Uint32(hdr[12:]))
		switch {
		case gotID != id:
			return bad("%s page %d carries id %d", what, id, gotID)
		case gotFlags&flags == 0:
			return bad("%s page %d has flags %#x", what, id, gotFlags)
		case id+overflow >= m.pgid:
			return bad("%s page %d and its %d overflow pages run past the %d pages in use", what, id, overflow, m.pgid)
		}
		return nil
	}
	if err := checkPage("root", m.root, leafPageFlag|branchPageFlag); err != nil {
		return err
	}
	if m.freelist != noFreelist {
		if err := checkPage("freelist", m.freelist, freelistPageFlag); err != nil {
			return err
		}
	}
	return nil
}
