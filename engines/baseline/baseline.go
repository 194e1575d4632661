package baseline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/idxbench/idxbench/engines"
)

// Config sizes a baseline run. The zero value is the measurement:
// 2M entries, batches of 1000, 16-40-byte keys, 500k updates, 1000 scans of
// 1000 entries, no sync.
type Config struct {
	// Entries is the number of documents loaded; each is one Main and one
	// Back entry. Default 2,000,000.
	Entries int
	// BatchSize is documents (or updates) per atomic batch. Default 1000.
	BatchSize int
	// KeyMin and KeyMax bound the secondary key's length in bytes; the Main
	// key is that plus the 8-byte docid. Default 16 and 40.
	KeyMin, KeyMax int
	// Updates is the number of document updates after the recovery point.
	// Default 500,000.
	Updates int
	// Scans is the number of range scans. Default 1000.
	Scans int
	// ScanLen is the number of entries each scan reads. Default 1000.
	ScanLen int
	// Durability applies to every batch. Default NoSync.
	Durability engines.Durability
	// Seed seeds the generator when Run is given no *rand.Rand.
	Seed uint64
	// MainOnly writes Main entries only (no back index), which is what the
	// issue's outside measurement wrote; use it to compare with those rates.
	MainOnly bool
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Entries, 2_000_000)
	def(&c.BatchSize, 1000)
	def(&c.KeyMin, 16)
	def(&c.KeyMax, 40)
	def(&c.Updates, 500_000)
	def(&c.Scans, 1000)
	def(&c.ScanLen, 1000)
	return c
}

// Validate reports the first out-of-range field.
func (c Config) Validate() error {
	switch {
	case c.Entries < 1 || c.Entries > 1<<31:
		return fmt.Errorf("entries %d out of range [1, 2^31]", c.Entries)
	case c.BatchSize < 1:
		return fmt.Errorf("batch size %d must be positive", c.BatchSize)
	case c.KeyMin < 1 || c.KeyMax < c.KeyMin || c.KeyMax > 4096:
		return fmt.Errorf("key length range [%d, %d] invalid (want 1 ≤ min ≤ max ≤ 4096)", c.KeyMin, c.KeyMax)
	case c.Updates < 0 || c.Scans < 0 || c.ScanLen < 0:
		return fmt.Errorf("updates %d, scans %d, scan length %d must not be negative", c.Updates, c.Scans, c.ScanLen)
	}
	return nil
}

// Result is what one run measured. A figure that could not be measured is
// -1.
type Result struct {
	Entries int
	// KVWrites is the number of key-value operations of the load phase.
	KVWrites int64
	// Load is the load phase's wall time; LoadCPU the process CPU time
	// (user + system, all threads) it took, which a busy shared machine
	// disturbs less than wall time.
	Load, LoadCPU time.Duration
	// EntriesPerSec is documents loaded per second (each one Main and,
	// unless MainOnly, one Back put); KVPerSec counts operations.
	EntriesPerSec, KVPerSec float64
	// UpdatesPerSec is document updates per second: each is a Main delete,
	// a Main put and (unless MainOnly) a Back overwrite.
	UpdatesPerSec float64
	// WriteBytesPerEntry is /proc/self/io write_bytes during the load
	// divided by Entries: what the process made the kernel send to storage.
	WriteBytesPerEntry float64
	// EngineBytesPerEntry is the engine's EngineBytesWritten during the
	// load divided by Entries; -1 when the engine does not count.
	EngineBytesPerEntry float64
	// DiskBytes is the store's allocated size after the load.
	DiskBytes int64
	// RecoveryPoint and Rollback are the times of CreateRecoveryPoint after
	// the load and of RollbackTo it after the updates.
	RecoveryPoint, Rollback time.Duration
	// ScanP50 and ScanP99 are percentiles of one scan (view, seek, ScanLen
	// entries, close).
	ScanP50, ScanP99 time.Duration
	// ScanEntries is the mean number of entries a scan read (fewer than
	// ScanLen when the seek lands near the end of the keyspace).
	ScanEntries float64
}

