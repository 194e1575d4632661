package dataport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/workload/upr"
)

// benchBatches returns batches shaped like the projector's for 256-byte
// documents under five indexes: per mutation five Upserts (one per index)
// with 20-40-byte keys and a 16-byte document id, an occasional Sync (a
// mutation that touches none of the endpoint's indexes) and a Snapshot
// marker every 20 mutations of a vbucket; about 300 key versions a batch.
// It also returns the mutations each batch carries.
func benchBatches(nBatches int) ([]*projector.Batch, []int) {
	const vbuckets, perBatch = 1024, 60
	r := rand.New(rand.NewPCG(1, 2))
	vbuuids := make([]upr.Vbuuid, vbuckets)
	seqnos := make([]upr.Seqno, vbuckets)
	for i := range vbuuids {
		vbuuids[i] = upr.Vbuuid(r.Uint64())
	}
	emit := int64(1_700_000_000_000_000_000)
	batches := make([]*projector.Batch, nBatches)
	muts := make([]int, nBatches)
	for i := range batches {
		b := &projector.Batch{}
		for range perBatch {
			vb := upr.Vbno(r.IntN(vbuckets))
			seqnos[vb]++
			seqno := seqnos[vb]
			emit += int64(r.IntN(20_000))
			base := projector.KeyVersion{Vb: vb, Vbuuid: vbuuids[vb], Seqno: seqno, EmitNanos: emit}
			if seqno%20 == 1 {
				kv := base
				kv.Cmd, kv.SnapStart, kv.SnapEnd = projector.Snapshot, seqno, seqno+19
				b.KVs = append(b.KVs, kv)
			}
			muts[i]++
			if r.IntN(10) == 0 {
				kv := base
				kv.Cmd = projector.Sync
				b.KVs = append(b.KVs, kv)
				continue
			}
			docid := fmt.Appendf(nil, "doc-%012d", r.IntN(1e9))
			for inst := range 5 {
				kv := base
				kv.Cmd, kv.InstID, kv.DocID = projector.Upsert, uint64(inst+1), docid
				if inst == 4 {
					kv.Partition = r.IntN(4)
				}
				kv.Key = make([]byte, 20+r.IntN(21))
				for j := range kv.Key {
					kv.Key[j] = 'a' + byte(r.IntN(26))
				}
				b.KVs = append(b.KVs, kv)
			}
		}
		batches[i] = b
	}
	return batches, muts
}

// BenchmarkDataport sends batches over loopback to a Conn that reads them
// in another goroutine; one op is one batch. "codec" encodes and decodes
// the same batches in memory, the CPU part of the cost.
func BenchmarkDataport(b *testing.B) {
	batches, muts := benchBatches(64)
	var frameBytes, mutations int
	for i, bt := range batches {
		frameBytes += len(frameOf(b, bt))
		mutations += muts[i]
	}
	report := func(b *testing.B) {
		b.SetBytes(int64(frameBytes / len(batches)))
		b.ReportMetric(float64(b.N)*float64(mutations)/float64(len(batches))/b.Elapsed().Seconds(), "mutations/s")
		b.ReportMetric(float64(frameBytes)/float64(mutations), "B/mutation")
	}

	b.Run("loopback", func(b *testing.B) {
		var pool projector.BatchPool
		l := listen(b, ReceiverOptions{Pool: &pool})
		s, c := connect(b, l, SenderOptions{})
		b.ReportAllocs()
		b.ResetTimer()
		done := make(chan error, 1)
		go func() {
			for {
				bt, err := c.Recv(context.Background())
				if err != nil {
					if err == io.EOF {
						err = nil
					}
					done <- err
					return
				}
				pool.Put(bt)
			}
		}()
		for i := range b.N {
			if err := s.Send(context.Background(), batches[i%len(batches)]); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		report(b)
	})

	b.Run("codec", func(b *testing.B) {
		var pool projector.BatchPool
		var buf []byte
		var err error
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if buf, err = appendBatchFrame(buf[:0], batches[i%len(batches)], DefaultMaxFrameSize); err != nil {
				b.Fatal(err)
			}
			c := readerConn(bytes.NewReader(buf), DefaultMaxFrameSize)
			c.pool = &pool
			bt, err := c.Recv(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			pool.Put(bt)
		}
		b.StopTimer()
		report(b)
	})
}
