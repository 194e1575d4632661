package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idxbench/idxbench/workload/defn"
)

// ViaMaster is the metadata as an index client sees it when the master
// coordinator executes DDL: each DDL is a request key in etcd that the
// master claims, applies to the metadata and answers with a result key;
// reads go to the metadata directly. With no master, a DDL is refused
// after the timeout and nothing changes: a request no master claimed is
// withdrawn.
type ViaMaster struct {
	meta    *Etcd
	cli     *clientv3.Client
	base    string
	timeout time.Duration
}

var _ Metadata = (*ViaMaster)(nil)

// NewViaMaster returns the metadata under prefix, its DDL executed by the
// master; each DDL waits at most timeout (default 5 s) for the master.
func NewViaMaster(cli *clientv3.Client, prefix string, timeout time.Duration) *ViaMaster {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &ViaMaster{meta: NewEtcd(cli, prefix, timeout), cli: cli, base: strings.TrimSuffix(prefix, "/"), timeout: timeout}
}

func ddlRequests(base string) string { return base + "/ddl/requests/" }
func ddlResults(base string) string  { return base + "/ddl/results/" }

// ddlRequest is one DDL as the master receives it.
type ddlRequest struct {
	Op    string          `json:"op"` // create, set_state, build, drop, set_recovery
	Defn  *defn.IndexDefn `json:"defn,omitempty"`
	Name  string          `json:"name,omitempty"`
	State State           `json:"state,omitempty"`
	Names []string        `json:"names,omitempty"`
	On    bool            `json:"on,omitempty"`
}

// ddlResult is the master's answer: what the DDL returned, or why it was
// refused (Code names the sentinel error, so the client's errors.Is works).
type ddlResult struct {
	Instance  Instance   `json:"instance"`
	Instances []Instance `json:"instances,omitempty"`
	Err       string     `json:"err,omitempty"`
	Code      string     `json:"code,omitempty"`
}

// ddlCodes are the refusals a client can tell apart.
var ddlCodes = map[string]error{
	"exists":      ErrIndexExists,
	"not_found":   ErrIndexNotFound,
	"transition":  ErrBadTransition,
	"recovery":    ErrInRecovery,
	"too_few":     ErrTooFewNodes,
	"unavailable": ErrMetadataUnavailable,
}

// ddlError is a refusal from the master: its message, and the sentinel
// error it wraps.
type ddlError struct {
	msg      string
	sentinel error
}

func (e *ddlError) Error() string { return e.msg }
func (e *ddlError) Unwrap() error { return e.sentinel }

// ErrNoMasterDDL refuses a DDL no master claimed in time.
var ErrNoMasterDDL = errors.New("no master coordinator took the DDL")

func (v *ViaMaster) do(req ddlRequest) (ddlResult, error) {
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return ddlResult{}, err
	}
	key := hex.EncodeToString(id[:])
	data, err := json.Marshal(req)
	if err != nil {
		return ddlResult{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), v.timeout)
	defer cancel()
	put, err := v.cli.Put(ctx, ddlRequests(v.base)+key, string(data))
	if err != nil {
		return ddlResult{}, fmt.Errorf("%s: %w: %v", req.Op, ErrMetadataUnavailable, err)
	}
	resKey := ddlResults(v.base) + key
	wch := v.cli.Watch(ctx, resKey, clientv3.WithRev(put.Header.Revision+1))
	for resp := range wch {
		for _, ev := range resp.Events {
			if ev.Type != clientv3.EventTypePut {
				continue
			}
			var res ddlResult
			if err := json.Unmarshal(ev.Kv.Value, &res); err != nil {
				return ddlResult{}, fmt.Errorf("%s: the master's answer is corrupt: %w", req.Op, err)
			}
			dctx, dcancel := context.WithTimeout(context.Background(), v.timeout)
			v.cli.Delete(dctx, resKey)
			dcancel()
			if res.Err != "" {
				return res, &ddlError{msg: res.Err, sentinel: ddlCodes[res.Code]}
			}
			return res, nil
		}
	}
	// No answer in time: withdraw the request unless the master has
	// claimed it (then it may still be applied: say so).
	wctx, wcancel := context.WithTimeout(context.Background(), v.timeout)
	defer wcancel()
	reqKey := ddlRequests(v.base) + key
	tx, err := v.cli.Txn(wctx).If(clientv3.Compare(clientv3.CreateRevision(reqKey), ">", 0)).
		Then(clientv3.OpDelete(reqKey)).Commit()
	switch {
	case err != nil:
		return ddlResult{}, fmt.Errorf("%s: %w: %v", req.Op, ErrMetadataUnavailable, err)
	case tx.Succeeded:
		return ddlResult{}, fmt.Errorf("%s: %w within %s; nothing changed", req.Op, ErrNoMasterDDL, v.timeout)
	default:
		return ddlResult{}, fmt.Errorf("%s: the master took the DDL but did not answer within %s; it may yet apply: %w",
			req.Op, v.timeout, ErrMetadataUnavailable)
	}
}

