package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/acli-dev/acli/manager/store"
)

// ErrNoLeader is returned by Leader when no manager holds the leadership.
var ErrNoLeader = errors.New("no manager is the leader")

// Elector is one manager's candidacy, bound to one etcd lease. Once the
// lease is lost (Done closes) the Elector is spent: a manager that wants to
// lead again creates a new one.
type Elector struct {
	s    *Store
	sess *concurrency.Session
	el   *concurrency.Election

	mu      sync.Mutex
	leading *fence
}

// NewElector grants a lease of the given TTL (rounded up to whole seconds,
// at least 1) and keeps it alive in the background.
func (s *Store) NewElector(ctx context.Context, ttl time.Duration) (*Elector, error) {
	secs := int((ttl + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	var lease clientv3.LeaseID
	err := s.call(ctx, func(ctx context.Context) error {
		resp, err := s.cli.Grant(ctx, int64(secs))
		if err == nil {
			lease = resp.ID
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// Kept alive under the client's context, not the caller's.
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(lease), concurrency.WithTTL(secs))
	if err != nil {
		return nil, s.wrap(err)
	}
	return &Elector{s: s, sess: sess, el: concurrency.NewElection(sess, s.ns+"/election/")}, nil
}

// Campaign blocks until this manager leads (or ctx ends, or the lease is
// lost) and announces value (its address) to the others.
func (e *Elector) Campaign(ctx context.Context, value string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(e.sess.Ctx(), cancel)
	defer stop()
	// When ctx ends, concurrency's Campaign resigns under the client's own
	// context, which waits as long as etcd is unreachable: do not wait for
	// it (it ends when the client closes).
	done := make(chan error, 1)
	go func() { done <- e.el.Campaign(ctx, value) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		if e.sess.Ctx().Err() == nil {
			return ctx.Err()
		}
		err = ctx.Err()
	}
	if err != nil {
		if e.sess.Ctx().Err() != nil {
			return fmt.Errorf("%w: lease lost while campaigning", store.ErrNotLeader)
		}
		return e.s.wrap(err)
	}
	e.mu.Lock()
	e.leading = &fence{key: e.el.Key(), rev: e.el.Rev()}
	e.mu.Unlock()
	return nil
}

// Leading reports whether this manager won the election and has not
// resigned or lost its lease. Writes check leadership in etcd itself; this
// is the cheap local view for deciding what to run.
func (e *Elector) Leading() bool {
	select {
	case <-e.sess.Done():
		return false
	default:
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading != nil
}

// Done is closed when the lease is lost (expired, revoked, or the client
// closed): from then on this manager is not the leader.
func (e *Elector) Done() <-chan struct{} { return e.sess.Done() }

// Lease is the etcd lease ID of this candidacy.
func (e *Elector) Lease() clientv3.LeaseID { return e.sess.Lease() }

// Leader returns the value the current leader announced, or ErrNoLeader.
func (e *Elector) Leader(ctx context.Context) (string, error) {
	return e.s.Leader(ctx)
}

// Leader returns the value the current leader announced, or ErrNoLeader.
// Followers use it without campaigning.
func (s *Store) Leader(ctx context.Context) (string, error) {
	var out string
	err := s.call(ctx, func(ctx context.Context) error {
		resp, err := s.cli.Get(ctx, s.ns+"/election/", clientv3.WithFirstCreate()...)
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return ErrNoLeader
		}
		out = string(resp.Kvs[0].Value)
		return nil
	})
	return out, err
}

// Resign gives up the leadership (a graceful stop: the next candidate leads
// at once instead of after the lease TTL) and revokes the lease.
func (e *Elector) Resign(ctx context.Context) error {
	e.mu.Lock()
	e.leading = nil
	e.mu.Unlock()
	return e.Close()
}

// Close revokes the lease: any leadership ends now. A lease already gone
// (expired) is not an error.
func (e *Elector) Close() error {
	e.mu.Lock()
	e.leading = nil
	e.mu.Unlock()
	if err := e.sess.Close(); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return e.s.wrap(err)
	}
	return nil
}

// Store returns the view of the store this candidacy writes through: reads
// pass through; every write transaction also requires, in etcd, that this
// candidacy still holds the leadership, so a deposed or paused leader can
// change nothing once its lease is gone (store.ErrNotLeader). Closing the
// view revokes the lease (a manager that stops hands over at once); the
// store itself stays open for the next candidacy.
func (e *Elector) Store() store.Store { return &fenced{Store: e.s, e: e} }

type fenced struct {
	*Store
	e *Elector
}

func (f *fenced) Txn(ctx context.Context, conds []store.Cond, ops []store.Op) (int64, error) {
	f.e.mu.Lock()
	lead := f.e.leading
	f.e.mu.Unlock()
	if lead == nil {
		return 0, fmt.Errorf("%w: the write was refused", store.ErrNotLeader)
	}
	return f.Store.txn(ctx, lead, conds, ops)
}

func (f *fenced) Close() error { return f.e.Close() }
