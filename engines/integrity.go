package engines

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Integrity files. Like the marker, they sit at the top of a store
// directory and belong to idxbench, not to the engine.
const (
	// SealFile lists, for a store that was closed cleanly, every file the
	// store held with its size and, for files the engine cannot verify
	// itself, its CRC-32C. Open checks the files against it and removes
	// it before the engine writes anything, so a store that is open, or
	// that a crash stopped, has no seal.
	SealFile = "IDXBENCH-SEAL"
	// DamagedFile records that an adapter found the store damaged while
	// it was open (a checksum that failed on a read, in a compaction): the
	// damage is lazy to find and would otherwise be served again after a
	// restart. Open refuses a store that has one.
	DamagedFile = "IDXBENCH-DAMAGED"
	// BallastFile is space an adapter holds allocated so that it can give
	// it back when the disk fills under the store (see the pebble
	// adapter). It holds nothing and is neither sealed nor checked.
	BallastFile = "IDXBENCH-BALLAST"
)

const (
	sealHeader  = "idxbench seal v1"
	sealTrailer = "end "
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Seal records every regular file under dir (the marker and integrity files
// aside) with its size and, when checksum reports true for its path
// relative to dir, its CRC-32C, in dir's SealFile, written atomically.
// Adapters call it last in Close, when no file will change until the next
// Open: files with checksums of their own (sstables) need only their size,
// files without (bbolt's), or whose damage an engine would take for a torn
// tail (logs), their checksum as well.
func Seal(dir string, checksum func(rel string) bool) error {
	rec, err := RecordFiles(dir, checksum, nil)
	if err != nil {
		return fmt.Errorf("seal store %q: %w", dir, err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, SealFile), rec); err != nil {
		return fmt.Errorf("seal store %q: %w", dir, err)
	}
	return nil
}

// RecordFiles returns a record of the regular files under dir (integrity
// files aside): each one's size and, when checksum says so, its CRC-32C,
// with meta (opaque, may be nil) and a checksum of the record itself. A
// seal is one; an adapter keeps others for files it will not change, such
// as a recovery point's (ReadRecord, VerifyRecord).
func RecordFiles(dir string, checksum func(rel string) bool, meta []byte) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(sealHeader + "\n")
	if meta != nil {
		fmt.Fprintf(&b, "%s%s\n", recordMeta, hex.EncodeToString(meta))
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || isIntegrityFile(rel) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum := "-"
		if checksum(rel) {
			c, err := fileCRC(path)
			if err != nil {
				return err
			}
			sum = fmt.Sprintf("%08x", c)
		}
		fmt.Fprintf(&b, "%d %s %s\n", fi.Size(), sum, strconv.Quote(filepath.ToSlash(rel)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(&b, "%s%08x\n", sealTrailer, crc32.Checksum(b.Bytes(), castagnoli))
	return b.Bytes(), nil
}

const recordMeta = "meta "

// parseRecord checks a record's own checksum and splits it into its meta
// and file lines.
func parseRecord(data []byte) (meta []byte, lines []string, err error) {
	i := bytes.LastIndex(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"+sealTrailer))
	if !bytes.HasPrefix(data, []byte(sealHeader+"\n")) || i < 0 {
		return nil, nil, errors.New("not a file record, or cut short")
	}
	body, trailer := data[:i+1], strings.TrimSpace(string(data[i+1+len(sealTrailer):]))
	if want, err := strconv.ParseUint(trailer, 16, 32); err != nil || uint32(want) != crc32.Checksum(body, castagnoli) {
		return nil, nil, errors.New("checksum mismatch")
	}
	lines = strings.Split(strings.TrimSuffix(string(body[len(sealHeader)+1:]), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		lines = nil
	}
	if len(lines) > 0 {
		if h, ok := strings.CutPrefix(lines[0], recordMeta); ok {
			if meta, err = hex.DecodeString(h); err != nil {
				return nil, nil, fmt.Errorf("malformed meta: %w", err)
			}
			lines = lines[1:]
		}
	}
	if meta == nil {
		meta = []byte{}
	}
	return meta, lines, nil
}

// ReadRecord returns the meta of a record RecordFiles made, or an error
// wrapping ErrCorrupt when the record is damaged.
func ReadRecord(data []byte) ([]byte, error) {
	meta, _, err := parseRecord(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrCorrupt)
	}
	return meta, nil
}

// VerifyRecord checks the files under dir against a record RecordFiles
// made of it: each one present, of the size and CRC-32C recorded. Files
// the record does not list are not looked at. what names the record in
// errors ("the seal of a clean Close"). Failures wrap ErrCorrupt and name
// the file.
func VerifyRecord(dir string, data []byte, what string) error {
	_, lines, err := parseRecord(data)
	if err != nil {
		return fmt.Errorf("%s of %q: %w: %w", what, dir, err, ErrCorrupt)
	}
	for _, line := range lines {
		size, rest, ok1 := strings.Cut(line, " ")
		sum, quoted, ok2 := strings.Cut(rest, " ")
		n, err1 := strconv.ParseInt(size, 10, 64)
		rel, err2 := strconv.Unquote(quoted)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || !filepath.IsLocal(filepath.FromSlash(rel)) {
			return fmt.Errorf("%s of %q: malformed line %q: %w", what, dir, line, ErrCorrupt)
		}
		file := filepath.Join(dir, filepath.FromSlash(rel))
		fi, err := os.Stat(file)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%q is missing (%s lists it): %w", file, what, ErrCorrupt)
		case err != nil:
			return fmt.Errorf("%s of %q: %w", what, dir, err)
		case fi.Size() != n:
			return fmt.Errorf("%q has %d bytes, %d in %s: %w", file, fi.Size(), n, what, ErrCorrupt)
		}
		if sum == "-" {
			continue
		}
		want, err := strconv.ParseUint(sum, 16, 32)
		if err != nil {
			return fmt.Errorf("%s of %q: malformed line %q: %w", what, dir, line, ErrCorrupt)
		}
		got, err := fileCRC(file)
		if err != nil {
			return fmt.Errorf("%s of %q: %w", what, dir, err)
		}
		if got != uint32(want) {
			return fmt.Errorf("%q has changed since %s (CRC-32C %08x, was %08x): %w", file, what, got, want, ErrCorrupt)
		}
	}
	return nil
}

func isIntegrityFile(rel string) bool {
	switch rel {
	case MarkerFile, SealFile, DamagedFile, BallastFile:
		return true
	}
	return strings.HasPrefix(rel, MarkerFile+".tmp") || strings.HasPrefix(rel, SealFile+".tmp") ||
		strings.HasPrefix(rel, DamagedFile+".tmp")
}

func fileCRC(path string) (uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, f); err != nil {
		return 0, err
	}
	return h.Sum32(), nil
}

// CheckIntegrity is what Open does before handing dir to the engine: it
// refuses a store marked damaged, and checks the files of a store closed
// cleanly against its seal (every file listed present, of the size and
// checksum recorded), then removes the seal durably, since the engine is
// about to change the files. A store without a seal (new, or stopped by a
// crash) passes, with sealed false: an adapter may then check more itself.
// Failures wrap ErrCorrupt and name the file.
func CheckIntegrity(dir string) (sealed bool, err error) {
	if note, err := os.ReadFile(filepath.Join(dir, DamagedFile)); err == nil {
		return false, fmt.Errorf("store %q was found damaged while open (%s): %w", dir, bytes.TrimSpace(note), ErrCorrupt)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("store %q: %w", dir, err)
	}
	path := filepath.Join(dir, SealFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store %q: read seal: %w", dir, err)
	}
	if err := VerifyRecord(dir, data, "the seal of a clean Close"); err != nil {
		return false, fmt.Errorf("store %q, checked against %q: %w", dir, path, err)
	}
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("store %q: remove seal: %w", dir, err)
	}
	return true, SyncDir(dir)
}

// MarkDamaged records durably that the store in dir was found damaged
// (cause says how), so the next Open refuses it with ErrCorrupt instead of
// serving what is left. Adapters call it when an engine reports corruption
// it found lazily. A failure to write the note is returned; the caller
// still reports cause.
func MarkDamaged(dir string, cause error) error {
	if _, err := os.Stat(filepath.Join(dir, DamagedFile)); err == nil {
		return nil
	}
	msg := strings.ReplaceAll(cause.Error(), "\n", " ")
	if err := WriteFileAtomic(filepath.Join(dir, DamagedFile), []byte(msg+"\n")); err != nil {
		return fmt.Errorf("mark store %q damaged: %w", dir, err)
	}
	return nil
}

// NoteDamage returns err, first marking the store in dir damaged
// (MarkDamaged) when err wraps ErrCorrupt: adapters pass every error of a
// call on an open store through it, so damage found after Open is refused
// by the next Open.
func NoteDamage(dir string, err error) error {
	if err != nil && errors.Is(err, ErrCorrupt) {
		_ = MarkDamaged(dir, err)
	}
	return err
}

// SealAll is a Seal checksum policy that checksums every file.
func SealAll(string) bool { return true }

// SealBySuffix returns a Seal checksum policy that checksums every file
// except those whose name ends in one of suffixes (files the engine
// checksums itself, block by block).
func SealBySuffix(suffixes ...string) func(rel string) bool {
	return func(rel string) bool {
		return !slices.ContainsFunc(suffixes, func(s string) bool { return strings.HasSuffix(rel, s) })
	}
}
