package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/datapath"
	"github.com/acli-dev/acli/manager/driver"
)

// Config tunes the clusterd driver.
type Config struct {
	// ClusterName, RedundancyFactor and DataServicesIP shape a new cluster (defaults
	// "acli-libvirt", 2, none). Hosts join it with host.add.
	ClusterName      string
	RedundancyFactor int
	DataServicesIP   string
	// Dial tunes the connections to the hosts' libvirtd.
	Dial DialOptions
	// HeartbeatInterval is how often each host's connection is probed; every answered probe
	// is a heartbeat (default 1s). The manager marks a host down after several are missed.
	HeartbeatInterval time.Duration
	// ShutdownTimeout bounds an ACPI shutdown; a guest still running then is powered off, as
	// OpenStack Nova's clean shutdown does (default 60s).
	ShutdownTimeout time.Duration
	// MigrationTimeout is the deadline of a live migration when the caller gives none
	// (0: none). Past it the job is aborted and the VM stays on its source.
	MigrationTimeout time.Duration
	// ReconcileInterval is how often each host's domains are compared in full with the
	// model, catching changes whose events were missed (default 30s).
	ReconcileInterval time.Duration
	// Storage holds the VMs' vDisks; with no Dir, domains get no disks.
	Storage Storage
	// NetworkBridges plugs each VM NIC into the bridge named for its
	// network (BridgeName), which every host must have; off, domains get
	// no NICs.
	NetworkBridges bool
	// FenceHost is the fence agent: it powers a host off (its BMC, a PDU) and returns nil
	// only once no guest of the host can run any more. HA calls it for a down host whose
	// VMs it cannot power off there (libvirtd gone while its QEMUs may run on); without one,
	// such VMs stay recorded on the host until it is back or their storage fences them.
	FenceHost func(ctx context.Context, host *acliv1.Host) error
	// DataPath, when set, serves the vDisks over iSCSI: the driver runs a
	// CVM target and a redirector per host (Storage.DataPath is then set).
	DataPath *datapath.Config
	Logger   *slog.Logger
}

