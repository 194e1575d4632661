package badger_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/badger"
)

// entryGen yields the index entries: a 16–40-byte random secondary
// key followed by an 8-byte docid, empty value.
type entryGen struct {
	rng *rand.Rand
	doc uint64
	buf []byte
}

func newEntryGen() *entryGen { return &entryGen{rng: rand.New(rand.NewPCG(1, 2))} }

func (g *entryGen) next() []byte {
	n := 16 + g.rng.IntN(25)
	g.buf = g.buf[:0]
	for range n {
		g.buf = append(g.buf, byte('a'+g.rng.IntN(26)))
	}
	g.doc++
	return binary.BigEndian.AppendUint64(g.buf, g.doc)
}

const benchBatch = 1000

// cpuTime is the process's user plus system CPU time, background
// compactions included; other processes' load disturbs it less than wall
// time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportRates(b *testing.B, cpu time.Duration) {
	n := float64(b.N * benchBatch)
	b.ReportMetric(n/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(n/cpu.Seconds(), "entries/cpu-s")
}

// BenchmarkIngest loads batches of 1000 Main entries without sync, once
// straight into badger (the adapter's own database and settings, one
// managed transaction per batch: raw) and once through the adapter; the
// ratio of the two rates is the adapter's overhead. One iteration is one
// batch, e.g.
//
//	go test ./engines/badger -run '^$' -bench Ingest -benchtime 2000x -count 3
func BenchmarkIngest(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		s, err := badger.Open(filepath.Join(b.TempDir(), "s"), engines.Options{})
		if err != nil {
			b.Fatal(err)
		}
		db := badger.DB(s)
		g := newEntryGen()
		ts := db.MaxVersion()
		b.ResetTimer()
		cpu := cpuTime()
		for range b.N {
			txn := db.NewTransactionAt(ts, true)
			for range benchBatch {
				k := g.next()
				key := make([]byte, 0, len(k)+1)
				key = append(append(key, byte(engines.Main)), k...)
				if err := txn.Set(key, nil); err != nil {
					b.Fatal(err)
				}
			}
			ts++
			if err := txn.CommitAt(ts, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportRates(b, cpuTime()-cpu)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("adapter", func(b *testing.B) {
		s, err := badger.Open(filepath.Join(b.TempDir(), "s"), engines.Options{})
		if err != nil {
			b.Fatal(err)
		}
		g := newEntryGen()
		var batch engines.Batch
		b.ResetTimer()
		cpu := cpuTime()
		for range b.N {
			batch.Reset()
			for range benchBatch {
				batch.Set(engines.Main, g.next(), nil)
			}
			if err := s.Apply(&batch, engines.NoSync); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportRates(b, cpuTime()-cpu)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkRollback times RollbackTo after updates, the baseline's
// rollback shape: load E documents (a Main entry and a Back entry each),
// take recovery point 1, update E/4 random documents (Main delete + Main
// put + Back overwrite), roll back to 1. Only the rollback is timed; one
// iteration is one whole store. E comes from IDXBENCH_BADGER_ROLLBACK_ENTRIES
// (default 200000), e.g.
//
//	IDXBENCH_BADGER_ROLLBACK_ENTRIES=2000000 go test ./engines/badger -run '^$' -bench Rollback -benchtime 1x
func BenchmarkRollback(b *testing.B) {
	entries := 200_000
	if v := os.Getenv("IDXBENCH_BADGER_ROLLBACK_ENTRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("IDXBENCH_BADGER_ROLLBACK_ENTRIES=%q: want a positive integer", v)
		}
		entries = n
	}
	var cpu time.Duration
	b.StopTimer()
	for i := range b.N {
		s, err := badger.Open(filepath.Join(b.TempDir(), fmt.Sprint(i)), engines.Options{})
		if err != nil {
			b.Fatal(err)
		}
		g := newEntryGen()
		keys := make([][]byte, entries)
		var batch engines.Batch
		flush := func() {
			if err := s.Apply(&batch, engines.NoSync); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
		doc := func(d int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(d)) }
		for d := range entries {
			keys[d] = bytes.Clone(g.next())
			batch.Set(engines.Main, keys[d], nil)
			batch.Set(engines.Back, doc(d), keys[d])
			if batch.Len() >= 2*benchBatch {
				flush()
			}
		}
		flush()
		if err := s.CreateRecoveryPoint(1, nil); err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(3, 4))
		for range entries / 4 {
			d := rng.IntN(entries)
			batch.Delete(engines.Main, keys[d])
			keys[d] = bytes.Clone(g.next())
			batch.Set(engines.Main, keys[d], nil)
			batch.Set(engines.Back, doc(d), keys[d])
			if batch.Len() >= 3*benchBatch {
				flush()
			}
		}
		flush()
		c := cpuTime()
		b.StartTimer()
		if err := s.RollbackTo(1); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += cpuTime() - c
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "rollback_ms")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "rollback_cpu_ms")
}
