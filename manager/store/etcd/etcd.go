// Package etcd is the store.Store backend several managers share: an etcd v3
// cluster, with leader election (election.go) so that one manager writes.
//
// Every key of one acli cluster lives under a namespace (default /acli):
//
//	NS/kv/<key>     the model, as store.Store keys
//	NS/meta/rev     rewritten by every write transaction: its mod revision is
//	                the store revision (etcd's own revision also counts writes
//	                of other namespaces and of the election)
//	NS/election/    the election keys of the managers
//
// Revisions are etcd's: a key's ModRev and CreateRev are its etcd mod and
// create revisions, and a store.Cond is an etcd compare on mod revision.
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acli-dev/acli/manager/store"
)

// Config says where the etcd cluster is and how to talk to it.
type Config struct {
	// Endpoints are the members' client URLs (http://host:2379 or https://...).
	Endpoints []string
	// Namespace prefixes every key (default /acli), so several acli clusters
	// can share one etcd.
	Namespace string
	// TLS, when set, is used for every member.
	TLS *tls.Config
	// Username and Password authenticate to etcd when its auth is enabled.
	Username, Password string
	// DialTimeout bounds Open (default 5s).
	DialTimeout time.Duration
	// OpTimeout bounds every call whose context has no deadline (default
	// 5s): without quorum etcd requests would otherwise wait forever.
	OpTimeout time.Duration
}

// Store is the etcd store.Store; it also implements store.Watcher.
type Store struct {
	cli       *clientv3.Client
	ns        string
	kvPrefix  string
	metaKey   string
	opTimeout time.Duration
	endpoints string

	mu     sync.RWMutex
	closed bool
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Watcher = (*Store)(nil)
)

// Open connects to the cluster and checks that a member answers.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "/acli"
	}
	cfg.Namespace = "/" + strings.Trim(cfg.Namespace, "/")
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		TLS:         cfg.TLS,
		Username:    cfg.Username,
		Password:    cfg.Password,
		DialTimeout: cfg.DialTimeout,
		// Keepalives notice a dead member so the balancer moves on.
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
		Context:              context.WithoutCancel(ctx),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	s := &Store{
		cli:       cli,
		ns:        cfg.Namespace,
		kvPrefix:  cfg.Namespace + "/kv",
		metaKey:   cfg.Namespace + "/meta/rev",
		opTimeout: cfg.OpTimeout,
		endpoints: strings.Join(cfg.Endpoints, ","),
	}
	// One serializable read proves a member answers, without needing quorum
	// (a manager may start while the store is degraded).
	cctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := cli.Get(cctx, s.metaKey, clientv3.WithSerializable()); err != nil {
		cli.Close()
		return nil, s.wrap(err)
	}
	return s, nil
}

// Client returns the etcd client (for the election and cluster status).
func (s *Store) Client() *clientv3.Client { return s.cli }

// Namespace returns the key prefix of this acli cluster.
func (s *Store) Namespace() string { return s.ns }

// Endpoints returns the configured member URLs, comma-separated.
func (s *Store) Endpoints() string { return s.endpoints }

// call runs fn with the store open and a bounded context.
func (s *Store) call(ctx context.Context, fn func(ctx context.Context) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opTimeout)
		defer cancel()
	}
	return s.wrap(fn(ctx))
}

// wrap turns the client's errors into the store's: lost quorum, dead
// members and timeouts become store.ErrUnavailable with etcd's reason.
func (s *Store) wrap(err error) error {
	if err == nil {
		return nil
	}
	var ce *store.ConflictError
	if errors.As(err, &ce) || err == store.ErrNotFound || errors.Is(err, store.ErrNotLeader) || errors.Is(err, store.ErrClosed) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: etcd %s did not answer in time (is a quorum of members up?)", store.ErrUnavailable, s.endpoints)
	}
	if errors.Is(err, rpctypes.ErrTooManyOps) {
		return fmt.Errorf("etcd refused a transaction of too many operations (start etcd with a larger --max-txn-ops, e.g. 10000): %w", err)
	}
	switch rpctypes.Error(err) {
	case rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost,
		rpctypes.ErrNoLeader, rpctypes.ErrLeaderChanged, rpctypes.ErrStopped, rpctypes.ErrTimeoutWaitAppliedIndex:
		return fmt.Errorf("%w: etcd %s: %v (is a quorum of members up?)", store.ErrUnavailable, s.endpoints, rpctypes.ErrorDesc(err))
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Errorf("%w: etcd %s: %v", store.ErrUnavailable, s.endpoints, rpctypes.ErrorDesc(err))
	}
	return fmt.Errorf("etcd %s: %w", s.endpoints, err)
}