func (c *Config) defaults() {
	if c.ClusterName == "" {
		c.ClusterName = "acli-libvirt"
	}
	if c.RedundancyFactor <= 0 {
		c.RedundancyFactor = 2
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 60 * time.Second
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Driver puts the cluster model on real libvirtd hosts: VMs are QEMU domains named after
// them and identified by their UUID, live migration is libvirt's peer-to-peer migration.
type Driver struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	members map[string]*member // by host UUID
	events  chan driver.HostEvent
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closed  bool
	dp      *dataPath
	// networks reads a NIC's network (UseNetworks).
	networks func(networkUUID string) (driver.NicNetwork, bool)
}

// member is one host the driver manages.
type member struct {
	uuid, name, ip string
	uri            *URI
	h              *Host
	cancel         context.CancelFunc
	done           chan struct{}
	probes         int // answered probes since the last full reconcile (Run goroutine only)
}

var (
	_ driver.Driver     = (*Driver)(nil)
	_ driver.HostJoiner = (*Driver)(nil)
	_ driver.HostFencer = (*Driver)(nil)
)

// NewDriver returns a libvirt driver; hosts are managed from Start (recorded ones) and
// JoinHost (host.add).
func NewDriver(cfg Config) *Driver {
	cfg.defaults()
	return &Driver{cfg: cfg, log: cfg.Logger, members: map[string]*member{}}
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return "libvirt" }

// HeartbeatInterval is the time between two heartbeats of a connected host.
func (d *Driver) HeartbeatInterval() time.Duration { return d.cfg.HeartbeatInterval }

// Inventory implements driver.Driver: a cluster with no hosts yet.
func (d *Driver) Inventory() driver.Inventory {
	return driver.Inventory{Cluster: &acliv1.Cluster{
		Name:                d.cfg.ClusterName,
		Uuid:                uuid.NewString(),
		RedundancyFactor:    int32(d.cfg.RedundancyFactor),
		IscsiDataServicesIp: d.cfg.DataServicesIP,
		Driver:              "libvirt",
		CreateTime:          timestamppb.Now(),
	}}
}

// Start implements driver.Driver: it connects to every recorded host. Domains are
// reconciled with the model on each (re)connection, through VmStates events.
func (d *Driver) Start(ctx context.Context, hosts []*acliv1.Host, vms []*acliv1.Vm) (<-chan driver.HostEvent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.events != nil {
		return nil, errors.New("libvirt driver already started")
	}
	d.ctx, d.cancel = context.WithCancel(ctx)
	d.events = make(chan driver.HostEvent, 256)
	if err := d.startDataPathLocked(d.ctx, hosts, vms); err != nil {
		d.cancel()
		d.events = nil
		return nil, err
	}
	for _, h := range hosts {
		if err := d.manageLocked(h); err != nil {
			// The host stays silent and the manager marks it down; the operator can remove it.
			d.log.Error("libvirt host cannot be managed", "host", h.Name, "uri", h.LibvirtUri, "err", err)
		}
	}
	return d.events, nil
}

func (d *Driver) manageLocked(h *acliv1.Host) error {
	u, err := ParseURI(h.LibvirtUri)
	if err != nil {
		return err
	}
	mctx, cancel := context.WithCancel(d.ctx)
	mem := &member{uuid: h.Uuid, name: h.Name, ip: h.HypervisorIp, uri: u, cancel: cancel, done: make(chan struct{})}
	mem.h, err = NewHost(HostConfig{
		URI:           h.LibvirtUri,
		Dial:          d.cfg.Dial,
		ProbeInterval: d.cfg.HeartbeatInterval,
		ProbeTimeout:  max(2*d.cfg.HeartbeatInterval, 2*time.Second),
		MaxBackoff:    max(d.cfg.HeartbeatInterval, time.Second),
		OnState: func(up bool, err error) {
			if up {
				d.log.Info("libvirt host connected", "host", mem.name, "uri", u.String())
				mem.probes = 0
				d.reconcile(mctx, mem)
				d.discoverDevices(mctx, mem)
				return
			}
			d.log.Warn("libvirt host unreachable", "host", mem.name, "err", err)
		},
		OnEvent: func(ev Event) { d.observeOne(mctx, mem, ev.UUID) },
		OnAlive: func() {
			d.send(mctx, driver.HostEvent{Kind: driver.Heartbeat, HostUUID: mem.uuid, Time: time.Now()}, true)
		},
		OnProbe: func() {
			if mem.probes++; time.Duration(mem.probes)*d.cfg.HeartbeatInterval >= d.cfg.ReconcileInterval {
				mem.probes = 0
				d.reconcile(mctx, mem)
			}
		},
	})
	if err != nil {
		cancel()
		return err
	}
	d.members[h.Uuid] = mem
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(mem.done)
		mem.h.Run(mctx)
	}()
	return nil
}

// send queues an event; heartbeats are dropped rather than wait when the manager lags.
func (d *Driver) send(ctx context.Context, ev driver.HostEvent, droppable bool) {
	if droppable {
		select {
		case d.events <- ev:
		default:
		}
		return
	}
	select {
	case d.events <- ev:
	case <-ctx.Done():
	}
}

// reconcile reports every domain of a host, so the manager reflects what changed while it
// was not listening.
func (d *Driver) reconcile(ctx context.Context, mem *member) {
	c, err := mem.h.Conn()
	if err != nil {
		return
	}
	at := time.Now() // before reading: the manager drops reports older than its last change
	doms, err := c.List()
	if err != nil {
		d.log.Warn("listing domains", "host", mem.name, "err", err)
		return
	}
	ev := driver.HostEvent{Kind: driver.VmStates, HostUUID: mem.uuid, Time: at, Complete: true}
	for _, dom := range doms {
		ev.Vms = append(ev.Vms, d.observation(ctx, mem, dom.UUID, dom.State))
	}
	d.send(ctx, ev, false)
}

// observeOne reports one domain after a lifecycle event. The state is read again rather
// than taken from the event, so a late event never reports a state that has passed.
func (d *Driver) observeOne(ctx context.Context, mem *member, id string) {
	c, err := mem.h.Conn()
	if err != nil {
		return
	}
	at := time.Now()
	st := StateOff
	if dom, err := c.Lookup(id); err == nil {
		st = dom.State
	} else if !errors.Is(err, ErrNotFound) {
		return
	}
	d.send(ctx, driver.HostEvent{Kind: driver.VmStates, HostUUID: mem.uuid, Time: at,
		Vms: []driver.VmObservation{d.observation(ctx, mem, id, st)}}, false)
}

