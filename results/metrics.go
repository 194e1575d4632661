package results

import (
	"strconv"
	"strings"
	"unicode"
)

// Directions Better returns.
const (
	HigherIsBetter = +1
	LowerIsBetter  = -1
	Neutral        = 0
)

// betterByName decides metrics whose name alone says it, before suffixes.
var betterByName = map[string]int{
	"mutations":         Neutral,
	"docs":              Neutral,
	"entries":           Neutral,
	"scans":             Neutral,
	"snapshots":         Neutral,
	"ops":               Neutral,
	"errors":            LowerIsBetter,
	"write_amp":         LowerIsBetter,
	"space_amp":         LowerIsBetter,
	"read_amp":          LowerIsBetter,
	"bytes_written":     LowerIsBetter,
	"bytes_read":        LowerIsBetter,
	"cpu_seconds":       LowerIsBetter,
	"free_bytes":        Neutral,
	"verify_failures":   LowerIsBetter,
	"cache_hit_ratio":   HigherIsBetter,
	"rollbacks_to_zero": LowerIsBetter,
	// How long a scan phase under ingest waited for the ingest's first
	// mutation before measuring: a property of the start, not a cost.
	"scan_warmup_ms": Neutral,
	// The rate an ingest's driver aimed at (0: closed loop): a setting.
	"driver_target_mutations_per_sec": Neutral,
	// Ratios of the pipeline to the raw engine: how much of the engine's
	// speed the pipeline keeps.
	"pipeline_to_raw_ratio":     HigherIsBetter,
	"pipeline_to_raw_cpu_ratio": HigherIsBetter,
}

// betterBySuffix is tried in order; the first suffix that matches decides.
// Longer, more specific suffixes come first.
var betterBySuffix = []struct {
	suffix string
	better int
}{
	// A cost per unit of work (bytes, CPU seconds per mutation or entry).
	{"_per_mutation", LowerIsBetter},
	{"_per_million_mutations", LowerIsBetter},
	{"_per_entry", LowerIsBetter},
	{"_per_million_entries", LowerIsBetter},
	{"_per_doc", LowerIsBetter},
	{"_per_op", LowerIsBetter},
	{"_per_key", LowerIsBetter},
	{"_per_scan", LowerIsBetter},
	{"_per_sec", HigherIsBetter},
	{"_per_cpu_sec", HigherIsBetter}, // work per CPU-second: mutations_per_cpu_sec
	{"_per_second", HigherIsBetter},
	{"_speedup", HigherIsBetter},
	{"_hit_ratio", HigherIsBetter},
	{"_ns", LowerIsBetter},
	{"_us", LowerIsBetter},
	{"_ms", LowerIsBetter},
	{"_seconds", LowerIsBetter},
	{"_bytes", LowerIsBetter},
	{"_amp", LowerIsBetter},
	{"_errors", LowerIsBetter},
	{"_failures", LowerIsBetter},
	{"_timeouts", LowerIsBetter},
	{"_mismatches", LowerIsBetter}, // scans that differed from the oracle
	{"_total", Neutral},
	{"_count", Neutral},
}

// Better says which direction of metric is good: HigherIsBetter (+1),
// LowerIsBetter (−1) or Neutral (0) for informational figures (counts,
// configuration echoes). It decides by exact name first, then by the unit
// suffix the name carries, so a new metric named by the convention
// (something_per_sec, something_p99_ms, something_bytes) needs no table
// entry. Unknown names are Neutral: compare never calls them regressions.
func Better(metric string) int {
	if b, ok := betterByName[metric]; ok {
		return b
	}
	// A node's share (cpu_seconds_index_node, peak_rss_bytes_kv_node) goes
	// the way the metric it is a share of does.
	if base, ok := strings.CutSuffix(metric, "_node"); ok {
		if i := strings.LastIndexByte(base, '_'); i > 0 {
			return Better(base[:i])
		}
	}
	for _, s := range betterBySuffix {
		if strings.HasSuffix(metric, s.suffix) {
			return s.better
		}
	}
	return Neutral
}

// CamelCase turns a phase name ("initial_build", "scan-any", "kv rollback")
// into a Go benchmark name part ("InitialBuild", "ScanAny", "KvRollback"):
// letters and digits are kept, anything else separates words.
func CamelCase(name string) string {
	var b strings.Builder
	up := true
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			up = true
			continue
		}
		if up {
			r = unicode.ToUpper(r)
			up = false
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "Phase"
	}
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }
