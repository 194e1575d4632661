package harness

import (
	"fmt"
	"strings"
	"time"
)

// A rollback's timeline: when each step of the flow happened, measured
// from the moment the index node's streams ended. The engine's restore
// is seen through the indexer's recorder ("rollback" and "recover" are
// recorded when a restore ends, with its duration), so in a procs
// topology, where the node's timings arrive as histograms, the timeline
// has no engine steps.

// restoreSpan is one restore of the slices the indexer recorded.
type restoreSpan struct{ start, end time.Time }

// noteRestore records a restore that ended now after d.
func (c *cellRun) noteRestore(d time.Duration) {
	end := time.Now()
	c.restoreMu.Lock()
	c.restores = append(c.restores, restoreSpan{end.Add(-d), end})
	c.restoreMu.Unlock()
}

// takeRestores returns the restores noted since the last call.
func (c *cellRun) takeRestores() []restoreSpan {
	c.restoreMu.Lock()
	defer c.restoreMu.Unlock()
	r := c.restores
	c.restores = nil
	return r
}

// timeline collects the steps of one rollback.
type timeline struct {
	zero  time.Time // the streams ended
	names []string
	at    []time.Time
}

func (tl *timeline) mark(name string, t time.Time) {
	tl.names = append(tl.names, name)
	tl.at = append(tl.at, t)
}

// report adds timeline_<step>_ms metrics (from the stream end) and
// returns the timeline as one line, the steps in the order they happened.
func (tl *timeline) report(m map[string]float64) string {
	var b strings.Builder
	b.WriteString("timeline: stream end 0 ms")
	for i, name := range tl.names {
		off := ms(tl.at[i].Sub(tl.zero))
		m["timeline_"+name+"_ms"] = off
		fmt.Fprintf(&b, ", %s %+.1f ms", strings.ReplaceAll(name, "_", " "), off)
	}
	return b.String()
}
