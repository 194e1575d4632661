package harness

import (
	"strings"
	"testing"
)

func TestBuiltinScenariosAreValid(t *testing.T) {
	names := BuiltinScenarios()
	for _, want := range []string{"default", "ingest", "scan", "rollback", "restart", "initial-build", "raw-ingest", "soak", "hard-docs"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("no built-in scenario %q (have %v)", want, names)
		}
	}
	for _, name := range names {
		sc, _, err := LoadScenario(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if sc.Description == "" {
			t.Errorf("%s has no description", name)
		}
		if _, err := EffectiveWorkload(sc, Overrides{}); err != nil {
			t.Errorf("%s: workload: %v", name, err)
		}
	}
}

func TestScenarioValidationNamesTheField(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"phases: []", "at least one phase"},
		{"phases: [{type: bake}]", "phases[0].type"},
		{"phases: [{type: load, mutations: 5}]", "phases[0].mutations: not a setting of a load phase"},
		{"phases: [{type: ingest}]", "needs mutations or duration"},
		{"phases: [{type: scan, duration: 1s, kind: sideways}]", "phases[0].kind"},
		{"phases: [{type: scan, duration: 1s, consistency: eventual}]", "phases[0].consistency"},
		{"phases: [{type: scan}]", "phases[0].duration"},
		{"phases: [{type: ingest, duration: soon}]", "duration"},
		{"phases: [{type: rollback, point: later}]", "phases[0].point"},
		{"phases: [{type: drop-index}]", "phases[0].index"},
		{"phases: [{type: load}, {type: load}]", `phases[1].name: "load" is used`},
		{"indexer: {snapshot_interval: 1ms}\nphases: [{type: load}]", "indexer.snapshot_interval"},
		{"indexer: {st_mode: global}\nphases: [{type: load}]", "indexer.st_mode"},
		{"indexer: {durability: maybe}\nphases: [{type: load}]", "indexer.durability"},
		{"colour: red\nphases: [{type: load}]", "colour"},
		{"phases: [{type: ingest, mutations: 5, scan_rate: 10}]", "phases[0].scan_rate: not a setting of a ingest phase"},
		{"phases: [{type: scan, duration: 1s, scan_rate: -1}]", "phases[0].scan_rate"},
		{"phases: [{type: load, drift: true}]", "phases[0].drift: not a setting of a load phase"},
	} {
		_, err := ParseScenario([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}
}

func FuzzParseScenario(f *testing.F) {
	for _, name := range BuiltinScenarios() {
		_, src, _ := LoadScenario(name)
		f.Add(src)
	}
	f.Add([]byte("phases: [{type: scan, duration: 1s}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := ParseScenario(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if len(sc.Phases) == 0 {
			t.Fatal("accepted a scenario without phases")
		}
	})
}