// gen derives keys: the key of document d at version v is a pure function
// of (seed, d, v).
type gen struct {
	seed           uint64
	keyMin, keyLen int // keyLen: number of possible lengths
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// appendKey appends document d's key at version v to dst.
func (g gen) appendKey(dst []byte, d uint64, v uint32) []byte {
	var p rand.PCG
	p.Seed(splitmix(g.seed^d), splitmix(uint64(v)^g.seed<<1))
	x := p.Uint64()
	n := g.keyMin + int(x%uint64(g.keyLen))
	for n > 0 {
		x = p.Uint64()
		for i := 0; i < 8 && n > 0; i++ {
			dst = append(dst, byte(x))
			x >>= 8
			n--
		}
	}
	return dst
}

func appendDocID(dst []byte, d uint64) []byte { return binary.BigEndian.AppendUint64(dst, d) }

// Run runs the baseline against s, which should be empty. rng drives the
// choice of updated documents and scan starts and seeds the keys; when nil,
// one is made from cfg.Seed.
func Run(ctx context.Context, s engines.Store, cfg Config, rng *rand.Rand) (Result, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, fmt.Errorf("baseline: %w", err)
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed))
	}
	r := &runner{
		ctx: ctx, s: s, cfg: cfg, rng: rng,
		g:        gen{seed: rng.Uint64(), keyMin: cfg.KeyMin, keyLen: cfg.KeyMax - cfg.KeyMin + 1},
		versions: make([]uint32, cfg.Entries),
	}
	res := Result{Entries: cfg.Entries}
	if err := r.load(&res); err != nil {
		return res, err
	}

	start := time.Now()
	if err := s.CreateRecoveryPoint(1, []byte("baseline after load")); err != nil {
		return res, fmt.Errorf("baseline: recovery point: %w", err)
	}
	res.RecoveryPoint = time.Since(start)
	saved := append([]uint32(nil), r.versions...)

	if err := r.update(&res); err != nil {
		return res, err
	}

	start = time.Now()
	if err := s.RollbackTo(1); err != nil {
		return res, fmt.Errorf("baseline: rollback: %w", err)
	}
	res.Rollback = time.Since(start)
	r.versions = saved
	if err := r.verify(); err != nil {
		return res, err
	}

	if err := r.scan(&res); err != nil {
		return res, err
	}
	return res, nil
}

type runner struct {
	ctx      context.Context
	s        engines.Store
	cfg      Config
	rng      *rand.Rand
	g        gen
	versions []uint32
	b        engines.Batch
	key, buf []byte
}

func (r *runner) apply(phase string) error {
	if err := r.ctx.Err(); err != nil {
		return fmt.Errorf("baseline: %s: %w", phase, err)
	}
	if err := r.s.Apply(&r.b, r.cfg.Durability); err != nil {
		return fmt.Errorf("baseline: %s: %w", phase, err)
	}
	r.b.Reset()
	return nil
}

// put records document d's entries at its current version.
func (r *runner) put(d uint64) {
	r.key = r.g.appendKey(r.key[:0], d, r.versions[d])
	r.buf = appendDocID(append(r.buf[:0], r.key...), d)
	r.b.Set(engines.Main, r.buf, nil)
	if !r.cfg.MainOnly {
		r.b.Set(engines.Back, appendDocID(r.buf[:0], d), r.key)
	}
}

func (r *runner) load(res *Result) error {
	io0 := procWriteBytes()
	m0, err := r.s.Metrics()
	if err != nil {
		return fmt.Errorf("baseline: metrics: %w", err)
	}
	var ops int64
	cpu0 := cpuTime()
	start := time.Now()
	n := 0
	for d := 0; d < r.cfg.Entries; d++ {
		r.put(uint64(d))
		if n++; n == r.cfg.BatchSize || d == r.cfg.Entries-1 {
			n = 0
			ops += int64(r.b.Len())
			if err := r.apply("load"); err != nil {
				return err
			}
		}
	}
	res.Load = time.Since(start)
	res.LoadCPU = cpuTime() - cpu0
	io1 := procWriteBytes()
	m1, err := r.s.Metrics()
	if err != nil {
		return fmt.Errorf("baseline: metrics: %w", err)
	}
	secs := res.Load.Seconds()
	res.KVWrites = ops
	res.EntriesPerSec = float64(r.cfg.Entries) / secs
	res.KVPerSec = float64(ops) / secs
	res.WriteBytesPerEntry, res.EngineBytesPerEntry = -1, -1
	if io0 >= 0 && io1 >= 0 {
		res.WriteBytesPerEntry = float64(io1-io0) / float64(r.cfg.Entries)
	}
	if m0.EngineBytesWritten >= 0 && m1.EngineBytesWritten >= 0 {
		res.EngineBytesPerEntry = float64(m1.EngineBytesWritten-m0.EngineBytesWritten) / float64(r.cfg.Entries)
	}
	res.DiskBytes = m1.DiskBytes
	return nil
}

