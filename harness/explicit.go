package harness

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
)

// Scenario settings read their zero value as "take the default" (a field
// left out of the YAML is zero). Where zero is no valid value, a zero
// written in the file would be replaced by the default in silence; these
// tables name those settings and what they must be instead, and
// explicitZeros refuses them.

// indexerZeroInvalid: indexer settings whose zero is out of range.
var indexerZeroInvalid = map[string]string{
	"snapshot_interval": "at least 10ms",
	"persist_interval":  "a positive duration",
	"max_rollbacks":     "in 1..100",
	"st_mode":           "local or coordinator",
	"durability":        "nosync or sync",
	"queue_size":        "≥ 1",
	"flush_batch_size":  "≥ 1",
}

// phaseZeroInvalid: phase settings whose zero is out of range, for every
// type that accepts them; "type.setting" entries apply to one type.
var phaseZeroInvalid = map[string]string{
	"name":                "a name",
	"duration":            "a positive duration",
	"kind":                "range, lookup, count or all",
	"consistency":         "any, request_plus or at_plus",
	"clients":             "in 1..1024",
	"limit":               "≥ 1",
	"index":               "an index name",
	"entries":             "≥ 1",
	"point":               "recent, boundary or unknown-vbuuid",
	"indexes":             "a list of index names",
	PhaseFault + ".fault": "one of " + strings.Join(faultNames, ", "),
	"down":                "a positive duration",
	// A rollback or restart with mutations 0 would apply the default
	// count; an ingest's 0 means "run for the duration".
	PhaseRollback + ".mutations": "≥ 1",
	PhaseRestart + ".mutations":  "≥ 1",
}

// explicitZeros refuses a setting written in data (the scenario's YAML,
// already decoded strictly into s) as a zero, empty string, empty list or
// null where that is out of range; and, for phases, a setting written at
// all (even as zero) that the phase's type does not take, which
// checkSettings cannot see once it is decoded to zero.
func explicitZeros(data []byte, s *Scenario) error {
	var written struct {
		Indexer map[string]any   `yaml:"indexer"`
		Phases  []map[string]any `yaml:"phases"`
	}
	if err := yaml.Unmarshal(data, &written); err != nil {
		return nil // the strict decode that came first reports bad YAML
	}
	for _, key := range sortedKeys(written.Indexer) {
		if want, ok := indexerZeroInvalid[key]; ok && isZero(key, written.Indexer[key]) {
			return fmt.Errorf("indexer.%s: must be %s, got %s (leave it out for the default)", key, want, zeroText(written.Indexer[key]))
		}
	}
	for i, ph := range written.Phases {
		if i >= len(s.Phases) {
			break
		}
		typ := s.Phases[i].Type
		k := phaseKinds[typ]
		if k == nil {
			continue // Validate names the unknown type
		}
		at := fmt.Sprintf("phases[%d]", i)
		for _, key := range sortedKeys(ph) {
			switch key {
			case "type", "verify":
				continue
			}
			if key != "name" && !acceptsSetting(k, key) {
				return fmt.Errorf("%s.%s: not a setting of a %s phase", at, key, typ)
			}
			if !isZero(key, ph[key]) {
				continue
			}
			want, ok := phaseZeroInvalid[typ+"."+key]
			if !ok {
				want, ok = phaseZeroInvalid[key]
			}
			if ok {
				return fmt.Errorf("%s.%s: must be %s, got %s (leave it out for the default)", at, key, want, zeroText(ph[key]))
			}
		}
	}
	return nil
}

func acceptsSetting(k *phaseKind, key string) bool { return slices.Contains(k.settings, key) }

// durationSettings are the settings whose values are durations: every
// Duration field of Phase and IndexerSettings, by its YAML name, so a new
// one needs no entry here.
var durationSettings = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range []reflect.Type{reflect.TypeOf(Phase{}), reflect.TypeOf(IndexerSettings{})} {
		for i := range t.NumField() {
			if t.Field(i).Type == reflect.TypeOf(Duration(0)) {
				name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
				m[name] = true
			}
		}
	}
	return m
}()

// isZero reports whether a generically decoded YAML value of setting key
// is null, a zero number, an empty string, a zero duration or an empty
// list or map.
func isZero(key string, v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		if v == "" {
			return true
		}
		var d Duration
		return durationSettings[key] && d.UnmarshalYAML([]byte(v)) == nil && d == 0
	case int:
		return v == 0
	case int64:
		return v == 0
	case uint64:
		return v == 0
	case float64:
		return v == 0
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

func zeroText(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if v == "" {
			return `""`
		}
		return v
	case []any:
		return "[]"
	case map[string]any:
		return "{}"
	}
	return fmt.Sprint(v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
