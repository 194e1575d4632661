package badger_test

import (
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
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