func (d *Driver) observation(ctx context.Context, mem *member, id string, st State) driver.VmObservation {
	o := driver.VmObservation{VmUUID: id, PowerState: powerState(st)}
	if o.PowerState == acliv1.PowerState_kOff {
		return o
	}
	for _, other := range d.others(mem.uuid) {
		if ctx.Err() != nil {
			break // the host is leaving; what it reports no longer matters
		}
		c, err := other.h.Conn()
		if err != nil {
			continue
		}
		if dom, err := c.Lookup(id); err == nil && dom.State.Active() {
			o.RunningElsewhere = append(o.RunningElsewhere, other.uuid)
		}
	}
	return o
}

func (d *Driver) others(self string) []*member {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*member, 0, len(d.members))
	for id, m := range d.members {
		if id != self {
			out = append(out, m)
		}
	}
	return out
}

func powerState(s State) acliv1.PowerState {
	switch s {
	case StateRunning, StateShuttingDown:
		return acliv1.PowerState_kOn
	case StatePaused, StateSuspended:
		return acliv1.PowerState_kPaused
	}
	return acliv1.PowerState_kOff
}

// CheckHost implements driver.HostJoiner.
func (d *Driver) CheckHost(h *acliv1.Host) error {
	if h.LibvirtUri == "" {
		return errors.New("libvirt_uri is required, e.g. libvirt_uri=qemu+tcp://127.0.0.2/system")
	}
	_, err := ParseURI(h.LibvirtUri)
	return err
}

// JoinHost implements driver.HostJoiner: the host's UUID is libvirt's host_uuid, so one
// machine cannot join twice under two names or URIs.
func (d *Driver) JoinHost(ctx context.Context, h *acliv1.Host) (*acliv1.Host, error) {
	u, err := ParseURI(h.LibvirtUri)
	if err != nil {
		return nil, err
	}
	c, err := DialURI(ctx, u, d.cfg.Dial)
	if err != nil {
		return nil, err
	}
	hi, err := c.HostInfo()
	var devs []*acliv1.HostDevice
	if err == nil {
		devs, err = c.NodeDevices()
	}
	c.Close()
	if err != nil {
		return nil, fmt.Errorf("host %s: reading its capabilities: %w", u, err)
	}
	id, err := uuid.Parse(hi.UUID)
	if err != nil {
		return nil, fmt.Errorf("host %s reports host_uuid %q, which is not a UUID: %v", u, hi.UUID, err)
	}
	out := proto.Clone(h).(*acliv1.Host)
	out.Uuid = id.String()
	out.CpuCores = int32(hi.CPUs)
	out.MemoryBytes = int64(hi.MemoryMiB) << 20
	out.HypervisorDnsName = hi.Hostname
	out.HypervisorType = "KVM"
	out.NodeType = "HyperConverged"
	out.NodeState = acliv1.NodeState_AcropolisNormal
	out.CvmState = acliv1.CvmState_kCvmUp
	out.Schedulable, out.SchedulableReason = true, ""
	out.Connected = true
	out.Devices = devs

	d.mu.Lock()
	switch {
	case d.events == nil || d.closed:
		d.mu.Unlock()
		return nil, errors.New("the libvirt driver is not running")
	case d.members[out.Uuid] != nil:
		m := d.members[out.Uuid]
		d.mu.Unlock()
		return nil, fmt.Errorf("%w: the libvirt host at %s (host_uuid %s) is already in the cluster as %s (%s)",
			driver.ErrHostExists, u, out.Uuid, m.name, m.uri)
	}
	if err := d.manageLocked(out); err != nil {
		d.mu.Unlock()
		return nil, err
	}
	mem := d.members[out.Uuid]
	d.mu.Unlock()
	d.addDataPathHost(ctx, out)
	// Joined means usable: the supervised connection is up before host.add
	// completes, so the next vm.on there does not find it still dialing.
	wctx, cancel := context.WithTimeout(ctx, d.cfg.Dial.timeout()+time.Second)
	defer cancel()
	if err := mem.h.WaitConnected(wctx); err != nil {
		d.LeaveHost(out.Uuid)
		return nil, fmt.Errorf("host %s: %w", u, err)
	}
	return out, nil
}

// LeaveHost implements driver.HostJoiner. Domains stay as they are on the host.
func (d *Driver) LeaveHost(hostUUID string) error {
	d.mu.Lock()
	mem := d.members[hostUUID]
	delete(d.members, hostUUID)
	d.mu.Unlock()
	if mem == nil {
		return nil
	}
	mem.cancel()
	<-mem.done
	d.removeDataPathHost(mem.name)
	return nil
}

