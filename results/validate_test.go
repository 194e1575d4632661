package results

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestJSONSchemaIsTheRepositoryFile pins that the embedded schema is the
// file in the repository, which is what people and other tools read.
func TestJSONSchemaIsTheRepositoryFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("schema", "results.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != string(JSONSchema) {
		t.Fatal("embedded JSONSchema differs from schema/results.schema.json")
	}
	var doc struct {
		Properties struct {
			Schema struct {
				Const int `json:"const"`
			} `json:"schema"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Properties.Schema.Const != SchemaVersion {
		t.Fatalf("schema file describes version %d, this package writes %d", doc.Properties.Schema.Const, SchemaVersion)
	}
}

// TestWrittenRunsValidate writes runs of several shapes (partial, with
// failed cells, dropped metrics, a summary) and checks each results.json
// against the schema.
func TestWrittenRunsValidate(t *testing.T) {
	rng := testRand(t)
	full := synthRun(rng, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), []string{"pebble", "bbolt"}, 3, 0.1, 1)
	full.Summary = Summarize(full)
	// A capacity phase's steps and answer.
	full.Cells[0].Phases[0].Steps = []Step{{TargetPerSec: 1000, AchievedPerSec: 990, Seconds: 10, Mutations: 9900, Pass: true}}
	full.Cells[0].Phases[0].Capacity = &Capacity{SustainablePerSec: 1000, LagP99Ms: 1000, Stop: "converged", BoundSeconds: 600}
	failed := synthRun(rng, time.Now(), []string{"badger"}, 1, 0, 1)
	failed.Partial = true
	failed.Cells[0].Error = "phase ingest: disk full"
	failed.Cells[0].Phases = failed.Cells[0].Phases[:1]
	failed.Cells[0].Phases[0].Metrics["write_amp"] = 1.0 / zero()
	failed.Cells[0].Topology = "procs"
	failed.Cells[0].Nodes = []Node{{Role: "etcd", Pid: 9, CPUs: []int{0}}, {Role: "kv", Pid: 10, CPUs: []int{0}},
		{Role: "coordinator", Pid: 12, CPUs: []int{0}}, {Role: "index", Pid: 11, CPUs: []int{1}}}
	empty := &Run{Schema: SchemaVersion, Config: testConfig(), Started: time.Now(), Partial: true}
	for name, run := range map[string]*Run{"full": full, "failed": failed, "empty": empty} {
		dir := filepath.Join(t.TempDir(), name)
		if err := WriteDir(dir, run); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		data, err := os.ReadFile(filepath.Join(dir, ResultsFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func zero() float64 { return 0 }

// TestValidateRejects checks that the schema catches what version 2
// changed and what a writer could get wrong, naming where.
func TestValidateRejects(t *testing.T) {
	run := synthRun(testRand(t), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), []string{"pebble"}, 1, 0, 1)
	good, err := json.Marshal(run)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(good); err != nil {
		t.Fatalf("valid run rejected: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(m map[string]any)
		want string
	}{
		"PascalCase indexer key": {func(m map[string]any) {
			ix := m["config"].(map[string]any)["indexer"].(map[string]any)
			ix["SnapshotInterval"] = 200000000
		}, "/config/indexer"},
		"duration in nanoseconds": {func(m map[string]any) {
			m["config"].(map[string]any)["indexer"].(map[string]any)["snapshot_interval"] = 200000000
		}, "/config/indexer/snapshot_interval"},
		"PascalCase workload key": {func(m map[string]any) {
			m["config"].(map[string]any)["workload"].(map[string]any)["ValueSize"] = map[string]any{}
		}, "'ValueSize' does not match pattern"},
		"indexer setting missing": {func(m map[string]any) {
			delete(m["config"].(map[string]any)["indexer"].(map[string]any), "queue_size")
		}, "queue_size"},
		"engine options as one line": {func(m map[string]any) {
			cell(m)["engine_options"] = "cache=1 memtable=2"
		}, "/cells/0/engine_options"},
		"unknown cell field": {func(m map[string]any) {
			cell(m)["EngineOptions"] = "x"
		}, "/cells/0"},
		"metric not a number": {func(m map[string]any) {
			cell(m)["phases"].([]any)[0].(map[string]any)["metrics"].(map[string]any)["mutations_per_sec"] = "fast"
		}, "/cells/0/phases/0/metrics/mutations_per_sec"},
		"bad verify": {func(m map[string]any) {
			cell(m)["phases"].([]any)[0].(map[string]any)["verify"] = "ok"
		}, "/cells/0/phases/0/verify"},
		"old schema": {func(m map[string]any) { m["schema"] = 1 }, "/schema"},
	} {
		var m map[string]any
		json.Unmarshal(good, &m)
		tc.edit(m)
		data, _ := json.Marshal(m)
		err := Validate(data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want an error at %s", name, err, tc.want)
		}
	}
	if err := Validate([]byte("{")); err == nil {
		t.Error("truncated JSON accepted")
	}
}

func cell(m map[string]any) map[string]any { return m["cells"].([]any)[0].(map[string]any) }

// TestReadSchema1 reads a version 1 file: its engine options line becomes
// the map and the description, so compare and report read old results.
func TestReadSchema1(t *testing.T) {
	const v1 = `{"schema": 1, "seed": 7, "scenario": "default",
	  "config": {"indexer": {"SnapshotInterval": 200000000}},
	  "machine": {"cores": 2}, "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:10:00Z",
	  "partial": false,
	  "cells": [{"engine": "bbolt", "dir": "d0", "cores": 2, "repeat": 0,
	    "engine_options": "bbolt v1.4.0: page_size=4096 no_grow_sync=true; cache, memtable: not applicable",
	    "durability": "nosync",
	    "phases": [{"name": "ingest", "verify": "pass", "metrics": {"mutations_per_sec": 1000}}]}]}`
	path := filepath.Join(t.TempDir(), ResultsFile)
	os.WriteFile(path, []byte(v1), 0o644)
	run, err := ReadRun(path)
	if err != nil {
		t.Fatal(err)
	}
	c := run.Cells[0]
	if c.EngineOptions["page_size"] != "4096" || c.EngineOptions["no_grow_sync"] != "true" || len(c.EngineOptions) != 2 {
		t.Errorf("engine options = %v", c.EngineOptions)
	}
	if !strings.HasPrefix(c.EngineDescription, "bbolt v1.4.0:") {
		t.Errorf("description = %q", c.EngineDescription)
	}
	if run.Cells[0].Phases[0].Metrics["mutations_per_sec"] != 1000 {
		t.Errorf("metrics = %v", run.Cells[0].Phases[0].Metrics)
	}
	// compare and report read it beside a version 2 run.
	v2 := synthRun(testRandSeed(1), time.Now(), []string{"bbolt"}, 1, 0, 1)
	if _, err := Compare([]*Run{run}, []*Run{v2}, CompareOptions{}); err != nil {
		t.Errorf("compare v1 with v2: %v", err)
	}
	if err := WriteReport(filepath.Join(t.TempDir(), ReportFile), run, []*Run{run, v2}); err != nil {
		t.Errorf("report of a v1 run: %v", err)
	}
}

func TestParseSettings(t *testing.T) {
	for in, want := range map[string]string{
		"cache=8 memtable=4 compression=snappy":                           "cache=8 compression=snappy memtable=4",
		"memory: btree degree=32, no cache/memtable/compression":          "degree=32",
		"bbolt v1: page_size=4096 freelist=array no_grow_sync=true; x: y": "freelist=array no_grow_sync=true page_size=4096",
		"":            "",
		"=1 a= b=c=d": "a= b=c=d",
	} {
		m := ParseSettings(in)
		var got []string
		for k, v := range m {
			got = append(got, k+"="+v)
		}
		sort.Strings(got)
		if strings.Join(got, " ") != want {
			t.Errorf("ParseSettings(%q) = %v, want %s", in, got, want)
		}
	}
}
