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

// checkTree walks every page of the bbolt file at path reachable from its
// meta page — the B+tree of every bucket, nested and inline ones included,
// and the freelist — with plain reads, and refuses with an error wrapping
// engines.ErrCorrupt, naming the file and the page, a page beyond the
// pages in use, one whose header disagrees with where it is, one of the
// wrong type, or an element, key or value that runs outside its page.
// bbolt checks none of this: it follows page ids through its mapping (an
// id past the end of the file is a SIGBUS) and indexes elements without
// bounds (a panic on whatever goroutine reads them). A file that passes
// can be iterated without either. It costs a read of every page in use;
// Open runs it when the store was not closed cleanly (no seal to check
// the file's checksum against).
func checkTree(path string) error {
	if err := checkFile(path); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil
	}
	first := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(first, 0); err != nil {
		return fmt.Errorf("bbolt: read %q: %w", path, err)
	}
	m := decodeMeta(first)
	if m.err != "" {
		// checkFile accepted the second meta page; find it again.
		for _, ps := range []uint64{4096, 1024, 2048, 8192, 16384, 32768, 65536} {
			if int64(ps) >= fi.Size() {
				continue
			}
			if _, err := f.ReadAt(first, int64(ps)); err != nil {
				return fmt.Errorf("bbolt: read %q: %w", path, err)
			}
			if m = decodeMeta(first); m.err == "" && m.pageSize == ps {
				break
			}
		}
	} else {
		second := make([]byte, pageHeaderSize+metaSize)
		if _, err := f.ReadAt(second, int64(m.pageSize)); err == nil {
			if m1 := decodeMeta(second); m1.err == "" && m1.txid > m.txid {
				m = m1
			}
		}
	}
	w := treeWalker{f: f, path: path, ps: int(m.pageSize), hwm: m.pgid, seen: make([]uint64, m.pgid/64+1)}
	if err := w.bucket(m.root, nil, 0); err != nil {
		return err
	}
	if m.freelist != noFreelist {
		return w.freelist(m.freelist)
	}
	return nil
}

// treeWalker reads pages of one bbolt file for checkTree.
type treeWalker struct {
	f    *os.File
	path string
	ps   int
	hwm  uint64
	seen []uint64 // a bit per page visited, so a cycle ends
}

const (
	elemSize       = 16 // a branch or leaf element
	bucketHdrSize  = 16 // a bucket value: root pgid, sequence
	bucketLeafFlag = 0x01
	maxTreeDepth   = 64
)

func (w *treeWalker) bad(id uint64, format string, args ...any) error {
	return fmt.Errorf("bbolt: file %q: page %d: %s: %w", w.path, id, fmt.Sprintf(format, args...), engines.ErrCorrupt)
}

// page reads page id and its overflow pages.
func (w *treeWalker) page(id uint64) ([]byte, error) {
	if id < 2 || id >= w.hwm {
		return nil, w.bad(id, "beyond the %d pages in use", w.hwm)
	}
	if w.seen[id/64]&(1<<(id%64)) != 0 {
		return nil, w.bad(id, "reached twice (a cycle, or shared by two parents)")
	}
	w.seen[id/64] |= 1 << (id % 64)
	hdr := make([]byte, pageHeaderSize)
	if _, err := w.f.ReadAt(hdr, int64(id)*int64(w.ps)); err != nil {
		return nil, fmt.Errorf("bbolt: read %q: %w", w.path, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(hdr); got != id {
		return nil, w.bad(id, "carries id %d", got)
	}
	overflow := uint64(le.Uint32(hdr[12:]))
	if id+overflow >= w.hwm {
		return nil, w.bad(id, "its %d overflow pages run past the %d pages in use", overflow, w.hwm)
	}
	buf := make([]byte, (overflow+1)*uint64(w.ps))
	if _, err := w.f.ReadAt(buf, int64(id)*int64(w.ps)); err != nil {
		return nil, fmt.Errorf("bbolt: read %q: %w", w.path, err)
	}
	return buf, nil
}

// bucket checks the tree whose root is page root, or, when root is 0, the
// inline page inline.
func (w *treeWalker) bucket(root uint64, inline []byte, depth int) error {
	if depth > maxTreeDepth {
		return w.bad(root, "buckets nested deeper than %d", maxTreeDepth)
	}
	if root == 0 {
		return w.node(0, inline, depth)
	}
	p, err := w.page(root)
	if err != nil {
		return err
	}
	return w.node(root, p, depth)
}

// node checks one branch or leaf page p (id 0: an inline page) and what
// it points to.
func (w *treeWalker) node(id uint64, p []byte, depth int) error {
	if depth > maxTreeDepth {
		return w.bad(id, "a tree deeper than %d", maxTreeDepth)
	}
	if len(p) < pageHeaderSize {
		return w.bad(id, "inline page of %d bytes", len(p))
	}
	le := binary.LittleEndian
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	if pageHeaderSize+count*elemSize > len(p) {
		return w.bad(id, "%d elements do not fit in %d bytes", count, len(p))
	}
	for i := range count {
		off := pageHeaderSize + i*elemSize
		e := p[off : off+elemSize]
		switch {
		case flags&branchPageFlag != 0 && id != 0:
			pos, ksize, child := int(le.Uint32(e)), int(le.Uint32(e[4:])), le.Uint64(e[8:])
			if off+pos+ksize > len(p) || off+pos < 0 {
				return w.bad(id, "branch element %d's key runs outside the page", i)
			}
			c, err := w.page(child)
			if err != nil {
				return err
			}
			if err := w.node(child, c, depth+1); err != nil {
				return err
			}
		case flags&leafPageFlag != 0:
			eflags, pos, ksize, vsize := le.Uint32(e), int(le.Uint32(e[4:])), int(le.Uint32(e[8:])), int(le.Uint32(e[12:]))
			end := off + pos + ksize + vsize
			if pos < 0 || ksize < 0 || vsize < 0 || end > len(p) || end < off {
				return w.bad(id, "leaf element %d's key or value runs outside the page", i)
			}
			if eflags&bucketLeafFlag == 0 {
				continue
			}
			v := p[off+pos+ksize : end]
			if len(v) < bucketHdrSize {
				return w.bad(id, "leaf element %d: a bucket of %d bytes", i, len(v))
			}
			if err := w.bucket(le.Uint64(v), v[bucketHdrSize:], depth+1); err != nil {
				return err
			}
		default:
			return w.bad(id, "flags %#x: neither a branch nor a leaf page", flags)
		}
	}
	return nil
}

// freelist checks that the freelist's ids fit in its pages and lie among
// the pages in use.
func (w *treeWalker) freelist(id uint64) error {
	p, err := w.page(id)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	start, count := pageHeaderSize, uint64(le.Uint16(p[10:]))
	if count == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			return w.bad(id, "freelist count cut short")
		}
		count, start = le.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > uint64(len(p)-start)/8 {
		return w.bad(id, "%d free ids do not fit in the freelist's %d bytes", count, len(p))
	}
	for i := range count {
		if free := le.Uint64(p[start+int(i)*8:]); free < 2 || free >= w.hwm {
			return w.bad(id, "free page %d is beyond the %d pages in use", free, w.hwm)
		}
	}
	return nil
}