func (v *ViaMaster) Create(d defn.IndexDefn) (Instance, error) {
	res, err := v.do(ddlRequest{Op: "create", Defn: &d})
	return res.Instance, err
}

func (v *ViaMaster) SetState(name string, state State) error {
	_, err := v.do(ddlRequest{Op: "set_state", Name: name, State: state})
	return err
}

func (v *ViaMaster) Build(names ...string) ([]Instance, error) {
	res, err := v.do(ddlRequest{Op: "build", Names: names})
	return res.Instances, err
}

func (v *ViaMaster) Drop(name string) (Instance, error) {
	res, err := v.do(ddlRequest{Op: "drop", Name: name})
	return res.Instance, err
}

func (v *ViaMaster) SetRecovery(on bool) error {
	_, err := v.do(ddlRequest{Op: "set_recovery", On: on})
	return err
}

func (v *ViaMaster) Get(name string) (Instance, error) { return v.meta.Get(name) }
func (v *ViaMaster) Instances() ([]Instance, error)    { return v.meta.Instances() }

// serveDDL executes the DDL requests under the cluster's prefix, the
// pending ones first, until ctx ends (the master's term). Each request is
// claimed by deleting it in a transaction, so it is applied once.
func serveDDL(ctx context.Context, cli *clientv3.Client, base string, meta *Etcd, log *slog.Logger) {
	base = strings.TrimSuffix(base, "/")
	resp, err := cli.Get(ctx, ddlRequests(base), clientv3.WithPrefix())
	if err != nil {
		return
	}
	for _, kv := range resp.Kvs {
		executeDDL(ctx, cli, base, meta, string(kv.Key), kv.Value, log)
	}
	wch := cli.Watch(ctx, ddlRequests(base), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for wr := range wch {
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypePut {
				executeDDL(ctx, cli, base, meta, string(ev.Kv.Key), ev.Kv.Value, log)
			}
		}
	}
}

func executeDDL(ctx context.Context, cli *clientv3.Client, base string, meta *Etcd, key string, value []byte, log *slog.Logger) {
	claim, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil || !claim.Succeeded {
		return // withdrawn by its client, or etcd is out of reach
	}
	var req ddlRequest
	var res ddlResult
	if err := json.Unmarshal(value, &req); err != nil {
		res.Err = fmt.Sprintf("a DDL request the master cannot read: %v", err)
	} else {
		err = applyDDL(meta, req, &res)
		if err != nil {
			res.Err = err.Error()
			for code, sentinel := range ddlCodes {
				if errors.Is(err, sentinel) {
					res.Code = code
				}
			}
		}
	}
	data, err := json.Marshal(res)
	if err != nil {
		return
	}
	if _, err := cli.Put(ctx, ddlResults(base)+strings.TrimPrefix(key, ddlRequests(base)), string(data)); err != nil {
		log.Warn("answer a DDL", "err", err)
	}
}

func applyDDL(meta *Etcd, req ddlRequest, res *ddlResult) (err error) {
	switch req.Op {
	case "create":
		if req.Defn == nil {
			return errors.New("create: no index definition")
		}
		res.Instance, err = meta.Create(*req.Defn)
	case "set_state":
		err = meta.SetState(req.Name, req.State)
	case "build":
		res.Instances, err = meta.Build(req.Names...)
	case "drop":
		res.Instance, err = meta.Drop(req.Name)
	case "set_recovery":
		err = meta.SetRecovery(req.On)
	default:
		err = fmt.Errorf("unknown DDL %q", req.Op)
	}
	return err
}
