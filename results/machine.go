package results

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CollectMachine gathers the machine facts for a run whose data
// directories are dirs. It never fails: a fact it cannot read stays empty,
// because a missing CPU model must not cost a benchmark run.
func CollectMachine(dirs []string) Machine {
	m := Machine{
		CPUModel:    cpuModel(),
		Cores:       runtime.NumCPU(),
		MemoryBytes: MemTotal(),
		Kernel:      kernel(),
		GoVersion:   runtime.Version(),
		GitRevision: gitRevision(),
	}
	m.Hostname, _ = os.Hostname()
	mounts := readMounts()
	for _, d := range dirs {
		m.DataDirs = append(m.DataDirs, dirInfo(d, mounts))
	}
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name", "Model", "cpu model", "uarch":
			if v = strings.TrimSpace(v); v != "" {
				return v
			}
		}
	}
	return runtime.GOARCH
}

// MemTotal is the machine's memory in bytes (MemTotal of /proc/meminfo),
// 0 where that cannot be read.
func MemTotal() uint64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			kb, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

func kernel() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return runtime.GOOS
	}
	return unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
}

// gitRevision prefers the revision stamped into the binary by `go build`
// and falls back to asking git, because `go run` and `go test` binaries
// carry no VCS stamp.
func gitRevision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev string
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	// Ask git in the working directory, then in the source tree this file
	// was compiled from (known unless built with -trimpath), which finds
	// the revision of a binary built with -buildvcs=false and run
	// elsewhere.
	dirs := []string{""}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dirs = append(dirs, filepath.Dir(file))
	}
	for _, dir := range dirs {
		if rev := gitRevisionIn(dir); rev != "" {
			return rev
		}
	}
	return ""
}

func gitRevisionIn(dir string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	git := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		return cmd.Output()
	}
	out, err := git("rev-parse", "HEAD")
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if st, err := git("status", "--porcelain", "--untracked-files=no"); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		rev += "-dirty"
	}
	return rev
}

// LabelDirs sets the labels of m.DataDirs, in order, to the labels the
// run's cells use for them (d0, d1, … or tmp), so the report can say which
// disk a cell ran on.
func (m *Machine) LabelDirs(labels []string) {
	for i := range m.DataDirs {
		if i < len(labels) {
			m.DataDirs[i].Label = labels[i]
		}
	}
}

type mount struct{ point, fstype, source string }

// readMounts parses /proc/self/mountinfo: field 5 is the mount point, and
// after the " - " separator come the filesystem type and the source.
func readMounts() []mount {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var ms []mount
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 2 {
			continue
		}
		ms = append(ms, mount{point: unescapeMount(pf[4]), fstype: qf[0], source: qf[1]})
	}
	return ms
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func dirInfo(dir string, mounts []mount) DirInfo {
	info := DirInfo{Path: dir}
	p, err := filepath.Abs(dir)
	if err != nil {
		p = dir
	}
	// The directory may not exist yet; describe its nearest ancestor.
	for {
		if rp, err := filepath.EvalSymlinks(p); err == nil {
			p = rp
			break
		}
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err == nil {
		info.FreeBytes = st.Bavail * uint64(st.Bsize)
	}
	best := -1
	for i, m := range mounts {
		if within(p, m.point) && (best < 0 || len(m.point) >= len(mounts[best].point)) {
			best = i
		}
	}
	if best >= 0 {
		info.Filesystem, info.Device = mounts[best].fstype, mounts[best].source
	}
	return info
}

func within(p, root string) bool {
	if root == "/" || p == root {
		return true
	}
	return strings.HasPrefix(p, root+"/")
}
