// Command clusterd is the acli cluster manager: it serves the acli gRPC API
// over a cluster of hosts (simulated by default) with its state in one data
// directory.
//
//	clusterd --listen 127.0.0.1:2030 --data-dir DIR [--sim N | --sim-config FILE] [--sim-speed X]
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	flag "github.com/spf13/pflag"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/audit"
	"github.com/acli-dev/acli/manager/auth"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/driver/sim/simssh"
	"github.com/acli-dev/acli/manager/leader/readview"
	"github.com/acli-dev/acli/manager/limits"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/store/bolt"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type options struct {
	listen    string
	dataDir   string
	driver    string
	simHosts  int
	simConfig string
	simSpeed  float64
	simSSH    int
	// maxMigrations and heartbeatMisses tune maintenance and HA.
	maxMigrations   int
	heartbeatMisses int
	logLevel        string
	version         bool
}

// drainTimeout bounds how long in-flight RPCs may take to finish at stop.
const drainTimeout = 10 * time.Second

// lostGrace bounds how long requests in flight when the leadership is lost
// may take to get the store's answer (its operation timeout is 5s).
const lostGrace = 6 * time.Second

// run is clusterd; it returns the exit code (0 ok, 1 failure, 2 usage).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "init" {
		return runInit(args[1:], stdout, stderr)
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "clusterd: "+format+"\n", a...)
		return code
	}
	fs := flag.NewFlagSet("clusterd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o options
	fs.StringVar(&o.listen, "listen", "127.0.0.1:2030", "gRPC listen address (loopback unless told otherwise)")
	fs.StringVar(&o.dataDir, "data-dir", "", "data directory holding state.db (required)")
	fs.StringVar(&o.driver, "driver", "sim", "host driver: sim (simulated hosts) or libvirt (real libvirtd hosts joined with host.add)")
	lv := addLibvirtFlags(fs)
	isc := addIscsiFlags(fs)
	sto := addStoreFlags(fs)
	sec := addSecurityFlags(fs)
	fs.IntVar(&o.simHosts, "sim", 0, "create a simulated RF2 cluster of N hosts on a new data dir (default 3)")
	fs.StringVar(&o.simConfig, "sim-config", "", "YAML file describing the simulated cluster")
	fs.Float64Var(&o.simSpeed, "sim-speed", 1, "simulated time scale: 1 = real time, 1000 = a 1 s operation takes 1 ms")
	fs.IntVar(&o.simSSH, "sim-ssh-port", simssh.DefaultPort, "SSH port of every simulated host and CVM, each on its own loopback address (a free port where taken; 0: no SSH)")
	fs.IntVar(&o.maxMigrations, "max-migrations-per-host", manager.DefaultMaxMigrationsPerHost, "concurrent live migrations a host takes part in")
	fs.IntVar(&o.heartbeatMisses, "heartbeat-misses", manager.DefaultHeartbeatMisses, "missed heartbeats before a host is marked down and HA restarts its VMs")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	if err := fs.Parse(doubleDash(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "usage: clusterd --listen 127.0.0.1:2030 --data-dir DIR [--sim N | --sim-config FILE] [--sim-speed X] [--tls-cert F --tls-key F [--client-ca F]]")
			fmt.Fprintln(stdout, "       clusterd init --data-dir DIR [--listen ADDR]   (CA, server certificate, admin credential, acli context)")
			fs.PrintDefaults()
			return 0
		}
		return fail(2, "%s", flagError(fs, err))
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %q; clusterd takes only flags (see --help)", fs.Arg(0))
	}
	if o.version {
		fmt.Fprintf(stdout, "clusterd %s\n", manager.Version)
		return 0
	}
	switch {
	case o.dataDir == "":
		return fail(2, "--data-dir is required, e.g. --data-dir /var/lib/clusterd")
	case o.driver != "sim" && o.driver != "libvirt":
		return fail(2, "--driver %q is not available; use --driver sim or --driver libvirt", o.driver)
	case o.simHosts != 0 && o.simConfig != "":
		return fail(2, "give --sim N or --sim-config FILE, not both")
	case o.simHosts < 0:
		return fail(2, "--sim %d: a cluster needs at least 1 host", o.simHosts)
	case o.simSpeed <= 0:
		return fail(2, "--sim-speed %v must be positive, e.g. 1 or 1000", o.simSpeed)
	case o.simSSH < 0 || o.simSSH > 65535:
		return fail(2, "--sim-ssh-port %d is not a port; use 1-65535 (e.g. 2222), or 0 for no SSH", o.simSSH)
	case o.maxMigrations < 1:
		return fail(2, "--max-migrations-per-host %d must be at least 1, e.g. 2", o.maxMigrations)
	case o.heartbeatMisses < 1:
		return fail(2, "--heartbeat-misses %d must be at least 1, e.g. 5", o.heartbeatMisses)
	}
	if err := isc.check(); err != nil {
		return fail(2, "%v", err)
	}
	ecfg, err := sto.etcdConfig()
	if err != nil {
		return fail(2, "%v", err)
	}
	serv, err := sec.resolve(o.dataDir)
	if err != nil {
		return fail(2, "%v", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fail(2, "--log-level %q is not a level; use debug, info, warn or error", o.logLevel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if o.driver == "libvirt" {
		if err := lv.check(); err != nil {
			return fail(2, "%v", err)
		}
		if o.simHosts != 0 || o.simConfig != "" {
			return fail(2, "--sim and --sim-config apply to --driver sim; libvirt hosts join with acli host.add")
		}
	}
	simCfg := sim.ForHosts(3)
	if o.driver == "sim" {
		if o.simHosts > 0 {
			simCfg = sim.ForHosts(o.simHosts)
		}
		if o.simConfig != "" {
			var err error
			if simCfg, err = sim.LoadConfig(o.simConfig); err != nil {
				return fail(2, "%v", err)
			}
		}
		simCfg.Speed = o.simSpeed
		// Check the configuration before anything starts.
		if _, err := sim.New(simCfg, sim.Options{}); err != nil {
			return fail(2, "%v", err)
		}
	}
	// newDriver gives each manager term its own driver: under etcd a
	// manager that becomes leader again starts afresh from the store.
	newDriver := func() (driver.Driver, *sim.Driver, error) {
		if o.driver == "libvirt" {
			return newLibvirtDriver(lv, o.dataDir, log), nil, nil
		}
		d, err := sim.New(simCfg, sim.Options{})
		return d, d, err
	}

	if err := sec.checkListen(serv, o.listen); err != nil {
		return fail(2, "%v", err)
	}
	// Take the port before touching the data dir, so a second clusterd on a
	// busy port fails without side effects.
	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fail(1, "cannot listen on %s: %v", o.listen, unwrapOpError(err))
	}
	if host, _, _ := net.SplitHostPort(lis.Addr().String()); serv.tls == nil && !net.ParseIP(host).IsLoopback() {
		log.Warn("INSECURE: listening beyond loopback without TLS (--insecure-listen)", "addr", lis.Addr().String(), "anonymous_role", serv.anonymous.String())
	}
	auditDir := sec.auditDir
	if auditDir == "" {
		auditDir = filepath.Join(o.dataDir, "audit")
	}
	auditLog, err := audit.Open(auditDir, audit.Options{MaxSize: sec.auditMaxSize})
	if err != nil {
		lis.Close()
		return fail(1, "%v", err)
	}
	defer auditLog.Close()
	sv := &server{o: o, log: log, stdout: stdout, stderr: stderr, newDriver: newDriver, iscsi: isc.config(), sec: serv, audit: auditLog}
	if ecfg != nil {
		return sv.runShared(ctx, lis, *ecfg, sto)
	}
	st, err := bolt.Open(o.dataDir, bolt.Options{})
	if err != nil {
		lis.Close()
		return fail(1, "%v", err)
	}
	addr := lis.Addr().String()
	sv.status = func(context.Context) (*acliv1.ClusterStatus, error) {
		return &acliv1.ClusterStatus{Store: "bolt", StoreLocation: st.Path(), Leader: addr,
			Managers:     []*acliv1.ManagerStatus{{Address: addr, Leader: true}},
			StoreMembers: []*acliv1.StoreMember{{Name: bolt.FileName, Endpoint: st.Path(), Healthy: true}},
		}, nil
	}
	return sv.serve(ctx, lis, st, nil)
}

// server runs one manager term: a manager over the store, served on a
// listener, until ctx ends or the leadership is lost.
type server struct {
	o         options
	log       *slog.Logger
	stdout    io.Writer
	stderr    io.Writer
	newDriver func() (driver.Driver, *sim.Driver, error)
	iscsi     manager.IscsiConfig
	// status answers cluster.status while this manager leads.
	status func(ctx context.Context) (*acliv1.ClusterStatus, error)
	sec    *serving
	audit  *audit.Log
	// views answer a follower's reads (etcd only).
	views *readview.Views
}

// serve runs the manager on lis until ctx ends (exit code 0) or lost
// closes (the leadership lease is gone: the manager stops at once, its
// writes already refused by the store).
func (sv *server) serve(ctx context.Context, lis net.Listener, st store.Store, lost <-chan struct{}) int {
	o, log, stdout := sv.o, sv.log, sv.stdout
	drv, simDrv, err := sv.newDriver()
	if err != nil {
		lis.Close()
		st.Close()
		fmt.Fprintf(sv.stderr, "clusterd: %v\n", err)
		return 1
	}
	tokens := auth.NewTokens(st, nil)
	serv := sv.sec
	authn := auth.New(auth.Config{ClientCAs: serv.clientCAs, Tokens: tokens, Anonymous: serv.anonymous, Audit: sv.audit, Logger: log})
	m, err := manager.New(manager.Config{Store: st, Driver: drv, Logger: log,
		MaxMigrationsPerHost: o.maxMigrations, HeartbeatMisses: o.heartbeatMisses,
		Iscsi: sv.iscsi, Status: sv.status})
	if err != nil {
		lis.Close()
		drv.Close()
		st.Close()
		fmt.Fprintf(sv.stderr, "clusterd: %v\n", err)
		return 1
	}
	if o.simHosts > 0 && m.NumHosts() != o.simHosts {
		log.Warn("the store already holds a cluster; --sim ignored", "stored_hosts", m.NumHosts(), "sim", o.simHosts)
	}

	var sshc *simssh.Cluster
	// Callers are identified and authorized first: the field caps and
	// stream limits then apply to authenticated requests.
	sopts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(authn.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(authn.StreamInterceptor()),
	}
	sopts = append(sopts, limits.ServerOptions(limits.Config{Principal: auth.UserFromContext})...)
	if serv.tls != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(serv.tls)))
	}
	if serv.anonymous != auth.None {
		log.Warn("callers without credentials are accepted", "anonymous_role", serv.anonymous.String())
	}
	if o.simSSH != 0 && simDrv != nil {
		if sshc, err = startSimSSH(o, simDrv, log); err != nil {
			log.Warn("simulated SSH disabled", "err", err)
		} else {
			sopts = append(sopts, grpc.ChainUnaryInterceptor(sshc.UnaryInterceptor()))
		}
	}
	srv := grpc.NewServer(sopts...)
	m.Register(srv)
	(&auth.Service{Tokens: tokens}).Register(srv)
	(&audit.Service{Log: sv.audit}).Register(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	sctx, stopSSH := context.WithCancel(ctx)
	defer stopSSH()
	if sshc != nil {
		defer sshc.Close()
		if err := attachSimSSH(sctx, sshc, lis.Addr(), selfCreds(serv, authn)...); err != nil {
			log.Warn("simulated SSH", "err", err)
		}
		log.Info("simulated SSH", "port", o.simSSH, "identity", sshc.ClientKeyPath())
	}
	log.Info("clusterd started", "version", manager.Version, "listen", lis.Addr().String(), "data_dir", o.dataDir, "driver", m.DriverName(), "hosts", m.NumHosts())
	fmt.Fprintf(stdout, "clusterd: serving on %s (%s, %d hosts)\n", lis.Addr(), m.DriverName(), m.NumHosts())
	if sshc != nil {
		if id, err := filepath.Abs(sshc.ClientKeyPath()); err == nil {
			fmt.Fprintf(stdout, "clusterd: simulated hosts and CVMs serve SSH; for hostssh/allssh: export ACLI_SSH_IDENTITY=%s\n", id)
		}
	}

	code := 0
	select {
	case <-ctx.Done():
		log.Info("stopping: draining in-flight requests")
	case err := <-served:
		log.Error("server stopped", "err", err)
		code = 1
	case <-lost:
		// Another manager may lead already: take no new requests, stop the
		// tasks and drivers now; requests already in the store end with
		// its answer (their writes are refused by the fence).
		log.Error("leadership lost (lease expired or revoked); stopping the manager")
		m.Drain()
		closed := make(chan error, 1)
		go func() { closed <- m.Close() }()
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(lostGrace):
			srv.Stop()
		}
		if err := <-closed; err != nil {
			log.Warn("closing after losing the leadership", "err", err)
		}
		return 0
	}
	m.Drain()
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(drainTimeout):
		log.Warn("requests still running after the drain timeout; stopping them", "timeout", drainTimeout)
		srv.Stop()
	}
	if err := m.Close(); err != nil {
		log.Error("closing", "err", err)
		code = 1
	}
	log.Info("clusterd stopped")
	return code
}

