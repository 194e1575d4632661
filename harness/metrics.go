package harness

import (
	"runtime"
	"strings"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/idxbench/idxbench/harness/measure"
	"github.com/idxbench/idxbench/results/metricsexport"
)

// cellSource adapts a running cell — the indexer's stats and the current
// phase's latency histograms — to the Prometheus exporter.
type cellSource struct{ c *cellRun }

func (s cellSource) Collect() metricsexport.Snapshot {
	c := s.c
	c.mu.Lock()
	phase := c.phase
	c.mu.Unlock()
	cores := c.job.Cores
	if cores == 0 {
		cores = runtime.GOMAXPROCS(0)
	}
	l := metricsexport.Labels{Engine: c.job.Engine, Phase: phase, Cores: cores, Repeat: c.job.Repeat}
	st, ok := c.p.ix.Stats()
	if !ok {
		return metricsexport.Snapshot{}
	}
	snap := metricsexport.Snapshot{
		Gauges: []metricsexport.Sample{
			{Name: metricsexport.DocsPending, Labels: l, Value: float64(st.DocsPending)},
			{Name: metricsexport.DocsQueued, Labels: l, Value: float64(st.DocsQueued)},
			{Name: metricsexport.MutationQueueSize, Labels: l, Value: float64(st.MutationQueueSize)},
			{Name: metricsexport.StabilityTimestampAgeSecs, Labels: l, Value: st.SinceLastSnapshot.Seconds()},
			{Name: metricsexport.DiskBytes, Labels: l, Value: float64(st.DiskBytes)},
		},
		Counters: []metricsexport.Sample{
			{Name: metricsexport.DocsIndexedTotal, Labels: l, Value: float64(st.DocsIndexed)},
			{Name: metricsexport.SnapshotsTotal, Labels: l, Value: float64(st.NumSnapshots)},
			{Name: metricsexport.PersistentSnapshotsTotal, Labels: l, Value: float64(st.NumPersisted)},
			{Name: metricsexport.ScansTotal, Labels: l, Value: float64(st.Scans)},
			{Name: metricsexport.ScanErrorsTotal, Labels: l, Value: float64(st.ScanErrors)},
			{Name: metricsexport.SourceMutationsTotal, Labels: l, Value: float64(c.sourceMutations.Load())},
		},
	}
	c.mu.Lock()
	reg := c.reg
	c.mu.Unlock()
	if reg == nil {
		return snap
	}
	var scans *hdrhistogram.Histogram
	for _, op := range reg.Ops() {
		h := reg.Histogram(op)
		if h == nil {
			continue
		}
		switch {
		case strings.HasPrefix(op, "scan_"):
			if scans == nil {
				scans = h
			} else {
				scans.Merge(h)
			}
		case op == "flush":
			snap.Histograms = append(snap.Histograms, toHistogram(metricsexport.FlushLatencySeconds, l, h))
		case op == "persist":
			snap.Histograms = append(snap.Histograms, toHistogram(metricsexport.PersistLatencySeconds, l, h))
		case op == "index_lag":
			snap.Histograms = append(snap.Histograms, toHistogram(metricsexport.IndexLagSeconds, l, h))
		}
	}
	if scans != nil {
		snap.Histograms = append(snap.Histograms, toHistogram(metricsexport.ScanLatencySeconds, l, scans))
	}
	return snap
}

func toHistogram(name string, l metricsexport.Labels, h *hdrhistogram.Histogram) metricsexport.Histogram {
	return metricsexport.FromHDR(name, l, h, measure.Unit, nil)
}
