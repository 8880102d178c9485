// Package manager is clusterd: the cluster model, the task engine, the event
// bus and the features behind the acli API (served by manager/rpc).
//
// Structure:
//
//   - Commits (manager/state): every record write goes through
//     state.DB.Update (only the event log and task pruning write the store
//     directly), which serialises commits, checks the rules on the state each would
//     leave (one known host per running VM, placement, memory with arrivals
//     counted, the RF budget, names, capacity, addresses, devices, the HA
//     reservation) and refuses the commit with typed violations. The DB is
//     the one copy of committed state and keeps its lookups (by name, IP,
//     MAC, listing order); features read it through DB.View.
//   - The busy table (which task holds which entity) is state.DB's holds:
//     taken by a task's start commit, if the records its request read are
//     unchanged, and let go once its end is durable. Manager.mu guards only
//     what no package owns (its comment lists it).
//   - Requests (manager/rpc): one thin adapter per gRPC service checks
//     the request, calls the service's feature (a feature package, or
//     this package's adapters for what the root still holds) through a
//     narrow interface and maps its error to a status.
//   - Tasks (tasks.go, manager/tasks): every mutation is a task. A feature
//     checks the request and reserves under the lock, then the task's start
//     commit takes its entities (a conflicting operation is refused there
//     as busy), the work runs outside the lock and the entity changes and
//     the task's final state are committed in one store transaction,
//     comparing each entity's revision. Quick tasks (create, update, disks,
//     NICs, networks) start with a commit of their holds only; tasks that
//     drive hosts (power, delete) are persisted when they start, so a
//     restart finds them and ends them kFailed.
//   - Events (manager/events): every finished task and host change is
//     published; the log is persisted in the background.
//   - Drivers (manager/driver): the manager decides, the driver carries out
//     on hosts and reports host health and what hosts run, applied by
//     manager/hostsync (wired in hostevents.go).
//   - Placement (manager/scheduler): a replaceable function chooses the
//     host a VM powers on on.
//   - Features, each behind a narrow interface this package implements:
//     manager/vm, network, vmgroup, storage, image, maintenance, migrate,
//     ha and hostsync (docs/architecture.md lists what each holds).
//
// Store layout: /cluster, /hosts/<uuid>, /vms/<uuid>, /networks/<uuid>, ...,
// /tasks/<uuid>, /events/<slot> — each a binary protobuf message.
package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/events"
	"github.com/acli-dev/acli/manager/ha"
	"github.com/acli-dev/acli/manager/hostsync"
	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/network"
	"github.com/acli-dev/acli/manager/rpc"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/tasks"
	"github.com/acli-dev/acli/manager/vm"
	"github.com/acli-dev/acli/manager/vmgroup"
)

// Version is the clusterd version, set at build time with
// -ldflags "-X github.com/acli-dev/acli/manager.Version=v1.2.3".
var Version = "0.1.0-dev"

// Config assembles a Manager.
type Config struct {
	// Store persists the model; the Manager closes it on Close.
	Store store.Store
	// Driver carries out operations on hosts; the Manager closes it on Close.
	Driver driver.Driver
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Placement chooses the host for a power-on (default scheduler.MostFreeMemory).
	Placement scheduler.PlaceFunc
	// TaskRetention is how many finished tasks are kept (default 10,000).
	TaskRetention int
	// EventRetention is how many events are kept (default 10,000).
	EventRetention int
	// MaxMigrationsPerHost bounds the live migrations a host takes part in
	// at once, as source or target (default 2).
	MaxMigrationsPerHost int
	// HeartbeatMisses is how many heartbeat intervals a host may stay
	// silent before it is marked down and HA restarts its VMs (default 5).
	HeartbeatMisses int
	// HeartbeatTimeout, when set, replaces HeartbeatMisses × the driver's
	// heartbeat interval.
	HeartbeatTimeout time.Duration
	// Iscsi tunes iSCSI session failover and failback (manager/storage).
	Iscsi IscsiConfig
	// Status reports the management plane for cluster.status: the managers,
	// the leader and the store's members (clusterd knows them; the manager
	// does not).
	Status func(ctx context.Context) (*acliv1.ClusterStatus, error)
	// ReadOnly makes a view that only serves reads (a follower's, from its
	// copy of a shared store): the model is loaded; nothing is started,
	// recovered or written, and the driver is not used.
	ReadOnly bool
}

// HistoryKeys are the store key prefixes of history (tasks, the event log)
// rather than of the model: a read view leaves them out.
var HistoryKeys = []string{taskPrefix, events.Prefix, events.SeqKey}

