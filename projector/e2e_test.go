package projector_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/idxbench/idxbench/projector"
	"github.com/idxbench/idxbench/projector/collate"
	"github.com/idxbench/idxbench/workload"
	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// endingFeed ends with io.EOF once every vbucket stream has ended.
type endingFeed struct {
	f     *workload.Feed
	open  int
	ended int
}

func (e *endingFeed) Next(ctx context.Context, buf []upr.Event) (int, error) {
	if e.ended == e.open {
		return 0, io.EOF
	}
	n, err := e.f.Next(ctx, buf)
	for _, ev := range buf[:n] {
		if ev.Op == upr.OpStreamEnd {
			e.ended++
		}
	}
	return n, err
}

// modelIndexer applies key versions to one map per instance partition and
// checks the stream shape as it goes.
type modelIndexer struct {
	t       *testing.T
	mu      sync.Mutex
	entries map[uint64][]map[string][]byte // inst → partition → docid → key
	seqno   map[upr.Vbno]upr.Seqno
	snapEnd map[upr.Vbno]upr.Seqno
	uuid    map[upr.Vbno]upr.Vbuuid
}

func (m *modelIndexer) Send(_ context.Context, b *projector.Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, kv := range b.KVs {
		switch kv.Cmd {
		case projector.StreamBegin:
			m.uuid[kv.Vb] = kv.Vbuuid
			continue
		case projector.Snapshot:
			if kv.SnapStart <= m.seqno[kv.Vb] && m.seqno[kv.Vb] != 0 {
				m.t.Errorf("vb %d: snapshot [%d,%d] after seqno %d", kv.Vb, kv.SnapStart, kv.SnapEnd, m.seqno[kv.Vb])
			}
			m.snapEnd[kv.Vb] = kv.SnapEnd
			continue
		case projector.StreamEnd:
			continue
		}
		if kv.Vbuuid != m.uuid[kv.Vb] || kv.Vbuuid == 0 {
			m.t.Errorf("vb %d seqno %d: vbuuid %d, stream began with %d", kv.Vb, kv.Seqno, kv.Vbuuid, m.uuid[kv.Vb])
		}
		if kv.Seqno < m.seqno[kv.Vb] || kv.Seqno > m.snapEnd[kv.Vb] {
			m.t.Errorf("vb %d: seqno %d after %d, snapshot end %d", kv.Vb, kv.Seqno, m.seqno[kv.Vb], m.snapEnd[kv.Vb])
		}
		m.seqno[kv.Vb] = kv.Seqno
		if kv.Cmd == projector.Sync {
			continue
		}
		part := m.entries[kv.InstID][kv.Partition]
		switch kv.Cmd {
		case projector.Upsert:
			part[string(kv.DocID)] = kv.Key
		case projector.UpsertDeletion, projector.Deletion:
			delete(part, string(kv.DocID))
		}
	}
	return nil
}