func (s *Store) key(k string) string { return s.kvPrefix + k }

func (s *Store) kv(kv *mvccpb.KeyValue) store.KV {
	return store.KV{
		Key:       strings.TrimPrefix(string(kv.Key), s.kvPrefix),
		Value:     kv.Value,
		CreateRev: kv.CreateRevision,
		ModRev:    kv.ModRevision,
	}
}

// Get implements store.Store with a linearizable read.
func (s *Store) Get(ctx context.Context, key string) (store.KV, error) {
	var out store.KV
	err := s.call(ctx, func(ctx context.Context) error {
		resp, err := s.cli.Get(ctx, s.key(key))
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return store.ErrNotFound
		}
		out = s.kv(resp.Kvs[0])
		return nil
	})
	return out, err
}

// List implements store.Store with a linearizable read, in key order.
func (s *Store) List(ctx context.Context, prefix string) ([]store.KV, error) {
	out, _, err := s.list(ctx, prefix)
	return out, err
}

// ListAt is List that also returns the etcd revision the listing was read
// at, from which a Watch continues without a gap.
func (s *Store) ListAt(ctx context.Context, prefix string) ([]store.KV, int64, error) {
	return s.list(ctx, prefix)
}

func (s *Store) list(ctx context.Context, prefix string, opts ...clientv3.OpOption) ([]store.KV, int64, error) {
	var out []store.KV
	var rev int64
	err := s.call(ctx, func(ctx context.Context) error {
		resp, err := s.cli.Get(ctx, s.key(prefix), append([]clientv3.OpOption{clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}, opts...)...)
		if err != nil {
			return err
		}
		rev = resp.Header.Revision
		out = make([]store.KV, len(resp.Kvs))
		for i, kv := range resp.Kvs {
			out[i] = s.kv(kv)
		}
		return nil
	})
	return out, rev, err
}

// ListStale is List answered by the member the client talks to without
// consulting the quorum: it works while quorum is lost, and may be stale.
func (s *Store) ListStale(ctx context.Context, prefix string) ([]store.KV, error) {
	out, _, err := s.list(ctx, prefix, clientv3.WithSerializable())
	return out, err
}

// Revision implements store.Store: the revision of the last write
// transaction of this namespace, 0 on a fresh one.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.call(ctx, func(ctx context.Context) error {
		resp, err := s.cli.Get(ctx, s.metaKey)
		if err != nil {
			return err
		}
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
		}
		return nil
	})
	return rev, err
}

// Txn implements store.Store.
func (s *Store) Txn(ctx context.Context, conds []store.Cond, ops []store.Op) (int64, error) {
	return s.txn(ctx, nil, conds, ops)
}

// fence is the leadership a fenced transaction requires: the election key
// must still exist with the create revision it had when leadership was won.
type fence struct {
	key string
	rev int64
}

