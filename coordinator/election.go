package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Candidate is one coordinator process standing for master through etcd's
// election recipe: the master holds a key tied to its lease, so when it
// dies its key goes when the lease expires (TTL seconds) and the next
// candidate in line becomes master. Only the master promotes stability
// timestamps and executes DDL.
type Candidate struct {
	name string
	s    *concurrency.Session
	e    *concurrency.Election
}

// NewCandidate enrolls name under prefix with a lease of ttl seconds
// (etcd's minimum TTL is a few seconds; that bounds from below how long a
// dead master's key outlives it).
func NewCandidate(cli *clientv3.Client, prefix, name string, ttl int) (*Candidate, error) {
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		return nil, fmt.Errorf("%w: coordinator session: %v", ErrMetadataUnavailable, err)
	}
	return &Candidate{name: name, s: s, e: concurrency.NewElection(s, electionPrefix(prefix))}, nil
}

func electionPrefix(prefix string) string { return strings.TrimSuffix(prefix, "/") + "/master/" }

// Campaign blocks until the candidate is master or ctx ends.
func (c *Candidate) Campaign(ctx context.Context) error {
	return c.e.Campaign(ctx, c.name)
}

// Lost is closed when the candidate's lease is gone (its process could not
// keep it alive): a master that sees it must stop acting as one.
func (c *Candidate) Lost() <-chan struct{} { return c.s.Done() }

// Close resigns and revokes the candidate's lease.
func (c *Candidate) Close() error { return c.s.Close() }

// ErrNoMaster is returned by Master while no candidate is master.
var ErrNoMaster = errors.New("no master coordinator")

// Master names the current master under prefix.
func Master(ctx context.Context, cli *clientv3.Client, prefix string) (string, error) {
	resp, err := cli.Get(ctx, electionPrefix(prefix), clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrMetadataUnavailable, err)
	}
	if len(resp.Kvs) == 0 {
		return "", ErrNoMaster
	}
	return string(resp.Kvs[0].Value), nil
}
