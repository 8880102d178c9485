// Package readview answers a follower's reads from its own copy of the
// store: a read-only manager built from an etcd.Mirror (the leader package
// forwards everything else).
package readview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/store/etcd"
)

// Views serve a follower's reads from its own copy of the store (an
// etcd.Mirror): a read-only manager built from the copy once, then brought
// to each newer revision a read needs by applying the changes since its
// own (built again only when the copy no longer has them), served in
// process. A read first asks a quorum
// for the store's revision and waits until the copy holds it, so what a
// follower answers is never older than what was committed before the read
// began. Without a quorum the read is answered from the copy as it is,
// marked stale.
type Views struct {
	mi     *etcd.Mirror
	driver string
	log    *slog.Logger
	// Barrier bounds asking the quorum for the revision (then the answer is
	// stale); CatchUp bounds waiting for the copy (then the read is
	// forwarded to the leader).
	Barrier, CatchUp time.Duration

	mu       sync.Mutex
	cur      *view
	builds   int // views built from the whole copy
	building bool
	built    chan struct{} // closed when the build under way ends
	closed   bool
}

// NewViews serves reads from mi; driverName is what GetCluster reports
// (the leader's driver).
func NewViews(mi *etcd.Mirror, driverName string, log *slog.Logger) *Views {
	return &Views{mi: mi, driver: driverName, log: log, Barrier: 2 * time.Second, CatchUp: 2 * time.Second}
}

// view is one read-only manager, built from the copy at one revision and
// following it (rev: the revision it holds, under Views.mu).
type view struct {
	rev  int64
	m    *manager.Manager
	srv  *grpc.Server
	conn *grpc.ClientConn

	mu    sync.Mutex
	refs  int
	stale bool // replaced: closed when the last read ends
}

func (v *view) acquire() { v.mu.Lock(); v.refs++; v.mu.Unlock() }

func (v *view) release() {
	v.mu.Lock()
	v.refs--
	done := v.stale && v.refs == 0
	v.mu.Unlock()
	if done {
		v.close()
	}
}

func (v *view) retire() {
	v.mu.Lock()
	v.stale = true
	done := v.refs == 0
	v.mu.Unlock()
	if done {
		v.close()
	}
}

func (v *view) close() {
	v.conn.Close()
	v.srv.Stop()
	v.m.Close()
}

// Served reports whether a follower answers method itself: reads of the
// model. Tasks and events (which a client follows right after starting a
// task), the management plane, tokens and audit go to the leader.
func Served(method string) bool {
	svc, name, ok := strings.Cut(strings.TrimPrefix(method, "/acli.v1."), "/")
	if !ok || !(strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "List")) {
		return false
	}
	switch svc {
	case "ClusterService":
		return name == "GetCluster"
	case "HostService", "VmService", "NetworkService", "VolumeGroupService", "ImageService", "SnapshotService":
		return true
	}
	return false
}

// Route is a Forwarder's Local: the view that answers method, once it
// holds every change committed before the call.
func (vs *Views) Route(ctx context.Context, method string) (*grpc.ClientConn, func(), string, bool) {
	if !Served(method) {
		return nil, nil, "", false
	}
	st := vs.mi.State()
	if !st.Loaded {
		return nil, nil, "", false
	}
	var need int64
	stale := ""
	if st.Stale != nil {
		stale = staleText(st)
	} else {
		bctx, cancel := context.WithTimeout(ctx, vs.Barrier)
		rev, err := vs.mi.Barrier(bctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil, nil, "", false
		case err != nil:
			st = vs.mi.State()
			if st.Stale == nil {
				st.Stale = err
			}
			stale = staleText(st)
		default:
			need = rev
		}
	}
	v, err := vs.await(ctx, need, stale != "")
	if err != nil {
		vs.log.Debug("read forwarded: no view", "method", method, "err", err)
		return nil, nil, "", false
	}
	return v.conn, v.release, stale, true
}

// staleText is the warning of a read answered without a quorum.
func staleText(st etcd.MirrorState) string {
	return fmt.Sprintf("answered from this manager's copy of the store (revision %d), which may be stale: %v", st.Applied, st.Stale)
}

