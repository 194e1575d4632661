package harness

import (
	"context"
	"fmt"
	"net/rpc"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"time"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/harness/measure"
)

// rawReplayer replays the stores' recorded calls into fresh stores of the
// engine (see batchRecorder): in the cell's process, or in the index
// node's process when the nodes run as processes, so the raw rate is
// measured on the CPUs the pipeline's indexer had.
type rawReplayer interface {
	// mark starts a measured phase.
	mark(ctx context.Context) error
	// replay replays the phase's calls; last says no raw_ratio phase
	// follows, so recording stops.
	replay(ctx context.Context, last bool) (RawReplay, error)
}

// RawReplay is what a replay measured (exported for the node's net/rpc
// endpoint).
type RawReplay struct {
	Wall time.Duration // the measured calls' wall time
	// CPU is the replaying process's CPU time over the same measured calls
	// (not the stores' opening, the untimed replay of the calls before the
	// phase, or the stores' destruction).
	CPU time.Duration
	Ops int
}

// localReplayer replays in this process.
type localReplayer struct {
	rec    *batchRecorder
	engine engines.Engine
	opts   engines.Options
	dir    string
}

func (l *localReplayer) mark(context.Context) error {
	l.rec.mark()
	return nil
}

func (l *localReplayer) replay(_ context.Context, last bool) (RawReplay, error) {
	streams := l.rec.streams()
	if last {
		l.rec.stop()
	}
	return replayRaw(l.engine, l.opts, l.dir, streams)
}

// rawService is the index node process's raw-replay endpoint, beside its
// control endpoint.
type rawService struct{ l *localReplayer }

// rawServiceName names it on the control endpoint.
const rawServiceName = "Raw"

// recServiceName names the index node's timings endpoint: the cell drains
// the node's recorder (flushes, persists, index lag, …) every tick.
const recServiceName = "Rec"

// recService serves the index node's recorder.
type recService struct{ r *measure.Recorder }

func (s *recService) Drain(_ *struct{}, reply *map[string]measure.Window) error {
	*reply = s.r.Drain()
	return nil
}

// Runtime answers the index node process's goroutines and live heap, for
// the drift verdict.
func (s *recService) Runtime(_ *struct{}, reply *RuntimeFigures) error {
	*reply = readRuntime()
	return nil
}

// RuntimeFigures are a Go process's goroutines and live heap.
type RuntimeFigures struct {
	Goroutines    int
	HeapLiveBytes uint64
}

// readRuntime reads this process's figures.
func readRuntime() RuntimeFigures {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	f := RuntimeFigures{Goroutines: runtime.NumGoroutine()}
	if s[0].Value.Kind() == metrics.KindUint64 {
		f.HeapLiveBytes = s[0].Value.Uint64()
	}
	return f
}

func (s *rawService) Mark(_ *struct{}, _ *struct{}) error { return s.l.mark(context.Background()) }

func (s *rawService) Replay(last *bool, reply *RawReplay) (err error) {
	*reply, err = s.l.replay(context.Background(), *last)
	return err
}

// remoteReplayer asks the index node's process to replay.
type remoteReplayer struct{ c *rpc.Client }

func (r remoteReplayer) mark(ctx context.Context) error {
	return rpcCall(ctx, r.c, rawServiceName+".Mark", &struct{}{}, &struct{}{})
}

func (r remoteReplayer) replay(ctx context.Context, last bool) (RawReplay, error) {
	var res RawReplay
	err := rpcCall(ctx, r.c, rawServiceName+".Replay", &last, &res)
	return res, err
}

// rpcCall makes a call that ctx can abandon.
func rpcCall(ctx context.Context, c *rpc.Client, method string, args, reply any) error {
	call := c.Go(method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		if call.Error != nil {
			return fmt.Errorf("%s: %w", method, call.Error)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newLocalReplayer(rec *batchRecorder, e engines.Engine, opts engines.Options, dir string) *localReplayer {
	return &localReplayer{rec: rec, engine: e, opts: opts, dir: filepath.Join(dir, "replay")}
}
