// Package managertest runs a real clusterd manager in-process for tests: a
// bbolt store in a temporary directory, the sim driver at high speed, and a
// gRPC server on an in-memory bufconn listener.
//
//	conn, m := managertest.Start(t, managertest.Options{Hosts: 3})
//	vms := acliv1.NewVmServiceClient(conn)
package managertest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/acli-dev/acli/manager"
	"github.com/acli-dev/acli/manager/auth"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/limits"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/store/bolt"
)

// Options shape the test cluster.
type Options struct {
	// Hosts in the sim cluster (default 3). Ignored when Sim is set.
	Hosts int
	// Sim is a full sim configuration (optional).
	Sim *sim.Config
	// Speed of the sim (default 1000: a 1 s power-on takes 1 ms).
	Speed float64
	// SimOptions are the sim driver's knobs (e.g. BeforeRound).
	SimOptions sim.Options
	// Dir is the data directory (default a fresh t.TempDir()); reuse it to
	// restart a manager on the same state.
	Dir string
	// Sync makes the store fsync (off by default: tests need no durability
	// against power loss, and restarts within a process see the data).
	Sync bool
	// Logger defaults to a discarding logger.
	Logger *slog.Logger
	// Manager tweaks the manager configuration before New.
	Manager func(*manager.Config)
	// Driver replaces the sim (e.g. a libvirt driver); Harness.Driver is
	// then nil and the sim options are ignored.
	Driver driver.Driver
	// Store replaces the bbolt store of Dir (e.g. an etcd leader's view);
	// the manager closes it.
	Store store.Store
	// Limits overrides the stream caps the server enforces (as clusterd's).
	Limits limits.Config
	// Auth, when set, authenticates and authorizes every call as clusterd
	// does (e.g. auth.New(auth.Config{Anonymous: auth.Admin}), clusterd's
	// plaintext loopback default).
	Auth *auth.Authenticator
}

// Harness is a running in-process clusterd.
type Harness struct {
	Conn    *grpc.ClientConn
	Manager *manager.Manager
	Driver  *sim.Driver // nil when Options.Driver was given
	Dir     string

	srv     *grpc.Server
	lis     *bufconn.Listener
	stopped bool
}

// Start runs a manager and returns a client connection to it; both are
// closed when the test ends.
func Start(t testing.TB, opts Options) (*grpc.ClientConn, *manager.Manager) {
	h := New(t, opts)
	return h.Conn, h.Manager
}

// New runs a manager; Stop it to restart on the same Dir, or let the test
// cleanup stop it.
func New(t testing.TB, opts Options) *Harness {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	cfg := sim.ForHosts(opts.Hosts)
	if opts.Sim != nil {
		cfg = *opts.Sim
	} else if opts.Hosts == 0 {
		cfg.Hosts = 3
	}
	if opts.Speed == 0 {
		opts.Speed = 1000
	}
	cfg.Speed = opts.Speed
	var drv driver.Driver = opts.Driver
	var simDrv *sim.Driver
	if drv == nil {
		var err error
		if simDrv, err = sim.New(cfg, opts.SimOptions); err != nil {
			t.Fatalf("managertest: %v", err)
		}
		drv = simDrv
	}
	st := opts.Store
	if st == nil {
		var err error
		if st, err = bolt.Open(opts.Dir, bolt.Options{NoSync: !opts.Sync}); err != nil {
			t.Fatalf("managertest: %v", err)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	mcfg := manager.Config{Store: st, Driver: drv, Logger: log}
	if opts.Manager != nil {
		opts.Manager(&mcfg)
	}
	m, err := manager.New(mcfg)
	if err != nil {
		drv.Close()
		st.Close()
		t.Fatalf("managertest: %v", err)
	}
	lis := bufconn.Listen(1 << 20)
	sopts := limits.ServerOptions(opts.Limits)
	if opts.Auth != nil {
		sopts = append(sopts, grpc.ChainUnaryInterceptor(opts.Auth.UnaryInterceptor()),
			grpc.ChainStreamInterceptor(opts.Auth.StreamInterceptor()))
	}
	srv := grpc.NewServer(sopts...)
	m.Register(srv)
	go srv.Serve(lis)
	h := &Harness{Manager: m, Driver: simDrv, Dir: opts.Dir, srv: srv, lis: lis}
	if h.Conn, err = h.Dial(); err != nil {
		t.Fatalf("managertest: %v", err)
	}
	t.Cleanup(h.Stop)
	return h
}

// Dial opens another client connection to the manager (a second client);
// the caller closes it.
func (h *Harness) Dial() (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return h.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// Stop shuts the manager down as SIGTERM would: streams drain, the server
// stops, running tasks end, the store closes. It is idempotent.
func (h *Harness) Stop() {
	if h.stopped {
		return
	}
	h.stopped = true
	h.Manager.Drain()
	h.Conn.Close()
	h.srv.Stop()
	h.Manager.Close()
}
