package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/idxbench/idxbench/harness/measure"
	"github.com/idxbench/idxbench/indexer"
)

// capacityScanner issues request_plus range scans open loop during each
// step of a search with a scan SLO.
type capacityScanner struct {
	c    *cellRun
	cfg  capacityConfig
	inst uint64
	keys [][]any
	rng  *rand.Rand
}

func (c *cellRun) newCapacityScanner(ctx context.Context, cfg capacityConfig) (*capacityScanner, error) {
	inst, err := c.scanTarget(cfg.index)
	if err != nil {
		return nil, err
	}
	keys, err := c.sampleKeys(ctx, inst.Defn.Name, 4096)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("index %s is empty: nothing to scan (load documents first)", inst.Defn.Name)
	}
	return &capacityScanner{c: c, cfg: cfg, inst: inst.ID, keys: keys, rng: rand.New(rand.NewPCG(c.rng.Uint64(), 0))}, nil
}

// scanWindow gathers one step's scan latencies.
type scanWindow struct {
	mu     sync.Mutex
	h      *hdrhistogram.Histogram
	errors int64
}

func (w *scanWindow) p99() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.h.TotalCount() == 0 {
		return 0
	}
	return ms(time.Duration(w.h.ValueAtQuantile(99)) * measure.Unit)
}

// start runs the step's scan clients until stepCtx is done, each latency
// counted from when its scan was due (no coordinated omission). A scan
// still waiting when the step ends is not dropped, which would hide the
// slowest: it finishes under ctx, or is cut off after scanCutoff and
// counted at that latency, which fails the SLO.
func (s *capacityScanner) start(stepCtx, ctx context.Context, wg *sync.WaitGroup) *scanWindow {
	w := &scanWindow{h: hdrhistogram.New(1, int64(10*time.Minute/measure.Unit), 2)}
	period := time.Duration(float64(s.cfg.clients) / s.cfg.scanRate * float64(time.Second))
	cutoff := max(scanCutoff*s.cfg.scanP99, time.Second)
	begin := time.Now()
	const op = "scan_range_request_plus"
	for i := 0; i < s.cfg.clients; i++ {
		rng := rand.New(rand.NewPCG(s.rng.Uint64(), uint64(i)))
		rec := s.c.reg.Recorder(workerScan0 + i)
		due := begin.Add(period * time.Duration(i) / time.Duration(s.cfg.clients))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for stepCtx.Err() == nil {
				if wait := time.Until(due); wait > 0 {
					select {
					case <-time.After(wait):
					case <-stepCtx.Done():
						return
					}
				}
				req := indexer.ScanRequest{InstID: s.inst, Kind: indexer.ScanRange, Consistency: indexer.RequestPlus,
					Limit: s.cfg.limit, Low: s.keys[rng.IntN(len(s.keys))], Inclusion: indexer.IncludeLow}
				t := due
				due = due.Add(period)
				qctx, cancel := context.WithTimeout(ctx, cutoff)
				_, err := s.c.p.ix.Scan(qctx, req)
				cut := qctx.Err() != nil && ctx.Err() == nil
				cancel()
				if ctx.Err() != nil {
					return
				}
				if err != nil && !cut {
					rec.RecordError(op)
					w.mu.Lock()
					w.errors++
					w.mu.Unlock()
					continue
				}
				d := time.Since(t)
				rec.Record(op, d)
				w.mu.Lock()
				w.h.RecordValue(int64(d / measure.Unit))
				w.mu.Unlock()
			}
		}()
	}
	return w
}

// scanCutoff times the scan SLO is how long a step's scan may wait before
// it is cut off and counted as that slow.
const scanCutoff = 10
