package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idxbench/idxbench/workload/upr"
)

// MasterConfig is what a coordinator process runs with.
type MasterConfig struct {
	// Name is this coordinator's name in the election.
	Name string
	// Prefix is the cluster's key prefix in etcd.
	Prefix string
	// TTL is the lease of its candidacy, in seconds (default 2).
	TTL int
	// Interval is the stability-timestamp promotion interval.
	Interval time.Duration
	// Vbuckets is the bucket's vbucket count.
	Vbuckets int
	// Nodes returns the index nodes to promote on now (from the registry).
	Nodes func(ctx context.Context) ([]Node, error)
	// Elected, when set, is called once this coordinator becomes master.
	Elected func()
	Logger  *slog.Logger
}

// lastSTKey records the last promoted stability timestamp, so a standby
// that takes over re-sends it: an indexer that missed it (the master died
// between two indexers) converges.
func lastSTKey(prefix string) string { return strings.TrimSuffix(prefix, "/") + "/st/last" }

// RunMaster stands for master and, once elected, executes the clients'
// DDL (see ViaMaster) and promotes stability timestamps (coordinator
// mode) until ctx ends or the lease is lost (then
// it returns ErrLostMastership: the process must stop acting as master).
// A standby blocks in the election meanwhile. On election it reads the
// recorded recovery mode and last stability timestamp and re-sends that
// timestamp to every index node before promoting new ones.
func RunMaster(ctx context.Context, cli *clientv3.Client, cfg MasterConfig) error {
	if cfg.TTL <= 0 {
		cfg.TTL = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := NewCandidate(cli, cfg.Prefix, cfg.Name, cfg.TTL)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Campaign(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("coordinator %s: campaign: %w", cfg.Name, err)
	}
	if cfg.Elected != nil {
		cfg.Elected()
	}
	meta := NewEtcd(cli, cfg.Prefix, 0)
	if rec, err := meta.InRecovery(); err == nil && rec {
		cfg.Logger.Warn("took over with the cluster in recovery", "coordinator", cfg.Name)
	}
	// The master executes the clients' DDL (ViaMaster) for its term.
	dctx, stopDDL := context.WithCancel(ctx)
	ddlDone := make(chan struct{})
	go func() {
		defer close(ddlDone)
		serveDDL(dctx, cli, cfg.Prefix, meta, cfg.Logger)
	}()
	defer func() {
		stopDDL()
		<-ddlDone
	}()
	p := NewPromoter(0, cfg.Vbuckets)
	if last, err := loadLastST(ctx, cli, cfg.Prefix); err == nil && last != nil {
		nodes, _ := cfg.Nodes(ctx)
		for _, n := range nodes {
			n.PromoteST(last) // a node that had it already changes nothing
		}
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.Lost():
			return fmt.Errorf("coordinator %s: %w", cfg.Name, ErrLostMastership)
		case <-t.C:
		}
		nodes, err := cfg.Nodes(ctx)
		if err != nil || len(nodes) == 0 {
			continue
		}
		if len(p.nodes) != len(nodes) {
			p = NewPromoter(len(nodes), cfg.Vbuckets)
		}
		ok := true
		for i, n := range nodes {
			ts := n.AlignedHWT()
			if ts == nil || p.Observe(i, ts) != nil {
				ok = false
			}
		}
		if !ok {
			continue
		}
		st := p.Next()
		if st == nil {
			continue
		}
		for _, n := range nodes {
			if err := n.PromoteST(st); err != nil {
				cfg.Logger.Warn("promote", "coordinator", cfg.Name, "err", err)
			}
		}
		if data, err := json.Marshal(st); err == nil {
			// Bounded: promotion goes on while etcd is out of reach.
			pctx, cancel := context.WithTimeout(ctx, cfg.Interval)
			cli.Put(pctx, lastSTKey(cfg.Prefix), string(data))
			cancel()
		}
	}
}

// ErrLostMastership is returned by RunMaster when its lease lapsed.
var ErrLostMastership = errors.New("lost mastership")

func loadLastST(ctx context.Context, cli *clientv3.Client, prefix string) (*upr.TsVbuuid, error) {
	resp, err := cli.Get(ctx, lastSTKey(prefix))
	if err != nil || len(resp.Kvs) == 0 {
		return nil, err
	}
	var ts upr.TsVbuuid
	if err := json.Unmarshal(resp.Kvs[0].Value, &ts); err != nil {
		return nil, err
	}
	return &ts, nil
}
