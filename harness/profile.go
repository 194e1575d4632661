package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
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
	f, err := os.Create(filepath.Join(c.job.ProfileDir, base))
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile %s: %w", f.Name(), err)
	}
	c.prof = f
	return nil
}

// stopProfile stops the running CPU profile, if any, and closes its file.
func (c *cellRun) stopProfile() error {
	if c.prof == nil {
		return nil
	}
	pprof.StopCPUProfile()
	err := c.prof.Close()
	c.prof = nil
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	return nil
}
