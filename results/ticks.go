package results

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
)

// TickRecord is one line of ticks.jsonl: a Tick and the cell and phase it
// belongs to.
type TickRecord struct {
	CellKey
	Phase string `json:"phase"`
	Tick
}

// TickWriter appends TickRecords to a ticks.jsonl file while a run goes.
// Each record is one write(2) on a file opened for appending, so records
// from processes that take turns (the harness's cells run one after
// another) never interleave, and a crash loses at most the last line,
// which ReadTicks then skips. Safe for concurrent use.
type TickWriter struct {
	mu   sync.Mutex
	f    *os.File
	path string
	buf  bytes.Buffer
}

// OpenTickWriter opens path for appending, creating it if needed.
func OpenTickWriter(path string) (*TickWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open ticks %s: %w", path, err)
	}
	return &TickWriter{f: f, path: path}, nil
}

// Write appends one record. Non-finite numbers are written as 0 so that
// the line stays valid JSON.
func (w *TickWriter) Write(rec TickRecord) error {
	rec.Tick = finiteTick(rec.Tick)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Reset()
	if err := json.NewEncoder(&w.buf).Encode(&rec); err != nil {
		return fmt.Errorf("encode tick for %s: %w", w.path, err)
	}
	if _, err := w.f.Write(w.buf.Bytes()); err != nil {
		return fmt.Errorf("append tick to %s: %w", w.path, err)
	}
	return nil
}

// Close flushes the file to disk and closes it.
func (w *TickWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.f.Sync(), w.f.Close())
}

func finiteTick(t Tick) Tick {
	fix := func(v *float64) {
		if math.IsNaN(*v) || math.IsInf(*v, 0) {
			*v = 0
		}
	}
	fix(&t.Elapsed)
	fix(&t.OpsPerSec)
	fix(&t.P50Ms)
	fix(&t.P95Ms)
	fix(&t.P99Ms)
	fix(&t.MaxMs)
	if len(t.Gauges) > 0 {
		g := make(map[string]float64, len(t.Gauges))
		for k, v := range t.Gauges {
			fix(&v)
			g[k] = v
		}
		t.Gauges = g
	}
	return t
}

// ReadTicks reads a ticks.jsonl file. A torn last line (a crash in the
// middle of a write) is skipped; a bad line elsewhere is an error naming
// the file and line.
func ReadTicks(path string) ([]TickRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read ticks: %w", err)
	}
	defer f.Close()
	return decodeTicks(f, path)
}

func decodeTicks(r io.Reader, name string) ([]TickRecord, error) {
	var recs []TickRecord
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var rec TickRecord
			if jerr := json.Unmarshal(line, &rec); jerr != nil {
				if err == io.EOF {
					return recs, nil // torn final line
				}
				return recs, fmt.Errorf("%s:%d: corrupt tick: %w", name, n, jerr)
			}
			recs = append(recs, rec)
		}
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, fmt.Errorf("read ticks %s: %w", name, err)
		}
	}
}

// AttachTicks returns a copy of run in which each phase without Series
// gets the ticks recorded for its cell and phase. run is not modified.
func AttachTicks(run *Run, ticks []TickRecord) *Run {
	type key struct {
		CellKey
		phase string
	}
	by := map[key][]Tick{}
	for _, t := range ticks {
		k := key{t.CellKey, t.Phase}
		by[k] = append(by[k], t.Tick)
	}
	out := *run
	out.Cells = make([]Cell, len(run.Cells))
	for i, c := range run.Cells {
		c.Phases = append([]Phase(nil), c.Phases...)
		for j := range c.Phases {
			p := &c.Phases[j]
			if len(p.Series) == 0 {
				p.Series = by[key{c.Key(), p.Name}]
			}
		}
		out.Cells[i] = c
	}
	return &out
}