// Manager is the cluster manager. Create it with New, serve it with
// Register, stop it with Drain (optional) and Close.
type Manager struct {
	st     store.Store
	drv    driver.Driver
	log    *slog.Logger
	place  scheduler.PlaceFunc
	bus    *events.Bus
	health *health.Server

	taskRetention int
	status        func(ctx context.Context) (*acliv1.ClusterStatus, error)

	ctx      context.Context // cancelled by Close: running tasks stop
	cancel   context.CancelFunc
	draining chan struct{}
	drainMu  sync.Once
	bgWG     sync.WaitGroup // host event consumer, event flusher
	flushNow chan chan struct{}

	// beats is the heartbeat table, read and written without the model
	// lock (manager/ha); ha is the HA controller (ha.go).
	beats      ha.Beats
	ha         *ha.Controller
	haSettings *ha.Settings
	// db is the committed state and the one path that changes it.
	db *state.DB
	// tasks is the task engine (tasks.go).
	tasks *tasks.Engine

	readOnly bool

	// mu guards what no package owns yet: the order in which committed
	// host changes reach the heartbeat table (hostCommitted), and closing.
	// It also serializes planners (power-on placement, HA, maintenance,
	// vm.migrate): each reads a scheduler snapshot and holds memory from
	// it (state.DB.Hold checks no capacity), so two plans never count the
	// same free memory.
	// The task table is manager/tasks' Engine's, when each VM last settled
	// hostsync.Settled's, the moves under way (slots, targets, arrivals)
	// manager/migrate's (ops.moves), each under its own lock; committed
	// records, holds, read holds and memory reservations are state.DB's:
	// reading them needs no mu.
	mu      sync.RWMutex
	closing bool
	model
	ops    opsState // maintenance, migration, HA and VM groups (ops.go)
	vms    *vm.Service
	net    *network.Service
	groups *vmgroup.Service
	maint  *maintenance.Service
	vgs    *storage.Sessions // volume groups and iSCSI sessions (vg.go)
	stor   storageState      // vDisk copies (vdisk.go)
	// hostEv applies the driver's host reports (hostevents.go).
	hostEv *hostsync.Events
}