// Close implements driver.Driver.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	started := d.events != nil
	if started {
		d.cancel()
	}
	d.mu.Unlock()
	if started {
		d.wg.Wait()
		close(d.events)
	}
	return d.closeDataPath()
}

// conn is the live connection to a host, or why there is none.
func (d *Driver) conn(h *acliv1.Host) (*Conn, error) {
	if h == nil {
		return nil, errors.New("no host given")
	}
	d.mu.Lock()
	mem := d.members[h.Uuid]
	d.mu.Unlock()
	if mem == nil {
		return nil, fmt.Errorf("host %s (%s) has no libvirt connection (libvirt_uri %q)", h.Name, h.HypervisorIp, h.LibvirtUri)
	}
	c, err := mem.h.Conn()
	if err != nil {
		return nil, fmt.Errorf("host %s (%s): %w", h.Name, h.HypervisorIp, err)
	}
	return c, nil
}

// VmDomainSpec is the domain a VM record becomes; with a storage
// directory, its vDisks and a console file come along.
func VmDomainSpec(vm *acliv1.Vm, st Storage) DomainSpec {
	sockets, cores, threads := max(int(vm.NumVcpus), 1), max(int(vm.NumCoresPerVcpu), 1), max(int(vm.NumThreadsPerCore), 1)
	s := DomainSpec{
		Name:        strings.ReplaceAll(vm.Name, "/", "_"),
		UUID:        vm.Uuid,
		VCPUs:       sockets * cores * threads,
		MemoryMiB:   max(uint64(vm.MemoryBytes+1<<20-1)>>20, 1),
		Description: "acli vm " + vm.Name,
		Hardware: HardwareSpec{
			UEFI: vm.UefiBoot, CPUPassthrough: vm.CpuPassthrough, NestedVirt: vm.HardwareVirtualization,
			NUMANodes: int(vm.NumVnumaNodes), PinVCPUs: vm.VcpuHardPin, TPM: vm.VirtualTpm,
		},
		Hostdevs: boundDevices(vm),
	}
	if cores > 1 || threads > 1 || vm.NumVnumaNodes > 0 {
		s.Hardware.Sockets, s.Hardware.Cores, s.Hardware.Threads = sockets, cores, threads
	}
	if st.Dir != "" {
		s.Disks = st.vmDisks(vm)
		s.Console = &ConsoleSpec{Path: st.ConsolePath(vm.Uuid)}
	}
	return s
}

