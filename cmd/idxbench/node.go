package main

import (
	"context"
	"fmt"
	"io"

	"github.com/idxbench/idxbench/harness"
)

const nodeSynopsis = "--role kv|index|coordinator|etcd [--etcd ENDPOINTS] [--prefix P] [--name NAME] [--listen ADDR] [--kv ADDR] [--query ADDR] [--dataport ADDR] [--peer ADDR] [--engine E] [--dir D] [--scenario NAME|FILE] [--seed N] [--docs N] [--vbuckets N]"

// cmdNode runs one node of a multi-process pipeline until interrupted (an
// index node also ends when a client asks it to close). It prints the
// node's addresses on one "ready" line once it serves.
func cmdNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("node")
	var (
		role     = fs.String("role", "", "kv (the bucket simulator and its projectors), index (an indexer and its stream manager), coordinator (stands for master; the master promotes stability timestamps) or etcd (an embedded etcd member)")
		etcd     = fs.String("etcd", "", "comma-separated etcd endpoints to register with (a coordinator's election and registry)")
		prefix   = fs.String("prefix", "/idxbench/cluster", "the cluster's key prefix in etcd")
		name     = fs.String("name", "", "the node's name in the registry, which the partition map places replicas by (default ROLE-PID); give a restarted node its old name")
		listen   = fs.String("listen", "127.0.0.1:0", "the KV node's admin endpoint or the index node's control endpoint")
		kv       = fs.String("kv", "", "index node: the KV node's admin address")
		query    = fs.String("query", "127.0.0.1:0", "index node: the query port (scans)")
		dataport = fs.String("dataport", "127.0.0.1:0", "index node: where KV sends the key versions")
		peer     = fs.String("peer", "127.0.0.1:0", "etcd member: its peer address (give a restarted member its old one)")
		engine   = fs.String("engine", "pebble", "index node: storage engine")
		dir      = fs.String("dir", "", "index node: data directory (its slices go in DIR/slices)")
		scenario = fs.String("scenario", "default", "built-in scenario name or a scenario YAML file: the workload and indexer settings")
		seed     = fs.String("seed", "", "workload seed (default: the scenario's)")
		docs     = fs.String("docs", "", "initial document count (default: the scenario's)")
		vbuckets = fs.String("vbuckets", "", "vbucket count 1..1024 (default: the scenario's)")
	)
	pos, err := parseFlags(fs, nodeSynopsis, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("node: unexpected argument %q", pos[0])
	}
	_, src, err := harness.LoadScenario(*scenario)
	if err != nil {
		return err
	}
	job := harness.NodeJob{Role: *role, Name: *name, Listen: *listen, KV: *kv, Query: *query, Dataport: *dataport, Peer: *peer,
		Engine: *engine, Dir: *dir, Scenario: src, Etcd: splitList(*etcd), EtcdPrefix: *prefix}
	if job.Overrides, err = parseOverrides(*seed, *docs, *vbuckets); err != nil {
		return err
	}
	if err := job.Validate(); err != nil {
		return err
	}
	return harness.RunNode(ctx, job, nil, stdout, stderr)
}