// await returns a view (acquired) that holds revision need and every model
// change the copy holds by then; a stale read takes the copy as it is.
func (vs *Views) await(ctx context.Context, need int64, stale bool) (*view, error) {
	deadline := time.NewTimer(vs.CatchUp)
	defer deadline.Stop()
	for {
		st := vs.mi.State()
		wait := st.Notify
		if st.Applied >= need || stale {
			vs.mu.Lock()
			if vs.closed {
				vs.mu.Unlock()
				return nil, errors.New("closed")
			}
			if v := vs.cur; v != nil && (v.rev >= st.Changed || vs.advanceLocked(v)) {
				v.acquire()
				vs.mu.Unlock()
				return v, nil
			}
			wait = vs.kickLocked()
			vs.mu.Unlock()
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, fmt.Errorf("the copy did not reach revision %d in %s", need, vs.CatchUp)
		}
	}
}

// advanceLocked brings v to the copy's revision by applying the changes
// since its own; false when the copy no longer has them all (or they do not
// apply): then a build replaces it.
func (vs *Views) advanceLocked(v *view) bool {
	if vs.building {
		return false
	}
	evs, applied, ok := vs.mi.Since(v.rev)
	if !ok {
		return false
	}
	if err := v.m.Follow(evs); err != nil {
		vs.log.Warn("following the copy in the read view", "err", err)
		return false
	}
	v.rev = applied
	return true
}

// kickLocked starts a build unless one is under way and returns the channel
// closed when it ends.
func (vs *Views) kickLocked() <-chan struct{} {
	if !vs.building {
		vs.building = true
		vs.built = make(chan struct{})
		go vs.build()
	}
	return vs.built
}

func (vs *Views) build() {
	v, err := vs.newView()
	vs.mu.Lock()
	old := vs.cur
	if err == nil {
		vs.builds++
		if vs.closed {
			vs.mu.Unlock()
			v.close()
			vs.mu.Lock()
		} else {
			vs.cur = v
		}
	}
	vs.building = false
	close(vs.built)
	vs.mu.Unlock()
	if err != nil {
		vs.log.Warn("building the follower's read view", "err", err)
		return
	}
	if old != nil {
		old.retire()
	}
}

func (vs *Views) newView() (*view, error) {
	snap, rev := vs.mi.Snapshot()
	m, err := manager.New(manager.Config{Store: snap, Driver: viewDriver(vs.driver), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ReadOnly: true})
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer()
	m.Register(srv)
	lis := bufconn.Listen(1 << 20)
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///view",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		srv.Stop()
		m.Close()
		return nil, err
	}
	return &view{rev: rev, m: m, srv: srv, conn: conn}, nil
}

// Builds is how many times a view was built from the whole copy (the
// first time, and when the copy no longer had the changes since a view's
// revision).
func (vs *Views) Builds() int {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	return vs.builds
}

// Close ends the views once their reads end.
func (vs *Views) Close() {
	vs.mu.Lock()
	vs.closed = true
	v := vs.cur
	vs.cur = nil
	vs.mu.Unlock()
	if v != nil {
		v.retire()
	}
}

// viewDriver is a view's driver: it names the leader's and does nothing
// (a view never acts on hosts).
type viewDriver string

var errView = errors.New("a follower's read view does not act on hosts")

func (d viewDriver) Name() string              { return string(d) }
func (viewDriver) Inventory() driver.Inventory { return driver.Inventory{} }
func (viewDriver) Start(context.Context, []*acliv1.Host, []*acliv1.Vm) (<-chan driver.HostEvent, error) {
	return nil, errView
}
func (viewDriver) PowerOn(context.Context, *acliv1.Host, *acliv1.Vm) error  { return errView }
func (viewDriver) PowerOff(context.Context, *acliv1.Host, *acliv1.Vm) error { return errView }
func (viewDriver) Shutdown(context.Context, *acliv1.Host, *acliv1.Vm) error { return errView }
func (viewDriver) Reboot(context.Context, *acliv1.Host, *acliv1.Vm) error   { return errView }
func (viewDriver) Reset(context.Context, *acliv1.Host, *acliv1.Vm) error    { return errView }
func (viewDriver) Undefine(context.Context, *acliv1.Host, *acliv1.Vm) error { return errView }
func (viewDriver) Migrate(context.Context, *acliv1.Vm, *acliv1.Host, *acliv1.Host, driver.MigrateOptions, func(*acliv1.MigrationProgress)) error {
	return errView
}
func (viewDriver) Close() error { return nil }