func (r *runner) update(res *Result) error {
	start := time.Now()
	n := 0
	for i := 0; i < r.cfg.Updates; i++ {
		d := uint64(r.rng.IntN(r.cfg.Entries))
		r.key = r.g.appendKey(r.key[:0], d, r.versions[d])
		r.buf = appendDocID(append(r.buf[:0], r.key...), d)
		r.b.Delete(engines.Main, r.buf)
		r.versions[d]++
		r.put(d)
		if n++; n == r.cfg.BatchSize || i == r.cfg.Updates-1 {
			n = 0
			if err := r.apply("update"); err != nil {
				return err
			}
		}
	}
	if r.cfg.Updates > 0 {
		res.UpdatesPerSec = float64(r.cfg.Updates) / time.Since(start).Seconds()
	}
	return nil
}

// verify checks the store after the rollback: entry counts, and a sample of
// documents at their recovery-point versions.
func (r *runner) verify() error {
	v, err := r.s.NewView()
	if err != nil {
		return fmt.Errorf("baseline: verify: %w", err)
	}
	defer v.Close()
	want := map[engines.Keyspace]int{engines.Main: r.cfg.Entries, engines.Back: r.cfg.Entries}
	if r.cfg.MainOnly {
		want[engines.Back] = 0
	}
	for _, ks := range []engines.Keyspace{engines.Main, engines.Back} {
		n, err := count(v, ks)
		if err != nil {
			return fmt.Errorf("baseline: verify: count %v: %w", ks, err)
		}
		if n != want[ks] {
			return fmt.Errorf("baseline: verify after rollback: %v keyspace holds %d entries, want %d", ks, n, want[ks])
		}
	}
	for range min(1000, r.cfg.Entries) {
		d := uint64(r.rng.IntN(r.cfg.Entries))
		r.key = r.g.appendKey(r.key[:0], d, r.versions[d])
		r.buf = appendDocID(append(r.buf[:0], r.key...), d)
		if _, ok, err := v.Get(engines.Main, r.buf); err != nil || !ok {
			return fmt.Errorf("baseline: verify after rollback: document %d's entry at version %d missing (err %v)", d, r.versions[d], err)
		}
		if r.cfg.MainOnly {
			continue
		}
		got, ok, err := v.Get(engines.Back, appendDocID(nil, d))
		if err != nil || !ok || !bytes.Equal(got, r.key) {
			return fmt.Errorf("baseline: verify after rollback: document %d's back entry is %x (present %t, err %v), want %x", d, got, ok, err, r.key)
		}
	}
	return nil
}

func count(v engines.View, ks engines.Keyspace) (int, error) {
	it, err := v.NewIter(ks, nil, nil)
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Close()
}

func (r *runner) scan(res *Result) error {
	if r.cfg.Scans == 0 {
		return nil
	}
	h := hdrhistogram.New(1, int64(time.Minute), 3)
	var entries int64
	lower := make([]byte, 4)
	for i := 0; i < r.cfg.Scans; i++ {
		if err := r.ctx.Err(); err != nil {
			return fmt.Errorf("baseline: scan: %w", err)
		}
		binary.BigEndian.PutUint32(lower, r.rng.Uint32())
		start := time.Now()
		v, err := r.s.NewView()
		if err != nil {
			return fmt.Errorf("baseline: scan: %w", err)
		}
		it, err := v.NewIter(engines.Main, lower, nil)
		if err != nil {
			v.Close()
			return fmt.Errorf("baseline: scan: %w", err)
		}
		n := 0
		for ok := it.First(); ok && n < r.cfg.ScanLen; ok = it.Next() {
			n++
		}
		err = errors.Join(it.Close(), v.Close())
		h.RecordValue(int64(time.Since(start)))
		if err != nil {
			return fmt.Errorf("baseline: scan: %w", err)
		}
		entries += int64(n)
	}
	res.ScanP50 = time.Duration(h.ValueAtQuantile(50))
	res.ScanP99 = time.Duration(h.ValueAtQuantile(99))
	res.ScanEntries = float64(entries) / float64(r.cfg.Scans)
	return nil
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procWriteBytes reads write_bytes from /proc/self/io: bytes this process
// caused to be sent to storage. -1 when unavailable (not Linux, no
// permission).
func procWriteBytes() int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
