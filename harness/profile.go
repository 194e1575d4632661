package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
)

// startProfile starts a CPU profile named after the cell and name in the
// job's profile directory, stopping the one running first. It does nothing
// when the job asks for no profiles.
func (c *cellRun) startProfile(name string) error {
	if c.job.ProfileDir == "" {
		return nil
	}
	if err := c.stopProfile(); err != nil {
		return err
	}
	base := fmt.Sprintf("%s-%s-c%d-r%d-%s.pprof", c.job.Engine, c.job.DirLabel, c.job.Cores, c.job.Repeat, name)
	base = strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator || r == ' ' {
			return '_'
		}
		return r
	}, base)
	f, err := startCPUProfile(filepath.Join(c.job.ProfileDir, base))
	if err != nil {
		return err
	}
	c.prof = f
	if c.p != nil && c.p.ctl != nil {
		// The index node profiles itself beside the cell.
		path := filepath.Join(c.job.ProfileDir, strings.TrimSuffix(base, ".pprof")+"-index-node.pprof")
		if err := rpcCall(context.Background(), c.p.ctl, profServiceName+".Start", &path, &struct{}{}); err != nil {
			return err
		}
	}
	return nil
}

func startCPUProfile(path string) (*os.File, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return f, nil
}

// profServiceName names the index node's profiling endpoint.
const profServiceName = "Prof"

// profService profiles the index node's process on request.
type profService struct {
	mu sync.Mutex
	f  *os.File
}

func (s *profService) Start(path *string, _ *struct{}) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(); err != nil {
		return err
	}
	f, err := startCPUProfile(*path)
	s.f = f
	return err
}

func (s *profService) Stop(_ *struct{}, _ *struct{}) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *profService) stopLocked() error {
	if s.f == nil {
		return nil
	}
	pprof.StopCPUProfile()
	err := s.f.Close()
	s.f = nil
	return err
}

// stopProfile stops the running CPU profile, if any, and closes its file.
func (c *cellRun) stopProfile() error {
	if c.prof == nil {
		return nil
	}
	pprof.StopCPUProfile()
	err := c.prof.Close()
	c.prof = nil
	if c.p != nil && c.p.ctl != nil {
		err = errors.Join(err, rpcCall(context.Background(), c.p.ctl, profServiceName+".Stop", &struct{}{}, &struct{}{}))
	}
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	return nil
}
