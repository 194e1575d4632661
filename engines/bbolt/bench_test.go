package bbolt_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/bbolt"
)

// loadEntries is the number of index entries the load benchmarks write
// (IDXBENCH_BBOLT_LOAD_ENTRIES, default 200000).
func loadEntries(b *testing.B) int {
	n := 200_000
	if s := os.Getenv("IDXBENCH_BBOLT_LOAD_ENTRIES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("IDXBENCH_BBOLT_LOAD_ENTRIES=%q: want a positive integer", s)
		}
		n = v
	}
	return n
}

// freelist is the freelist type both sides of BenchmarkLoad use
// (IDXBENCH_BBOLT_FREELIST: array, the default, or hashmap).
func freelist(b *testing.B) string {
	switch f := os.Getenv("IDXBENCH_BBOLT_FREELIST"); f {
	case "", "array":
		return "array"
	case "hashmap":
		return "hashmap"
	default:
		b.Fatalf("IDXBENCH_BBOLT_FREELIST=%q: want array or hashmap", f)
		return ""
	}
}

// entryKeys returns n index keys: 16-40 random bytes ++ 8-byte docid.
func entryKeys(n int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([][]byte, n)
	for i := range keys {
		k := make([]byte, 16+rng.IntN(25), 48)
		for j := range k {
			k[j] = byte(rng.Uint32())
		}
		keys[i] = binary.BigEndian.AppendUint64(k, uint64(i))
	}
	return keys
}

// BenchmarkLoad compares loading index entries (batches of 1000, no sync)
// through the adapter with the same load written against bbolt directly
// (sorted batch, one Update each). Run both in one invocation so machine
// noise hits both; the ratio of their entries/s is the adapter's cost.
//
//	go test ./engines/bbolt -run '^$' -bench Load -count 5 | benchstat -
func BenchmarkLoad(b *testing.B) {
	const batch = 1000
	keys := entryKeys(loadEntries(b))
	b.Run("via=adapter", func(b *testing.B) {
		var cpu int64
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			s, err := bbolt.Open(filepath.Join(b.TempDir(), "s"), engines.Options{Extra: map[string]string{"freelist": freelist(b)}})
			if err != nil {
				b.Fatal(err)
			}
			var bt engines.Batch
			b.StartTimer()
			c0 := cpuNanos()
			for j, k := range keys {
				bt.Set(engines.Main, k, nil)
				if bt.Len() == batch || j == len(keys)-1 {
					if err := s.Apply(&bt, engines.NoSync); err != nil {
						b.Fatal(err)
					}
					bt.Reset()
				}
			}
			cpu += cpuNanos() - c0
			b.StopTimer()
			s.Close()
		}
		b.ReportMetric(float64(len(keys)*b.N)/b.Elapsed().Seconds(), "entries/s")
		b.ReportMetric(float64(cpu)/float64(len(keys)*b.N), "cpu_ns/entry")
	})
	b.Run("via=bbolt", func(b *testing.B) {
		var cpu int64
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			ft := bolt.FreelistArrayType
			if freelist(b) == "hashmap" {
				ft = bolt.FreelistMapType
			}
			db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o644, &bolt.Options{NoSync: true, NoGrowSync: true, InitialMmapSize: 8 << 30, FreelistType: ft})
			if err != nil {
				b.Fatal(err)
			}
			name := []byte("main")
			if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(name); return err }); err != nil {
				b.Fatal(err)
			}
			buf := make([][]byte, 0, batch)
			b.StartTimer()
			c0 := cpuNanos()
			for j, k := range keys {
				buf = append(buf, k)
				if len(buf) == batch || j == len(keys)-1 {
					slices.SortFunc(buf, bytes.Compare)
					err := db.Update(func(tx *bolt.Tx) error {
						bk := tx.Bucket(name)
						for _, k := range buf {
							if err := bk.Put(k, []byte{}); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
					buf = buf[:0]
				}
			}
			cpu += cpuNanos() - c0
			b.StopTimer()
			db.Close()
		}
		b.ReportMetric(float64(len(keys)*b.N)/b.Elapsed().Seconds(), "entries/s")
		b.ReportMetric(float64(cpu)/float64(len(keys)*b.N), "cpu_ns/entry")
	})
}

// cpuNanos is the process's user plus system CPU time, in nanoseconds.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
