package harness

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"

	"github.com/idxbench/idxbench/engines"
)

// DamageTruncate is CrashConfig.Damage's one kind: a store file cut short
// between a kill and the restart.
const DamageTruncate = "truncate"

// truncateStoreFile cuts the largest file of one store under dir (the
// store chosen by rng among those found, in path order) to half its size,
// as a disk or a careless copy might leave it, and says what it did. The
// stores are the directories holding an engine's marker file; the marker,
// seal and ballast files are not the engine's data and are left alone.
func truncateStoreFile(dir string, rng *rand.Rand) (string, error) {
	var stores []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && d.Name() == engines.MarkerFile {
			stores = append(stores, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("find the stores under %s: %w", dir, err)
	}
	if len(stores) == 0 {
		return "", fmt.Errorf("no store under %s to damage", dir)
	}
	sort.Strings(stores)
	store := stores[rng.IntN(len(stores))]
	var path string
	var size int64 = -1
	err = filepath.WalkDir(store, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		switch d.Name() {
		case engines.MarkerFile, engines.SealFile, engines.BallastFile:
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() > size {
			path, size = p, fi.Size()
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("find a file of store %s: %w", store, err)
	}
	if path == "" || size < 2 {
		return fmt.Sprintf("store %s has no file to cut short", store), nil
	}
	if err := os.Truncate(path, size/2); err != nil {
		return "", fmt.Errorf("truncate %s: %w", path, err)
	}
	return fmt.Sprintf("cut %s from %d to %d bytes", path, size, size/2), nil
}
