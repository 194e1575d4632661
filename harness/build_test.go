package harness

import (
	"testing"
)

const buildScenario = `
name: build
workload:
  docs: 3000
  vbuckets: 32
  seed: 5
  indexes:
    - {name: by_city, keys: [city]}
    - {name: by_age, keys: [age], deferred: true}
    - {name: by_zip_name, keys: [address.zip, name], partitions: 3, deferred: true}
    - {name: actives, keys: [score], where: "active = true", deferred: true}
indexer: {snapshot_interval: 20ms, persist_interval: 200ms}
phases:
  - type: load
  - {type: ingest, mutations: 2000}
  - {type: build-index, name: build-two, indexes: [by_age, by_zip_name]}
  - {type: ingest, name: after-build, mutations: 2000}
  - {type: build-index, name: build-rest, rate: 2000}
  - {type: restart, mutations: 1000}
`

func TestInitialBuildOnEveryEngine(t *testing.T) {
	for _, name := range []string{"memory", "pebble", "badger", "bbolt"} {
		t.Run(name, func(t *testing.T) {
			cell := runSmallCell(t, name, []byte(buildScenario))
			checkVerified(t, cell, "load", "ingest", "build-two", "after-build", "build-rest", "restart")
			for _, ph := range []string{"build-two", "build-rest"} {
				m := cell.Phase(ph).Metrics
				if m["initial_build_ms"] <= 0 || m["active_ms"] < m["initial_build_ms"] || m["maint_mutations"] <= 0 {
					t.Errorf("%s metrics: %v", ph, m)
				}
			}
			if n := cell.Phase("build-two").Metrics["indexes_built"]; n != 2 {
				t.Errorf("build-two built %v indexes, want 2", n)
			}
		})
	}
}