// TestAgainstOracle runs a generated workload's full stream through a
// projector and checks the indexes it describes against the workload's
// independent oracle.
func TestAgainstOracle(t *testing.T) {
	for _, nvb := range []int{1, 64} {
		t.Run(fmt.Sprint("vbuckets=", nvb), func(t *testing.T) {
			spec := workload.DefaultSpec()
			spec.Vbuckets, spec.Docs, spec.Mutations = nvb, 2000, 4000
			spec.Indexes = append(spec.Indexes,
				defn.IndexDefn{Name: "by_age_pcity", SecExprs: []string{"age"}, Partitions: 3, PartitionKey: "city"},
				defn.IndexDefn{Name: "city_where", SecExprs: []string{"city", "address.zip"}, Where: "age >= 40 AND score IS NOT MISSING"})
			g, err := workload.NewGenerator(spec)
			if err != nil {
				t.Fatal(err)
			}
			b := g.NewBucket(workload.BucketOptions{})
			g.Load(b)
			for range spec.Mutations {
				g.Apply(b, g.Next())
			}

			m := &modelIndexer{t: t, entries: map[uint64][]map[string][]byte{},
				seqno: map[upr.Vbno]upr.Seqno{}, snapEnd: map[upr.Vbno]upr.Seqno{}, uuid: map[upr.Vbno]upr.Vbuuid{}}
			p, err := projector.New([]projector.Transport{m}, projector.Options{BufferSize: 100})
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range spec.Indexes {
				in, err := projector.Compile(uint64(i+1), d)
				if err != nil {
					t.Fatal(err)
				}
				parts := make([]map[string][]byte, in.NumPartitions())
				for j := range parts {
					parts[j] = map[string][]byte{}
				}
				m.entries[in.ID] = parts
				if err := p.AddInstance(in); err != nil {
					t.Fatal(err)
				}
			}
			feed := b.NewFeed()
			defer feed.Close()
			for vb := range nvb {
				if err := feed.Request(upr.StreamRequest{Vb: upr.Vbno(vb), End: b.HighSeqno(upr.Vbno(vb))}); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Run(context.Background(), &endingFeed{f: feed, open: nvb}); err != nil {
				t.Fatal(err)
			}

			oracle := workload.NewOracle(b)
			ts := b.CurrentSeqnos()
			for i, d := range spec.Indexes {
				want, err := oracle.Expected(d, ts)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string][]byte{}
				for part, entries := range m.entries[uint64(i+1)] {
					for doc, key := range entries {
						if _, dup := got[doc]; dup {
							t.Errorf("index %s: doc %s in two partitions (one is %d)", d.Name, doc, part)
						}
						got[doc] = key
					}
				}
				if len(got) != len(want) {
					t.Errorf("index %s: %d entries, oracle %d", d.Name, len(got), len(want))
				}
				for _, e := range want {
					wantKey, err := collate.AppendComposite(nil, e.Key)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got[e.DocID], wantKey) {
						gotKey, _ := collate.Decode(got[e.DocID])
						t.Fatalf("index %s doc %s: key %v, oracle %v", d.Name, e.DocID, gotKey, e.Key)
					}
				}
				t.Logf("index %s: %d entries match the oracle", d.Name, len(want))
			}
		})
	}
}

type discardPool struct{ pool *projector.BatchPool }

func (d discardPool) Send(_ context.Context, b *projector.Batch) error {
	d.pool.Put(b)
	return nil
}

// BenchmarkHandleWorkload is BenchmarkHandle on the workload generator's
// default documents (256 bytes) and default indexes; events/s = 1e9/(ns/op).
func BenchmarkHandleWorkload(b *testing.B) {
	spec := workload.DefaultSpec()
	spec.Vbuckets, spec.Docs = 64, 4096
	g, err := workload.NewGenerator(spec)
	if err != nil {
		b.Fatal(err)
	}
	bucket := g.NewBucket(workload.BucketOptions{})
	g.Load(bucket)
	feed := bucket.NewFeed()
	defer feed.Close()
	for vb := range spec.Vbuckets {
		if err := feed.Request(upr.StreamRequest{Vb: upr.Vbno(vb), End: bucket.HighSeqno(upr.Vbno(vb))}); err != nil {
			b.Fatal(err)
		}
	}
	var evs []upr.Event
	buf := make([]upr.Event, 256)
	for ended := 0; ended < spec.Vbuckets; {
		n, err := feed.Next(context.Background(), buf)
		if err != nil {
			b.Fatal(err)
		}
		for _, ev := range buf[:n] {
			switch ev.Op {
			case upr.OpMutation:
				evs = append(evs, ev)
			case upr.OpStreamEnd:
				ended++
			}
		}
	}
	pool := &projector.BatchPool{}
	p, err := projector.New([]projector.Transport{discardPool{pool}}, projector.Options{Pool: pool})
	if err != nil {
		b.Fatal(err)
	}
	for i, d := range spec.Indexes {
		in, err := projector.Compile(uint64(i+1), d)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.AddInstance(in); err != nil {
			b.Fatal(err)
		}
	}
	var size int
	for _, ev := range evs {
		size += len(ev.Value)
	}
	b.SetBytes(int64(size / len(evs)))
	ctx := context.Background()
	b.ReportAllocs()
	report := projector.StartCPU()
	i := 0
	for b.Loop() {
		if err := p.Handle(ctx, &evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	report(b)
}
