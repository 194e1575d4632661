package workload

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/idxbench/idxbench/workload/defn"
	"github.com/idxbench/idxbench/workload/upr"
)

// TestStream runs the datadriven files in testdata/stream. Commands:
//
//	bucket [vbuckets=N] [snapshot-items=N] [seed=N]   new bucket, fake clock, one feed
//	set            input lines "docid [json]": insert or update
//	delete|expire  input lines "docid"
//	failover vb=V seqno=S
//	kv-restart [persisted=V:S,...] [new-entry]   KV restart; listed vbuckets lose what is above S
//	log [vb=V]     failover log, newest first
//	current        CurrentSeqnos
//	request vb=V [start=S] [end=E|max] [vbuuid=bI|N] [snap=A,B]
//	close-stream vb=V
//	next [max=N]   every event available now (Feed.Poll), one a line
//	compact seqnos=S0,S1,...
//	oracle (keys=a,b [where=...] | primary) [at=S0,S1,...|current]
//
// Vbuuids print as bI, the I-th branch of their vbucket (b0 the first), so
// the files do not depend on random numbers; a request's vbuuid=bI means
// the same.
func TestStream(t *testing.T) {
	datadriven.Walk(t, "testdata/stream", func(t *testing.T, path string) {
		var (
			b    *Bucket
			feed *Feed
		)
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			if td.Cmd != "bucket" && b == nil {
				td.Fatalf(t, "no bucket yet")
			}
			switch td.Cmd {
			case "bucket":
				vbs, items, seed := 1, 3, uint64(1)
				td.MaybeScanArgs(t, "vbuckets", &vbs)
				td.MaybeScanArgs(t, "snapshot-items", &items)
				td.MaybeScanArgs(t, "seed", &seed)
				var now int64
				b = NewBucketWithOptions(vbs, seed, BucketOptions{
					SnapshotItems: items,
					Clock:         func() int64 { now += 1000; return now },
				})
				feed = b.NewFeed()
				return "ok"
			case "set", "delete", "expire":
				var out strings.Builder
				for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
					id, val, _ := strings.Cut(strings.TrimSpace(line), " ")
					var (
						vb upr.Vbno
						s  upr.Seqno
						ok = true
					)
					switch td.Cmd {
					case "set":
						if val == "" {
							val = `{}`
						}
						vb, s = b.Set(id, []byte(val))
					case "delete":
						vb, s, ok = b.Delete(id)
					case "expire":
						vb, s, ok = b.Expire(id)
					}
					if ok {
						fmt.Fprintf(&out, "%s: vb=%d seq=%d\n", id, vb, s)
					} else {
						fmt.Fprintf(&out, "%s: vb=%d absent\n", id, vb)
					}
				}
				return out.String()
			case "failover":
				var vb, s int
				td.ScanArgs(t, "vb", &vb)
				td.ScanArgs(t, "seqno", &s)
				if err := b.Failover(upr.Vbno(vb), upr.Seqno(s)); err != nil {
					return "error: " + err.Error()
				}
				return names(b, formatLog(b.FailoverLog(upr.Vbno(vb))))
			case "kv-restart":
				persisted := map[upr.Vbno]upr.Seqno{}
				if a, ok := td.Arg("persisted"); ok {
					for _, v := range a.Vals {
						x, y, _ := strings.Cut(v, ":")
						vb, err1 := strconv.Atoi(x)
						s, err2 := strconv.ParseUint(y, 10, 64)
						if err1 != nil || err2 != nil {
							td.Fatalf(t, "persisted: %q is not VB:SEQNO", v)
						}
						persisted[upr.Vbno(vb)] = upr.Seqno(s)
					}
				}
				if err := b.Restart(persisted, td.HasArg("new-entry")); err != nil {
					return "error: " + err.Error()
				}
				var out strings.Builder
				for vb := range b.Vbuckets() {
					fmt.Fprintf(&out, "vb=%d high=%d log=%s", vb, b.HighSeqno(upr.Vbno(vb)), formatLog(b.FailoverLog(upr.Vbno(vb))))
				}
				return names(b, out.String())
			case "log":
				vb := 0
				td.MaybeScanArgs(t, "vb", &vb)
				return names(b, formatLog(b.FailoverLog(upr.Vbno(vb))))
			case "current":
				ts := b.CurrentSeqnos()
				var out strings.Builder
				for vb := range ts.Len() {
					fmt.Fprintf(&out, "vb=%d seqno=%d vbuuid=%d snap=%d..%d\n", vb, ts.Seqnos[vb], ts.Vbuuids[vb],
						ts.Snapshots[vb][0], ts.Snapshots[vb][1])
				}
				return names(b, out.String())
			case "request":
				req := requestArgs(t, td, b)
				if err := feed.Request(req); err != nil {
					return "error: " + err.Error()
				}
				return "ok"
			case "close-stream":
				var vb int
				td.ScanArgs(t, "vb", &vb)
				if err := feed.CloseStream(upr.Vbno(vb)); err != nil {
					return "error: " + err.Error()
				}
				return "ok"
			case "next":
				limit := 1000
				td.MaybeScanArgs(t, "max", &limit)
				var out strings.Builder
				buf := make([]upr.Event, 7) // small, so events span calls
				for total := 0; total < limit; {
					n, err := feed.Poll(buf[:min(len(buf), limit-total)])
					if err != nil {
						return "error: " + err.Error()
					}
					if n == 0 {
						break
					}
					for i := range buf[:n] {
						out.WriteString(buf[i].String())
						out.WriteByte('\n')
					}
					total += n
				}
				if out.Len() == 0 {
					return "nothing"
				}
				return names(b, out.String())
			case "compact":
				ts := upr.NewTsVbuuid(b.Vbuckets())
				var seqnos string
				td.ScanArgs(t, "seqnos", &seqnos)
				for i, f := range strings.Split(seqnos, ",") {
					s, _ := strconv.ParseUint(f, 10, 64)
					ts.Seqnos[i] = upr.Seqno(s)
				}
				b.Compact(ts)
				return "ok"
			case "oracle":
				return oracleCmd(t, td, b)
			}
			td.Fatalf(t, "unknown command %q", td.Cmd)
			return ""
		})
	})
}