// PowerOn implements driver.Driver: define the domain from the VM record, then start it.
func (d *Driver) PowerOn(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error {
	c, err := d.conn(host)
	if err != nil {
		return err
	}
	spec := VmDomainSpec(vm, d.cfg.Storage)
	spec.Hardware.HostCPUs = int(host.CpuCores)
	if d.cfg.NetworkBridges {
		if spec.NICs, err = d.hostNICs(ctx, host, vm.Nics); err != nil {
			return err
		}
	}
	if d.cfg.Storage.Dir != "" {
		if err := d.cfg.Storage.ensureVolumes(vm); err != nil {
			return err
		}
	}
	if err := d.cfg.Storage.onHost(ctx, &spec, vm.Uuid, host.Name); err != nil {
		return err
	}
	if err := d.unfence(ctx, host, vm); err != nil {
		return err
	}
	if dom, err := c.Lookup(vm.Uuid); err == nil {
		if dom.State.Active() {
			return nil // already running there (started outside clusterd): nothing to do
		}
		// An old definition (the VM was renamed since) would clash with the new name.
		if dom.Name != spec.Name {
			if err := c.Undefine(vm.Uuid); err != nil {
				return err
			}
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	// VM names need not be unique; domain names must be.
	if dom, err := c.Lookup(spec.Name); err == nil && dom.UUID != vm.Uuid {
		spec.Name += "-" + vm.Uuid[:8]
	}
	if err := createMdevs(c, host, vm); err != nil { // vGPUs (mdev.go)
		return err
	}
	if _, err := c.Define(spec); err != nil {
		return err
	}
	if err := c.Start(vm.Uuid); err != nil {
		if errors.Is(err, ErrTimeout) {
			// libvirtd may still be starting it, waiting on a stalled QEMU. Destroying
			// kills that QEMU, which ends the start: no guest is left running, or paused
			// half-started, where the VM's record does not say.
			if derr := ignoreNotFound(c.Destroy(vm.Uuid)); derr != nil {
				return fmt.Errorf("host %s: %w; destroying what it started: %v", host.Name, err, derr)
			}
			c.Undefine(vm.Uuid)
			return fmt.Errorf("host %s: %w", host.Name, err)
		}
		c.Undefine(vm.Uuid) // leave no trace of a VM that did not start
		return vlanRefused(vm, host, err)
	}
	return nil
}

// PowerOff implements driver.Driver: destroy, and drop the definition, since a stopped VM
// belongs to no host.
func (d *Driver) PowerOff(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error {
	c, err := d.conn(host)
	if err != nil {
		return err
	}
	dom, err := c.Lookup(vm.Uuid)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if dom.State.Active() {
		if err := ignoreNotFound(c.Destroy(vm.Uuid)); err != nil {
			return err
		}
	}
	defer destroyMdevs(c, vm)
	return ignoreNotFound(c.Undefine(vm.Uuid))
}

// Answers implements driver.Reacher: the host's connection is up.
func (d *Driver) Answers(h *acliv1.Host) bool {
	_, err := d.conn(h)
	return err == nil
}

// FenceHost implements driver.HostFencer through Config.FenceHost. A libvirtd that does not
// answer proves nothing: its QEMUs keep running without it.
func (d *Driver) FenceHost(ctx context.Context, host *acliv1.Host) error {
	if d.cfg.FenceHost == nil {
		return errors.New("no fence agent for libvirt hosts, and libvirtd not answering proves nothing of its guests")
	}
	if err := d.cfg.FenceHost(ctx, host); err != nil {
		return fmt.Errorf("fence agent: %w", err)
	}
	return nil
}

// Shutdown implements driver.Driver: an ACPI shutdown, and power-off when the guest has
// not stopped within Config.ShutdownTimeout (a guest with no OS ignores ACPI).
func (d *Driver) Shutdown(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error {
	c, err := d.conn(host)
	if err != nil {
		return err
	}
	err = c.Shutdown(ctx, vm.Uuid, d.cfg.ShutdownTimeout)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case errors.Is(err, ErrShutdownTimeout):
		d.log.Warn("guest ignored the ACPI shutdown; powering it off", "vm", vm.Name, "host", host.Name, "timeout", d.cfg.ShutdownTimeout)
		if err := c.Destroy(vm.Uuid); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	case err != nil:
		return err
	}
	return ignoreNotFound(c.Undefine(vm.Uuid))
}

// Reboot implements driver.Driver (ACPI).
func (d *Driver) Reboot(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error {
	c, err := d.conn(host)
	if err != nil {
		return err
	}
	return c.Reboot(vm.Uuid)
}

// Reset implements driver.Driver.
func (d *Driver) Reset(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error {
	c, err := d.conn(host)
	if err != nil {
		return err
	}
	return c.Reset(vm.Uuid)
}

// Undefine implements driver.Driver. Without a host it removes definitions left on any
// connected host.
func (d *Driver) Undefine(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm) error {
	type target struct {
		name string
		c    *Conn
	}
	var targets []target
	if host != nil {
		c, err := d.conn(host)
		if err != nil {
			return err
		}
		targets = append(targets, target{host.Name, c})
	} else {
		for _, m := range d.others("") {
			if c, err := m.h.Conn(); err == nil {
				targets = append(targets, target{m.name, c})
			}
		}
	}
	for _, t := range targets {
		dom, err := t.c.Lookup(vm.Uuid)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if dom.State.Active() {
			return fmt.Errorf("vm %s still runs on host %s (domain %s is %s); power it off first", vm.Name, t.name, dom.Name, dom.State)
		}
		if err := ignoreNotFound(t.c.Undefine(vm.Uuid)); err != nil {
			return err
		}
	}
	return d.cfg.Storage.removeVolumes(vm)
}

// Migrate implements driver.Driver: a peer-to-peer live migration driven by the source
// daemon, with the destination as the source reaches it.
func (d *Driver) Migrate(ctx context.Context, vm *acliv1.Vm, src, dst *acliv1.Host, opts driver.MigrateOptions, progress func(*acliv1.MigrationProgress)) error {
	sc, err := d.conn(src)
	if err != nil {
		return err
	}
	dc, err := d.conn(dst)
	if err != nil {
		return err
	}
	if dom, err := dc.Lookup(vm.Uuid); err == nil {
		if dom.State.Active() {
			return fmt.Errorf("vm %s already runs on host %s", vm.Name, dst.Name)
		}
		// An inactive definition under another name would make the destination refuse it.
		if err := ignoreNotFound(dc.Undefine(vm.Uuid)); err != nil {
			return err
		}
	}
	deadline := d.cfg.MigrationTimeout
	if !opts.Deadline.IsZero() {
		if deadline = time.Until(opts.Deadline); deadline <= 0 {
			return fmt.Errorf("migrate vm %s: %w (deadline passed before it started)", vm.Name, ErrMigrationAborted)
		}
	}
	d.mu.Lock()
	dm := d.members[dst.Uuid]
	d.mu.Unlock()
	if dm == nil {
		return fmt.Errorf("host %s is not managed by the libvirt driver", dst.Name)
	}
	o := MigrateOptions{
		DestURI:       dm.uri.PeerURI(dst.HypervisorIp),
		BandwidthMbps: uint64(max(opts.BandwidthMbps, 0)),
		Deadline:      deadline,
		Dest:          dc,
		// libvirt cannot tell that the container directory is shared by
		// every host (it stands in for the distributed storage), so it
		// would refuse to migrate a domain with file disks.
		SharedDisks: len(VmDomainSpec(vm, d.cfg.Storage).Disks) > 0,
	}
	if dp := d.cfg.Storage.DataPath; dp != nil {
		if o.DestXML, err = DestXML(sc, dp, vm.Uuid, src.Name, dst.Name); err != nil {
			return err
		}
	}
	if d.cfg.NetworkBridges && len(vm.Nics) > 0 {
		// The destination plugs the NICs its way: an Open vSwitch port of
		// its switch's bridge, or its network's Linux bridge.
		nics, err := d.hostNICs(ctx, dst, vm.Nics)
		if err != nil {
			return err
		}
		if o.DestXML == "" {
			if o.DestXML, err = sc.MigratableXML(vm.Uuid); err != nil {
				return err
			}
		}
		if o.DestXML, err = WithNICs(o.DestXML, nics); err != nil {
			return err
		}
	}
	if progress != nil {
		o.Progress = func(p MigrationProgress) {
			if p.DataTotal == 0 && !p.Completed {
				return // the job is still being set up: no figures yet
			}
			progress(&acliv1.MigrationProgress{
				VmUuid: vm.Uuid, SourceHostUuid: src.Uuid, TargetHostUuid: dst.Uuid,
				Round:               int32(max(p.Iteration, 1)),
				RemainingBytes:      int64(p.DataRemaining),
				EstimatedDowntimeMs: p.Downtime.Milliseconds(),
				TransferredBytes:    int64(p.DataProcessed),
				// libvirt counts dirtied pages; guests here use 4 KiB pages.
				DirtyRateBytesPerSec: int64(p.DirtyRate) * 4096,
				BandwidthBytesPerSec: int64(p.MemoryBps),
			})
		}
	}
	res, err := sc.Migrate(ctx, vm.Uuid, o)
	if err != nil {
		if errors.Is(err, ErrMigrationAborted) {
			return fmt.Errorf("%w; vm %s stays on host %s", err, vm.Name, src.Name)
		}
		return vlanRefused(vm, dst, err)
	}
	d.log.Info("live migration done", "vm", vm.Name, "from", src.Name, "to", dst.Name,
		"took", res.Elapsed.Round(time.Millisecond), "downtime", res.Downtime, "iterations", res.Iterations)
	return nil
}

// DestXML is the running domain's definition with its iSCSI disks pointed
// at the destination host's redirector, logging in as the destination's
// initiator: after the move the destination's CVM serves them.
func DestXML(sc *Conn, dp DataPath, vmUUID, src, dst string) (string, error) {
	x, err := sc.MigratableXML(vmUUID)
	if err != nil {
		return "", err
	}
	from, to := dp.Redirector(src), dp.Redirector(dst)
	if to == "" {
		return "", fmt.Errorf("host %s has no iSCSI redirector", dst)
	}
	fh, fp, _ := net.SplitHostPort(from)
	th, tp, _ := net.SplitHostPort(to)
	return strings.NewReplacer(
		fmt.Sprintf("<host name='%s' port='%s'/>", fh, fp), fmt.Sprintf("<host name='%s' port='%s'/>", th, tp),
		datapath.InitiatorName(vmUUID, src), datapath.InitiatorName(vmUUID, dst),
	).Replace(x), nil
}

func ignoreNotFound(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