// flagError turns the flag package's error into one line with the nearest
// valid flag.
func flagError(fs *flag.FlagSet, err error) string {
	var ne *flag.NotExistError
	if errors.As(err, &ne) {
		name := ne.GetSpecifiedName()
		if name == "" {
			name = ne.GetSpecifiedShortnames()
		}
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		if s := apierr.Nearest(name, names); s != "" {
			return fmt.Sprintf("unknown flag --%s (did you mean --%s?)", name, s)
		}
		return fmt.Sprintf("unknown flag --%s (see --help)", name)
	}
	return err.Error()
}

// doubleDash rewrites the single-dash spellings of Go's flag package
// (-listen, -data-dir=DIR) that earlier clusterd releases took into
// --listen, --data-dir=DIR, so old scripts keep working.
func doubleDash(fs *flag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 && fs.Lookup(name) != nil {
			a = "-" + a
		}
		out = append(out, a)
	}
	return out
}

// unwrapOpError drops the "listen tcp ADDR:" prefix the message already says.
func unwrapOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// startSimSSH prepares SSH for the simulated machines (keys in the data
// dir); they answer once attachSimSSH has run.
func startSimSSH(o options, drv *sim.Driver, log *slog.Logger) (*simssh.Cluster, error) {
	return simssh.NewCluster(simssh.ClusterOptions{
		DataDir: o.dataDir,
		Port:    o.simSSH,
		Logger:  log,
		State: func(hostUUID string) (bool, bool) {
			up, cvmUp, _ := drv.HostState(hostUUID)
			return up, cvmUp
		},
	})
}

// attachSimSSH points the SSH machines at clusterd's own API (hosts to
// serve, VMs for virsh list) and starts serving them.
func attachSimSSH(ctx context.Context, c *simssh.Cluster, addr net.Addr, creds ...grpc.DialOption) error {
	conn, err := grpc.NewClient("passthrough:///"+simssh.SelfAddr(addr), creds...)
	if err != nil {
		return err
	}
	// The connection lives as long as the process: every SSH session asks
	// the model for its host's VMs.
	context.AfterFunc(ctx, func() { conn.Close() })
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.Start(sctx, conn)
}

// selfCreds are the dial options of clusterd's own client: its internal
// token, and over TLS a pin on its own certificate (the listen address need
// not be a name the certificate holds).
func selfCreds(s *serving, a *auth.Authenticator) []grpc.DialOption {
	opts := []grpc.DialOption{grpc.WithPerRPCCredentials(a.InternalCredentials())}
	if s.tls == nil {
		return append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	own := s.cert.Raw
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], own) {
				return errors.New("not this clusterd's certificate")
			}
			return nil
		}}
	return append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
}