func requestArgs(t *testing.T, td *datadriven.TestData, b *Bucket) upr.StreamRequest {
	var vb int
	td.ScanArgs(t, "vb", &vb)
	req := upr.StreamRequest{Vb: upr.Vbno(vb), End: EndlessSeqno}
	if vb < b.Vbuckets() {
		req.Vbuuid = b.FailoverLog(req.Vb).Latest().Vbuuid
	}
	var s uint64
	if td.MaybeScanArgs(t, "start", &s) {
		req.Start = upr.Seqno(s)
	}
	req.SnapStart, req.SnapEnd = req.Start, req.Start
	if a, ok := td.Arg("end"); ok && a.SingleVal(t) != "max" {
		e, err := strconv.ParseUint(a.SingleVal(t), 10, 64)
		if err != nil {
			td.Fatalf(t, "end: %v", err)
		}
		req.End = upr.Seqno(e)
	}
	if a, ok := td.Arg("vbuuid"); ok {
		req.Vbuuid = vbuuidArg(t, td, b, req.Vb, a.SingleVal(t))
	}
	if a, ok := td.Arg("snap"); ok {
		x, y := a.TwoVals(t)
		sx, _ := strconv.ParseUint(x, 10, 64)
		sy, _ := strconv.ParseUint(y, 10, 64)
		req.SnapStart, req.SnapEnd = upr.Seqno(sx), upr.Seqno(sy)
	}
	return req
}

// vbuuidArg resolves "bI" (the I-th branch, oldest first, including
// branches a failover dropped from the log) or a literal number.
func vbuuidArg(t *testing.T, td *datadriven.TestData, b *Bucket, vb upr.Vbno, s string) upr.Vbuuid {
	if rest, ok := strings.CutPrefix(s, "b"); ok {
		i, err := strconv.Atoi(rest)
		if err != nil {
			td.Fatalf(t, "vbuuid %q: %v", s, err)
		}
		if u, ok := branchUUIDs(b)[vb][i]; ok {
			return u
		}
		td.Fatalf(t, "vbuuid %q: no such branch", s)
	}
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		td.Fatalf(t, "vbuuid %q: %v", s, err)
	}
	return upr.Vbuuid(u)
}

// branchUUIDs numbers every vbuuid each vbucket ever had, oldest first.
func branchUUIDs(b *Bucket) map[upr.Vbno]map[int]upr.Vbuuid {
	out := map[upr.Vbno]map[int]upr.Vbuuid{}
	for vb := range b.Vbuckets() {
		out[upr.Vbno(vb)] = map[int]upr.Vbuuid{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for vb := range b.vbs {
		m := out[upr.Vbno(vb)]
		for _, u := range b.vbs[vb].everUUIDs {
			m[len(m)] = u
		}
	}
	return out
}

// names replaces vbuuids by their branch names.
func names(b *Bucket, s string) string {
	for _, m := range branchUUIDs(b) {
		for i, u := range m {
			s = strings.ReplaceAll(s, strconv.FormatUint(uint64(u), 10), "b"+strconv.Itoa(i))
		}
	}
	return s
}

func formatLog(l upr.FailoverLog) string {
	var parts []string
	for _, e := range l {
		parts = append(parts, fmt.Sprintf("%d@%d", e.Vbuuid, e.Seqno))
	}
	return strings.Join(parts, " ") + "\n"
}

func oracleCmd(t *testing.T, td *datadriven.TestData, b *Bucket) string {
	var d defn.IndexDefn
	d.Name = "test"
	if td.HasArg("primary") {
		d.IsPrimary = true
	}
	if a, ok := td.Arg("keys"); ok {
		d.SecExprs = a.Vals
	}
	if a, ok := td.Arg("where"); ok {
		d.Where = strings.Join(a.Vals, " AND ")
	}
	ts := b.CurrentSeqnos()
	if a, ok := td.Arg("at"); ok && a.Vals[0] != "current" {
		ts = upr.NewTsVbuuid(b.Vbuckets())
		for i, v := range a.Vals {
			if u, s, ok := strings.Cut(v, "/"); ok {
				ts.Vbuuids[i] = vbuuidArg(t, td, b, upr.Vbno(i), u)
				v = s
			}
			s, _ := strconv.ParseUint(v, 10, 64)
			ts.Seqnos[i] = upr.Seqno(s)
		}
	}
	entries, err := NewOracle(b).Expected(d, ts)
	if err != nil {
		return "error: " + names(b, err.Error())
	}
	if len(entries) == 0 {
		return "empty"
	}
	var out strings.Builder
	for _, e := range entries {
		out.WriteString(formatKey(e.Key))
		fmt.Fprintf(&out, " %s\n", e.DocID)
	}
	return out.String()
}

func formatKey(key []any) string {
	parts := make([]string, len(key))
	for i, v := range key {
		switch v := v.(type) {
		case defn.MissingValue:
			parts[i] = "MISSING"
		case string:
			parts[i] = strconv.Quote(v)
		case nil:
			parts[i] = "null"
		default:
			parts[i] = fmt.Sprint(v)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
