// Package etcdserver runs etcd members inside this process: the embedded
// metadata store a coordinator uses when no external etcd cluster is given
// (`--etcd ENDPOINTS`), and the loopback clusters tests run against. It is
// etcd's own server (go.etcd.io/etcd/server/v3/embed); this package only
// picks addresses, keeps etcd's logs out of the run's output and waits until
// a member serves.
package etcdserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Config is one member's configuration. The zero value (with Dir set)
// starts a single-member cluster on loopback.
type Config struct {
	// Name is the member's name (default "m0").
	Name string
	// Dir holds the member's data. Required.
	Dir string
	// ClientURL and PeerURL are where the member serves clients and peers
	// (default http://127.0.0.1:PORT with a free port each).
	ClientURL, PeerURL string
	// InitialCluster lists every member as name=peerURL, comma-separated
	// (default: this member alone).
	InitialCluster string
	// ReadyTimeout bounds the wait for the member to serve (default 30 s).
	ReadyTimeout time.Duration
	// Logger receives etcd's logs (default: discarded; etcd logs "server
	// closed" at error level even on a clean close).
	Logger *zap.Logger
}

// Member is a running etcd member.
type Member struct {
	e *embed.Etcd
	// ClientURL is where clients reach it, PeerURL where its peers do: a
	// member restarted over its directory serves at both again.
	ClientURL, PeerURL string
}

// FreeURL returns http://127.0.0.1:PORT with a port free a moment ago.
func FreeURL() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "http://" + l.Addr().String(), nil
}

// Start starts a member and returns once it serves clients. Ports it
// chose itself (no ClientURL or PeerURL given) may be taken by another
// process between the choice and etcd's bind: it then tries fresh ones.
func Start(cfg Config) (*Member, error) {
	auto := cfg.ClientURL == "" || cfg.PeerURL == ""
	for try := 1; ; try++ {
		m, err := start(cfg)
		if err == nil || !auto || try == 5 || !addrInUse(err) {
			return m, err
		}
	}
}

func start(cfg Config) (*Member, error) {
	if cfg.Dir == "" {
		return nil, errors.New("etcd member: no data directory")
	}
	if cfg.Name == "" {
		cfg.Name = "m0"
	}
	var err error
	if cfg.ClientURL == "" {
		if cfg.ClientURL, err = FreeURL(); err != nil {
			return nil, fmt.Errorf("etcd member %s: %w", cfg.Name, err)
		}
	}
	if cfg.PeerURL == "" {
		if cfg.PeerURL, err = FreeURL(); err != nil {
			return nil, fmt.Errorf("etcd member %s: %w", cfg.Name, err)
		}
	}
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = cfg.Name + "=" + cfg.PeerURL
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cu, err := url.Parse(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("etcd member %s: client URL %q: %w", cfg.Name, cfg.ClientURL, err)
	}
	pu, err := url.Parse(cfg.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("etcd member %s: peer URL %q: %w", cfg.Name, cfg.PeerURL, err)
	}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = filepath.Join(cfg.Dir, cfg.Name+".etcd")
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	ec.InitialCluster = cfg.InitialCluster
	ec.InitialClusterToken = "idxbench"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(cfg.Logger)
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("etcd member %s: %w", cfg.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return &Member{e: e, ClientURL: cfg.ClientURL, PeerURL: cfg.PeerURL}, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd member %s: %w", cfg.Name, err)
	case <-time.After(cfg.ReadyTimeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("etcd member %s: not ready within %s", cfg.Name, cfg.ReadyTimeout)
	}
}

// Close stops the member.
func (m *Member) Close() {
	m.e.Close()
}

// StartCluster starts n members on loopback, each with its data under dir,
// and returns them with the client endpoints, once all serve.
func StartCluster(ctx context.Context, dir string, n int) ([]*Member, []string, error) {
	// The ports are chosen free, then bound by etcd: another process may
	// take one in between. Then the whole cluster starts again on fresh
	// ports, in a fresh directory (the members may have begun to write).
	for try := 1; ; try++ {
		members, endpoints, err := startCluster(ctx, filepath.Join(dir, fmt.Sprintf("try%d", try)), n)
		if err == nil || try == 5 || !addrInUse(err) {
			return members, endpoints, err
		}
	}
}

func startCluster(ctx context.Context, dir string, n int) ([]*Member, []string, error) {
	names := make([]string, n)
	clients := make([]string, n)
	peers := make([]string, n)
	var initial []string
	for i := range n {
		var err error
		names[i] = fmt.Sprintf("m%d", i)
		if clients[i], err = FreeURL(); err != nil {
			return nil, nil, err
		}
		if peers[i], err = FreeURL(); err != nil {
			return nil, nil, err
		}
		initial = append(initial, names[i]+"="+peers[i])
	}
	type started struct {
		i   int
		m   *Member
		err error
	}
	ch := make(chan started, n)
	for i := range n {
		go func() {
			m, err := Start(Config{Name: names[i], Dir: dir, ClientURL: clients[i], PeerURL: peers[i],
				InitialCluster: strings.Join(initial, ",")})
			ch <- started{i, m, err}
		}()
	}
	members := make([]*Member, n)
	var errs []error
	for range n {
		select {
		case s := <-ch:
			members[s.i] = s.m
			if s.err != nil {
				errs = append(errs, s.err)
			}
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
		}
	}
	if err := errors.Join(errs...); err != nil {
		for _, m := range members {
			if m != nil {
				m.Close()
			}
		}
		return nil, nil, err
	}
	return members, clients, nil
}

// addrInUse reports a bind that found its port taken (etcd does not always
// keep the syscall error in the chain, so its text is checked too).
func addrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}