func (s *Store) txn(ctx context.Context, f *fence, conds []store.Cond, ops []store.Op) (int64, error) {
	cmps := make([]clientv3.Cmp, 0, len(conds)+1)
	elseOps := make([]clientv3.Op, 0, len(conds)+2)
	if f != nil {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(f.key), "=", f.rev))
		elseOps = append(elseOps, clientv3.OpGet(f.key, clientv3.WithKeysOnly()))
	}
	for _, c := range conds {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.key(c.Key)), "=", c.ModRev))
		elseOps = append(elseOps, clientv3.OpGet(s.key(c.Key), clientv3.WithKeysOnly()))
	}
	thenOps := make([]clientv3.Op, 0, len(ops)+1)
	for _, op := range dedupe(ops) {
		if op.Delete {
			thenOps = append(thenOps, clientv3.OpDelete(s.key(op.Key)))
		} else {
			thenOps = append(thenOps, clientv3.OpPut(s.key(op.Key), string(op.Value)))
		}
	}
	if len(thenOps) > 0 {
		thenOps = append(thenOps, clientv3.OpPut(s.metaKey, ""))
	} else {
		thenOps = append(thenOps, clientv3.OpGet(s.metaKey, clientv3.WithKeysOnly()))
	}
	var rev int64
	err := s.call(ctx, func(ctx context.Context) error {
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(thenOps...).Else(elseOps...).Commit()
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			return s.mismatch(f, conds, resp)
		}
		if len(ops) > 0 {
			rev = resp.Header.Revision
		} else if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			rev = kvs[0].ModRevision
		}
		return nil
	})
	return rev, err
}

// mismatch builds the error of a failed compare from the Else reads.
func (s *Store) mismatch(f *fence, conds []store.Cond, resp *clientv3.TxnResponse) error {
	rs := resp.Responses
	if f != nil {
		kvs := rs[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 || kvs[0].CreateRevision != f.rev {
			return fmt.Errorf("%w: its leadership ended (lease expired or resigned); the write was refused", store.ErrNotLeader)
		}
		rs = rs[1:]
	}
	ce := &store.ConflictError{}
	for i, c := range conds {
		var actual int64
		if kvs := rs[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			actual = kvs[0].ModRevision
		}
		if actual != c.ModRev {
			ce.Mismatches = append(ce.Mismatches, store.Mismatch{Key: c.Key, Expected: c.ModRev, Actual: actual})
		}
	}
	if len(ce.Mismatches) == 0 {
		// A compare failed between the If and the Else reads' view: cannot
		// happen in one etcd transaction, but never report success.
		return fmt.Errorf("etcd %s: transaction refused without a mismatch", s.endpoints)
	}
	return ce
}

// dedupe keeps the last op of each key, in first-seen order: etcd refuses a
// transaction that writes one key twice, bbolt applies the last.
func dedupe(ops []store.Op) []store.Op {
	if len(ops) < 2 {
		return ops
	}
	idx := make(map[string]int, len(ops))
	out := make([]store.Op, 0, len(ops))
	for _, op := range ops {
		if i, ok := idx[op.Key]; ok {
			out[i] = op
			continue
		}
		idx[op.Key] = len(out)
		out = append(out, op)
	}
	return out
}

// Watch implements store.Watcher.
func (s *Store) Watch(ctx context.Context, prefix string, after int64) <-chan store.WatchResponse {
	out := make(chan store.WatchResponse, 16)
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		out <- store.WatchResponse{Err: store.ErrClosed}
		close(out)
		return out
	}
	// RequireLeader: a member cut off from the quorum ends the watch
	// instead of going silent.
	wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), s.key(prefix), clientv3.WithPrefix(), clientv3.WithRev(after+1))
	go func() {
		defer close(out)
		for wr := range wch {
			if err := wr.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					err = fmt.Errorf("%w: %v", store.ErrCompacted, err)
				} else {
					err = s.wrap(err)
				}
				select {
				case out <- store.WatchResponse{Err: err, Rev: wr.Header.Revision}:
				case <-ctx.Done():
				}
				return
			}
			if len(wr.Events) == 0 {
				continue
			}
			resp := store.WatchResponse{Rev: wr.Header.Revision, Events: make([]store.Event, len(wr.Events))}
			for i, ev := range wr.Events {
				resp.Events[i] = store.Event{KV: s.kv(ev.Kv), Delete: ev.Type == clientv3.EventTypeDelete}
			}
			select {
			case out <- resp:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// Close implements store.Store; it is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.cli.Close()
}