// New loads the model from the store (creating the cluster from the
// driver's inventory on an empty store), ends tasks left running by a
// previous run, and starts the driver.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil || cfg.Driver == nil {
		return nil, errors.New("manager: Config.Store and Config.Driver are required")
	}
	m := &Manager{
		st:            cfg.Store,
		db:            state.NewDB(cfg.Store),
		drv:           cfg.Driver,
		log:           cfg.Logger,
		place:         cfg.Placement,
		taskRetention: cfg.TaskRetention,
		status:        cfg.Status,
		draining:      make(chan struct{}),
		flushNow:      make(chan chan struct{}),
		health:        health.NewServer(),
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.place == nil {
		m.place = scheduler.MostFreeMemory
	}
	if m.taskRetention <= 0 {
		m.taskRetention = 10000
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.tasks = tasks.NewEngine(tasks.Config{DB: m.db, Store: m.st, Owner: taskOwner{m}, Log: m.log, Retention: m.taskRetention, Ctx: m.ctx})
	m.model.init(m.db)
	m.haSettings = &ha.Settings{DB: m.db, Tasks: m.tasks}
	m.initOps(cfg)
	m.initVgs(cfg.Iscsi)
	m.initStorage()
	m.net = &network.Service{DB: m.db, Tasks: m.tasks, Hosts: m.drv}
	if nu, ok := m.drv.(driver.NetworkUser); ok {
		nu.UseNetworks(m.net.NicNetwork)
	}
	m.groups = &vmgroup.Service{DB: m.db, Tasks: m.tasks}
	m.vms = vm.New(vmCluster{m}, m.tasks, m.db, m.drv, m.stor.containers)
	m.maint = m.maintenanceService()
	m.db.SetCapacity(m.stor.containers.Capacity)

	ctx := context.Background()
	if err := m.load(ctx); err != nil {
		return nil, err
	}
	var c *acliv1.Cluster
	m.db.View(func(tx *state.Tx) { c = tx.Cluster() })
	if c == nil && cfg.ReadOnly {
		return nil, errors.New("the store holds no cluster yet")
	}
	if c == nil {
		// Only an empty store makes a new cluster: one that holds data but
		// lost its cluster record is damaged, not new.
		if rev, err := m.st.Revision(ctx); err != nil || rev > 0 {
			where := "the store"
			if p, ok := m.st.(interface{ Path() string }); ok {
				where = "data file " + p.Path()
			}
			return nil, fmt.Errorf("%s holds data (revision %d) but no cluster record; refusing to create a new cluster over it (%v)", where, rev, err)
		}
		if err := m.bootstrap(ctx); err != nil {
			return nil, err
		}
	}
	if !cfg.ReadOnly {
		if err := m.recoverTasks(ctx); err != nil {
			return nil, err
		}
	}
	var err error
	if m.bus, err = events.Load(ctx, m.st, cfg.EventRetention, m.log); err != nil {
		return nil, err
	}
	if cfg.ReadOnly {
		m.readOnly = true
		m.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		return m, nil
	}

	var hosts []*acliv1.Host
	m.db.View(func(tx *state.Tx) { hosts = tx.Hosts() })
	var vms []*acliv1.Vm
	m.db.View(func(tx *state.Tx) { vms = tx.Vms() })
	hostEvents, err := m.drv.Start(m.ctx, hosts, vms)
	if err != nil {
		return nil, fmt.Errorf("starting the %s driver: %w", m.drv.Name(), err)
	}
	if err := m.net.Rewire(m.ctx); err != nil {
		m.log.Warn("hosts keep their bridges", "err", err)
	}
	m.bgWG.Add(2)
	go func() { defer m.bgWG.Done(); m.hostEv.Consume(hostEvents) }()
	go func() { defer m.bgWG.Done(); m.bus.Persist(m.st, m.log, m.flushNow) }()
	m.startOps()
	m.startVgs()
	m.maint.ResumeInterrupted(m.ctx)
	m.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	return m, nil
}

// bootstrap writes a new cluster from the driver's inventory.
func (m *Manager) bootstrap(ctx context.Context) error {
	inv := m.drv.Inventory()
	if inv.Cluster == nil {
		return fmt.Errorf("the %s driver proposed no cluster", m.drv.Name())
	}
	ws := []write{{key: clusterKey, msg: inv.Cluster}}
	for _, h := range inv.Hosts {
		ws = append(ws, write{key: state.HostKey(h.Uuid), msg: h})
	}
	if _, err := m.commit(ctx, ws); err != nil {
		return fmt.Errorf("creating the cluster: %w", err)
	}
	m.log.Info("created cluster", "name", inv.Cluster.Name, "hosts", len(inv.Hosts), "driver", m.drv.Name())
	return nil
}

// Register serves the acli API, the gRPC health service and server
// reflection on s.
func (m *Manager) Register(s *grpc.Server) {
	hosts := &hostsync.Hosts{DB: m.db, LastBeat: m.beats.Last}
	rpc.Register(s, rpc.Features{
		Cluster:      clusterFeature{clusterInfo{m.db, m.drv.Name(), m.status}, m.haSettings},
		Hosts:        hostFeature{hosts, m.maint, &hostsync.Members{DB: m.db, M: membersManager{m}, Driver: m.drv, Beats: &m.beats, Now: timeNow}},
		Tasks:        tasks.Service{Engine: m.tasks, Draining: m.draining},
		Events:       events.Service{Bus: m.bus, Draining: m.draining},
		Sim:          simFeature{&hostsync.Faults{Driver: m.drv, Events: m.hostEv, Hosts: hosts}, m.vms},
		Vms:          vmFeature{m.vms, vmService{m: m}, &vmMigration{DB: m.db, Moves: m.ops.moves, M: migrateManager{m}}},
		Nics:         m.net,
		VmGroups:     m.groups,
		Networks:     m.net,
		VolumeGroups: m.vgService(),
		Images:       m.imageService(),
		Snapshots:    m.imageService(),
		Containers:   m.stor.containers,
	})
	healthpb.RegisterHealthServer(s, m.health)
	reflection.Register(s)
}

// DriverName is the driver in use ("sim", "libvirt").
func (m *Manager) DriverName() string { return m.drv.Name() }

// NumHosts is the number of hosts in the cluster.
func (m *Manager) NumHosts() (n int) {
	m.db.View(func(tx *state.Tx) { n = tx.NumHosts() })
	return n
}

// Drain ends the streaming RPCs (WatchTask, WatchEvents) so that a graceful
// server stop does not wait for watchers, and reports NOT_SERVING.
func (m *Manager) Drain() {
	m.drainMu.Do(func() {
		m.health.Shutdown()
		close(m.draining)
	})
}

// closeTimeout bounds how long Close waits for running tasks to record
// their end.
const closeTimeout = 5 * time.Second

// Close stops the manager: running tasks are cancelled and end kFailed
// (recorded in the store), the driver stops, retained events are flushed
// and the store is closed.
func (m *Manager) Close() error {
	m.Drain()
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return nil
	}
	m.closing = true
	m.mu.Unlock()
	m.tasks.Close()
	m.cancel()
	if m.readOnly {
		return m.st.Close()
	}
	if !m.tasks.Wait(closeTimeout) {
		m.log.Warn("tasks still running at shutdown; they will be failed at the next start")
	}
	derr := m.drv.Close() // closes the host event stream, ending the consumer
	ack := make(chan struct{})
	m.flushNow <- ack // final flush, then the flusher exits
	<-ack
	m.bgWG.Wait()
	serr := m.st.Close()
	return errors.Join(derr, serr)
}

// publish sends an event; the message is formatted like fmt.Sprintf.
func (m *Manager) publish(typ, severity, taskUUID string, refs []*acliv1.EntityRef, format string, args ...any) {
	ev := &acliv1.Event{
		Type: typ, Severity: severity, TaskUuid: taskUUID, Entities: refs,
		Message: fmt.Sprintf(format, args...),
	}
	if who, ok := m.tasks.Principal(taskUUID); ok {
		ev.Principal = who
	}
	m.bus.Publish(ev)
}
