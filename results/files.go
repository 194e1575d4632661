package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// File names inside a results directory.
const (
	ResultsFile = "results.json"
	BenchFile   = "bench.txt"
	TicksFile   = "ticks.jsonl"
	ReportFile  = "report.html"
)

// WriteDir writes run into the results directory dir, creating it if
// needed: results.json first (the file that makes dir a results directory),
// then bench.txt and report.html, each atomically, so a reader or a crash
// sees either the previous complete file or the new one. ticks.jsonl is
// not written here — TickWriter appends it while the run goes — but its
// ticks feed the report's time-series charts for phases without Series.
//
// WriteDir may be called any number of times on the same directory (the
// harness calls it after every cell, with run.Partial set until the end).
// Metrics that are not finite numbers (JSON cannot hold them) are dropped
// from what is written and noted in the file's warnings; run itself is not
// modified. results.json is checked against JSONSchema: a file that does
// not match is still written (the measurements are worth keeping), and the
// mismatch — a bug of the writer or of the schema — is returned, wrapping
// ErrSchema.
func WriteDir(dir string, run *Run) error {
	if run == nil {
		return errors.New("write results: nil run")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create results dir %s: %w", dir, err)
	}
	clean := sanitized(run)
	data, err := json.MarshalIndent(clean, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Join(dir, ResultsFile), err)
	}
	data = append(data, '\n')
	if err := writeFileAtomic(filepath.Join(dir, ResultsFile), data); err != nil {
		return err
	}

	var errs []error
	if err := Validate(data); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", filepath.Join(dir, ResultsFile), err))
	}
	var bench bytes.Buffer
	if err := WriteBench(&bench, clean); err != nil {
		errs = append(errs, fmt.Errorf("bench.txt: %w", err))
	} else if err := writeFileAtomic(filepath.Join(dir, BenchFile), bench.Bytes()); err != nil {
		errs = append(errs, err)
	}

	withTicks := clean
	if ticks, err := ReadTicks(filepath.Join(dir, TicksFile)); err == nil && len(ticks) > 0 {
		withTicks = AttachTicks(clean, ticks)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := WriteReport(filepath.Join(dir, ReportFile), withTicks, nil); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sanitized returns a copy of run whose metrics are all finite, noting
// each dropped one in Warnings.
func sanitized(run *Run) *Run {
	out := *run
	out.Warnings = append([]string(nil), run.Warnings...)
	out.Cells = make([]Cell, len(run.Cells))
	for i, c := range run.Cells {
		c.Phases = append([]Phase(nil), c.Phases...)
		for j := range c.Phases {
			p := &c.Phases[j]
			var bad []string
			for k, v := range p.Metrics {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					bad = append(bad, k)
				}
			}
			if len(bad) > 0 {
				sort.Strings(bad)
				m := make(map[string]float64, len(p.Metrics))
				for k, v := range p.Metrics {
					m[k] = v
				}
				for _, k := range bad {
					out.Warnings = append(out.Warnings, fmt.Sprintf("cell %s phase %s: metric %s was %v, dropped", c.Key(), p.Name, k, m[k]))
					delete(m, k)
				}
				p.Metrics = m
			}
		}
		out.Cells[i] = c
	}
	if out.Schema == 0 {
		out.Schema = SchemaVersion
	}
	out.Summary = Summarize(&out)
	return &out
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, fsyncs it, renames it over path and fsyncs the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync() // best effort: some filesystems refuse fsync on a directory
		d.Close()
	}
	return nil
}

// ReadRun reads the results directory dir (or a results.json file given
// directly). Errors name the path and say whether the file is missing,
// not JSON, or of a schema version this build does not know.
func ReadRun(dir string) (*Run, error) {
	path := dir
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		path = filepath.Join(dir, ResultsFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: no results (missing %s)", dir, ResultsFile)
		}
		return nil, fmt.Errorf("read results %s: %w", path, err)
	}
	return decodeRun(data, path)
}

// decodeRun decodes results.json's bytes; path is only for messages.
func decodeRun(data []byte, path string) (*Run, error) {
	var head struct {
		Schema *int `json:"schema"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%s: corrupt results file: %w", path, err)
	}
	if head.Schema == nil {
		return nil, fmt.Errorf("%s: not an idxbench results file (no \"schema\" field)", path)
	}
	if *head.Schema < 1 || *head.Schema > SchemaVersion {
		return nil, fmt.Errorf("%s: results schema %d is not supported (this build reads schema 1 to %d)", path, *head.Schema, SchemaVersion)
	}
	var run Run
	if err := json.Unmarshal(data, &run); err != nil {
		return nil, fmt.Errorf("%s: corrupt results file: %w", path, err)
	}
	return &run, nil
}

// ReadHistory reads path as either one results directory or a directory of
// results directories (a history, such as nightly runs side by side), and
// returns the runs sorted by start time. Subdirectories without a
// results.json are ignored; a corrupt one is an error naming it, because a
// silently shorter history would change a comparison's verdict.
func ReadHistory(path string) ([]*Run, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such results directory", path)
		}
		return nil, fmt.Errorf("results %s: %w", path, err)
	}
	if !fi.IsDir() || fileExists(filepath.Join(path, ResultsFile)) {
		run, err := ReadRun(path)
		if err != nil {
			return nil, err
		}
		return []*Run{run}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("read results history %s: %w", path, err)
	}
	var runs []*Run
	for _, e := range ents {
		// Stat, not e.IsDir: a history may be a directory of symlinks.
		if !fileExists(filepath.Join(path, e.Name(), ResultsFile)) {
			continue
		}
		run, err := ReadRun(filepath.Join(path, e.Name()))
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%s: no results (neither %s nor subdirectories holding one)", path, ResultsFile)
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Started.Before(runs[j].Started) })
	return runs, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}
