package badger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	badgerdb "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"

	"github.com/idxbench/idxbench/engines"
)

// checkFiles checks, before badger opens the database in path, what it
// would otherwise find damaged half-way through Open, after it has started
// goroutines that a failed Open leaves running: the key registry, the
// value logs' headers and the MANIFEST. Then it verifies the tables
// (checkTables). Damage is an error wrapping engines.ErrCorrupt that names
// the file.
func checkFiles(path string, opt badgerdb.Options, tables bool) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil // a new database
	}
	kr, err := badgerdb.OpenKeyRegistry(badgerdb.KeyRegistryOptions{Dir: path, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("key registry %q: %w: %w", filepath.Join(path, badgerdb.KeyRegistryFileName), engines.ErrCorrupt, err)
	}
	if err := kr.Close(); err != nil {
		return err
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".vlog" {
			continue
		}
		// A value log starts with the id of the key it is encrypted with
		// (0: none, all the adapter writes) and a 12-byte IV. Shorter
		// files badger truncates and starts again.
		file := filepath.Join(path, e.Name())
		hdr := make([]byte, 8)
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		n, _ := f.ReadAt(hdr, 0)
		f.Close()
		if n == len(hdr) && binary.BigEndian.Uint64(hdr) != 0 {
			return fmt.Errorf("value log %q: header names encryption key %d; the store is not encrypted: %w",
				file, binary.BigEndian.Uint64(hdr), engines.ErrCorrupt)
		}
	}
	return checkTables(path, opt, tables)
}

// checkTables verifies every sstable the MANIFEST in path names before
// badger opens the database. Badger trusts its tables where it cannot
// afford to fail: a footer pointing outside the file makes its loader call
// log.Fatalf (the process exits), garbage in an index or block panics in
// the loader's goroutines or later in a compaction's, and a table whose
// checksum fails is logged and skipped — its data gone, without an error.
// And it reads blocks without checking their checksums, so a flipped byte
// would reach a scan. checkTables reads each table with plain reads (no
// mapping), checks its footer's bounds, then has badger's own table code
// verify the index and every block's checksum, on this goroutine and under
// recover. A table missing, cut short or damaged is refused with an error
// wrapping engines.ErrCorrupt that names the file. It costs a read and
// decompression of every table (about 4 s per GB on one core; the tables
// are checked in parallel), so Open asks for it only when the store has no
// seal to check the tables' checksums against (after a crash); with
// verify false, only the MANIFEST is read and each table's presence and
// footer checked.
func checkTables(path string, opt badgerdb.Options, verify bool) error {
	mf, err := os.Open(filepath.Join(path, badgerdb.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a new database
	}
	if err != nil {
		return err
	}
	manifest, _, err := badgerdb.ReplayManifestFile(mf, opt.ExternalMagicVersion, opt)
	mf.Close()
	if err != nil {
		return fmt.Errorf("manifest %q: %w: %w", mf.Name(), engines.ErrCorrupt, err)
	}
	// Tables are checked in parallel, GOMAXPROCS at a time; the error of
	// the lowest table id is reported, so a rerun reports the same one.
	ids := slices.Sorted(maps.Keys(manifest.Tables))
	errs := make([]error, len(ids))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(ids)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(ids); i = int(next.Add(1) - 1) {
				id := ids[i]
				errs[i] = checkTable(table.NewFilename(id, path), id, manifest.Tables[id], opt, verify)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func checkTable(file string, id uint64, tm badgerdb.TableManifest, opt badgerdb.Options, verify bool) (err error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("table %q: %s: %w", file, fmt.Sprintf(format, args...), engines.ErrCorrupt)
	}
	if tm.KeyID != 0 {
		return nil // encrypted: the adapter never writes such tables
	}
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return bad("missing")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	u32 := func(off uint64) (uint64, error) {
		var b [4]byte
		if _, err := f.ReadAt(b[:], int64(off)); err != nil {
			return 0, err
		}
		return uint64(binary.BigEndian.Uint32(b[:])), nil
	}
	// The footer, from the end: checksum length, checksum, index length,
	// index (table.initIndex reads it so, and exits the process when a
	// length points outside the file).
	n := uint64(fi.Size())
	if n < 8 {
		return bad("%d bytes, too short for a footer", n)
	}
	chkLen, err := u32(n - 4)
	if err != nil {
		return err
	}
	if chkLen > n-8 {
		return bad("footer checksum length %d does not fit in %d bytes", chkLen, n)
	}
	idxLen, err := u32(n - 8 - chkLen)
	if err != nil {
		return err
	}
	if idxLen > n-8-chkLen {
		return bad("index length %d does not fit in %d bytes", idxLen, n)
	}
	if !verify {
		return nil
	}
	data := make([]byte, n)
	if _, err := f.ReadAt(data, 0); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = bad("badger panicked reading it: %v", r)
		}
	}()
	t, err := table.OpenInMemoryTable(data, id, &table.Options{
		ChkMode:            options.OnTableRead,
		BlockSize:          opt.BlockSize,
		BloomFalsePositive: opt.BloomFalsePositive,
		Compression:        tm.Compression,
	})
	if err != nil {
		return bad("%v", err)
	}
	if err := t.VerifyChecksum(); err != nil {
		return bad("%v", err)
	}
	return nil
}
