// Package sim is the simulated hypervisor driver: in-process hosts with
// loopback addresses, operations that take (speed-scaled) simulated time,
// heartbeats, and fault injection (driver.FaultInjector).
//
// The simulator tracks which VMs run on which host ("domains"), so it
// refuses what a real host would refuse (starting a VM twice, migrating a VM
// that is not on the source, any operation on a failed host), and a failed
// host loses its running VMs as a real one would.
package sim

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/driver/sim/migration"
)

// MigrationStep is one pre-copy round of a live migration.
type MigrationStep struct {
	Round            int
	TransferredBytes int64
	RemainingBytes   int64
	DowntimeMs       int64
	// Duration is the simulated (unscaled) time the round takes.
	Duration time.Duration
}

// MigrationModel plans a live migration of a VM with memBytes of memory
// dirtying dirtyMBps over a link of bandwidthMbps. A non-nil error (e.g.
// failure to converge) is returned after the steps have been simulated, and
// the VM stays on its source.
type MigrationModel func(memBytes, dirtyMBps, bandwidthMbps int64) ([]MigrationStep, error)

// Options are the driver's runtime settings beyond the cluster shape.
type Options struct {
	// Migration replaces the built-in pre-copy model (PreCopy).
	Migration MigrationModel
	// BeforeRound, when set, is called before each step of a live
	// migration, with the migration's context: a test holds a migration at
	// a known round by blocking it; an error aborts the migration.
	BeforeRound func(ctx context.Context, vm *acliv1.Vm, round int) error
}

// DefaultDirtyRateMBps is the dirty rate of a VM that does not give one
// (Vm.dirty_rate_mbps 0) unless the sim config sets idle_dirty_rate_mbps:
// an idle guest, whose live migration converges even at 100 Mb/s.
const DefaultDirtyRateMBps = 2

// PreCopy is the default migration model: QEMU-like pre-copy rounds
// (manager/driver/sim/migration) against the VM's dirty rate, up to 50 rounds, with a
// final pause of at most 300 ms, else "failure to converge". The last step
// is the stop-and-copy pause.
func PreCopy(memBytes, dirtyMBps, bandwidthMbps int64) ([]MigrationStep, error) {
	if dirtyMBps == 0 {
		dirtyMBps = DefaultDirtyRateMBps
	}
	rounds, res, err := migration.Simulate(migration.Params{MemoryBytes: memBytes, DirtyRateMBps: dirtyMBps, BandwidthMbps: bandwidthMbps})
	if len(rounds) == 0 && err != nil {
		return nil, err
	}
	steps := make([]MigrationStep, 0, len(rounds)+1)
	for _, r := range rounds {
		steps = append(steps, MigrationStep{
			Round: r.Round, TransferredBytes: r.Transferred, RemainingBytes: r.Remaining,
			DowntimeMs: r.EstimatedDowntime.Milliseconds(), Duration: r.Duration,
		})
	}
	if err != nil {
		return steps, err
	}
	last := steps[len(steps)-1]
	steps = append(steps, MigrationStep{
		Round: last.Round, TransferredBytes: res.Transferred, RemainingBytes: 0,
		DowntimeMs: res.Downtime.Milliseconds(), Duration: res.Downtime,
	})
	return steps, nil
}

// Driver is the simulated driver.
type Driver struct {
	cfg  Resolved
	opts Options

	mu     sync.Mutex
	hosts  map[string]*host
	order  []*host // heartbeat order
	events chan driver.HostEvent
	stop   chan struct{}
	wg     sync.WaitGroup
	closed bool
	dirty  map[string]int64 // guest dirty rates set by SetDirtyRate, by VM UUID
}

type host struct {
	uuid, name string
	up, cvmUp  bool
	domains    map[string]bool   // VM UUIDs running here
	held       map[string]string // device address -> VM UUID given it at power-on
	bridges    map[string]Bridge // virtual switch -> bridge, once wired (network.go)
}

var (
	_ driver.Driver        = (*Driver)(nil)
	_ driver.FaultInjector = (*Driver)(nil)
)

// New returns a sim driver for the configuration.
func New(c Config, opts Options) (*Driver, error) {
	r, err := c.Resolve()
	if err != nil {
		return nil, err
	}
	return &Driver{cfg: r, opts: opts, hosts: map[string]*host{}, stop: make(chan struct{})}, nil
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return "sim" }

// Speed is the time scale in effect.
func (d *Driver) Speed() float64 { return d.cfg.Speed }

// Inventory implements driver.Driver: the configured cluster with fresh UUIDs.
func (d *Driver) Inventory() driver.Inventory {
	now := timestamppb.Now()
	inv := driver.Inventory{Cluster: &acliv1.Cluster{
		Name:                d.cfg.ClusterName,
		Uuid:                uuid.NewString(),
		RedundancyFactor:    int32(d.cfg.RedundancyFactor),
		IscsiDataServicesIp: d.cfg.DataServicesIP,
		Driver:              "sim",
		CreateTime:          now,
	}}
	for _, h := range d.cfg.Hosts {
		inv.Hosts = append(inv.Hosts, &acliv1.Host{
			Uuid:           uuid.NewString(),
			Name:           h.Name,
			HypervisorIp:   h.HypervisorIP,
			CvmIp:          h.CvmIP,
			CpuCores:       int32(h.CPUCores),
			MemoryBytes:    h.MemoryGiB * GiB,
			NodeState:      acliv1.NodeState_AcropolisNormal,
			Schedulable:    true,
			NodeType:       "HyperConverged",
			CvmState:       acliv1.CvmState_kCvmUp,
			HypervisorType: "KVM",
			Devices:        h.devices,
		})
	}
	return inv
}

// Start implements driver.Driver. Simulated hosts come up in the state the
// manager recorded (a host stored as down stays down until recovered), and
// running VMs are adopted.
func (d *Driver) Start(ctx context.Context, hosts []*acliv1.Host, vms []*acliv1.Vm) (<-chan driver.HostEvent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.events != nil {
		return nil, fmt.Errorf("sim driver already started")
	}
	for _, h := range hosts {
		sh := &host{
			uuid: h.Uuid, name: h.Name,
			up:      h.NodeState != acliv1.NodeState_kNodeDown,
			cvmUp:   h.CvmState == acliv1.CvmState_kCvmUp,
			domains: map[string]bool{},
		}
		d.hosts[h.Uuid] = sh
		d.order = append(d.order, sh)
	}
	for _, vm := range vms {
		if vm.PowerState == acliv1.PowerState_kOn || vm.PowerState == acliv1.PowerState_kPaused {
			if h := d.hosts[vm.HostUuid]; h != nil && h.up {
				h.domains[vm.Uuid] = true
			}
		}
	}
	// Room for every host to report a state change without blocking.
	d.events = make(chan driver.HostEvent, 4*len(hosts)+64)
	d.wg.Add(1)
	go d.heartbeats()
	return d.events, nil
}

// heartbeatInterval scales the heartbeat with the speed, but no faster than
// every 50 ms so that large fast clusters do not flood the manager.
func (d *Driver) heartbeatInterval() time.Duration {
	return d.HeartbeatInterval()
}

// HeartbeatInterval is the real time between two heartbeats of a host; the
// manager declares a host down after several are missed.
func (d *Driver) HeartbeatInterval() time.Duration {
	return max(time.Duration(float64(d.cfg.Timing.Heartbeat)/d.cfg.Speed), 50*time.Millisecond)
}

func (d *Driver) heartbeats() {
	defer d.wg.Done()
	t := time.NewTicker(d.heartbeatInterval())
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case now := <-t.C:
			d.mu.Lock()
			for _, h := range d.order {
				if !h.up {
					continue
				}
				// A heartbeat carries no state: drop it rather than block
				// when the manager is behind.
				select {
				case d.events <- driver.HostEvent{Kind: driver.Heartbeat, HostUUID: h.uuid, Time: now}:
				default:
				}
			}
			d.mu.Unlock()
		}
	}
}

// sleep waits for a simulated duration.
func (d *Driver) sleep(ctx context.Context, sim time.Duration) error {
	real := time.Duration(float64(sim) / d.cfg.Speed)
	if real <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(real)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-d.stop:
		return fmt.Errorf("sim driver stopped")
	}
}

// upHost returns the host if it is up; called with d.mu held.
func (d *Driver) upHost(h *acliv1.Host) (*host, error) {
	if h == nil {
		return nil, fmt.Errorf("no host given")
	}
	sh := d.hosts[h.Uuid]
	if sh == nil {
		return nil, fmt.Errorf("host %s is not managed by the sim driver", h.Name)
	}
	if !sh.up {
		return nil, fmt.Errorf("host %s (%s) is down", h.Name, h.HypervisorIp)
	}
	return sh, nil
}

// PowerOn implements driver.Driver.
func (d *Driver) PowerOn(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	d.mu.Lock()
	sh, err := d.upHost(h)
	if err == nil {
		for _, other := range d.hosts {
			if other.domains[vm.Uuid] {
				err = fmt.Errorf("vm %s is already running on host %s", vm.Name, other.name)
			}
		}
	}
	if err == nil {
		err = sh.devicesFree(h, vm)
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if err := d.sleep(ctx, d.cfg.Timing.PowerOn); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !sh.up {
		return fmt.Errorf("host %s went down while vm %s was starting", sh.name, vm.Name)
	}
	if err := sh.devicesFree(h, vm); err != nil {
		return err
	}
	sh.domains[vm.Uuid] = true
	for _, dv := range vm.Devices {
		if sh.held == nil {
			sh.held = map[string]string{}
		}
		sh.held[heldKey(dv)] = vm.Uuid
	}
	return nil
}

// PowerOff implements driver.Driver. Powering off a VM whose host is down
// succeeds: it is not running anywhere.
func (d *Driver) PowerOff(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	if err := d.sleep(ctx, d.cfg.Timing.PowerOff); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if sh := d.hosts[h.GetUuid()]; sh != nil {
		delete(sh.domains, vm.Uuid)
	}
	return nil
}

// guestOp runs an ACPI/reset operation that needs the guest running.
func (d *Driver) guestOp(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm, what string, dur time.Duration, stops bool) error {
	d.mu.Lock()
	sh, err := d.upHost(h)
	if err == nil && !sh.domains[vm.Uuid] {
		err = fmt.Errorf("cannot %s vm %s: it is not running on host %s", what, vm.Name, sh.name)
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if err := d.sleep(ctx, dur); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !sh.up {
		return fmt.Errorf("host %s went down during %s of vm %s", sh.name, what, vm.Name)
	}
	if stops {
		delete(sh.domains, vm.Uuid)
	}
	return nil
}

// Shutdown implements driver.Driver.
func (d *Driver) Shutdown(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	return d.guestOp(ctx, h, vm, "shut down", d.cfg.Timing.Shutdown, true)
}

// Reboot implements driver.Driver.
func (d *Driver) Reboot(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	return d.guestOp(ctx, h, vm, "reboot", d.cfg.Timing.Reboot, false)
}

// Reset implements driver.Driver.
func (d *Driver) Reset(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	return d.guestOp(ctx, h, vm, "reset", d.cfg.Timing.Reset, false)
}

// Undefine implements driver.Driver.
func (d *Driver) Undefine(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, sh := range d.hosts {
		if sh.domains[vm.Uuid] {
			return fmt.Errorf("vm %s is still running on host %s", vm.Name, sh.name)
		}
	}
	return nil
}

// Migrate implements driver.Driver.
func (d *Driver) Migrate(ctx context.Context, vm *acliv1.Vm, src, dst *acliv1.Host, opts driver.MigrateOptions, progress func(*acliv1.MigrationProgress)) error {
	d.mu.Lock()
	ssrc, err := d.upHost(src)
	var sdst *host
	if err == nil {
		sdst, err = d.upHost(dst)
	}
	if err == nil && !ssrc.domains[vm.Uuid] {
		err = fmt.Errorf("vm %s is not running on source host %s", vm.Name, ssrc.name)
	}
	if err == nil && ssrc == sdst {
		err = fmt.Errorf("vm %s is already on host %s", vm.Name, ssrc.name)
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	bw := opts.BandwidthMbps
	if bw <= 0 {
		bw = int64(d.cfg.LinkGbps * 1000)
	}
	model := d.opts.Migration
	if model == nil {
		model = PreCopy
	}
	dirty := d.dirtyRate(vm)
	steps, modelErr := model(vm.MemoryBytes, dirty, bw)
	for _, st := range steps {
		if !opts.Deadline.IsZero() && time.Now().After(opts.Deadline) {
			return fmt.Errorf("migration of vm %s aborted: deadline exceeded in round %d", vm.Name, st.Round)
		}
		if hook := d.opts.BeforeRound; hook != nil {
			if err := hook(ctx, vm, st.Round); err != nil {
				return fmt.Errorf("migration of vm %s aborted: %w", vm.Name, err)
			}
		}
		if err := d.sleep(ctx, st.Duration); err != nil {
			return fmt.Errorf("migration of vm %s aborted: %w", vm.Name, err)
		}
		d.mu.Lock()
		down := !ssrc.up || !sdst.up
		d.mu.Unlock()
		if down {
			return fmt.Errorf("migration of vm %s aborted: a host went down", vm.Name)
		}
		if progress != nil {
			progress(&acliv1.MigrationProgress{
				VmUuid: vm.Uuid, SourceHostUuid: src.Uuid, TargetHostUuid: dst.Uuid,
				Round: int32(st.Round), RemainingBytes: st.RemainingBytes,
				TransferredBytes: st.TransferredBytes, EstimatedDowntimeMs: st.DowntimeMs,
				DirtyRateBytesPerSec: dirty << 20, BandwidthBytesPerSec: bw * 1_000_000 / 8,
			})
		}
	}
	if modelErr != nil {
		return fmt.Errorf("migration of vm %s: %w", vm.Name, modelErr)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !ssrc.up || !sdst.up {
		return fmt.Errorf("migration of vm %s aborted: a host went down", vm.Name)
	}
	// The switch-over is atomic: the VM is on exactly one host at any instant.
	delete(ssrc.domains, vm.Uuid)
	sdst.domains[vm.Uuid] = true
	return nil
}

// TimedCopy is a simpler migration model (sim.Options.Migration): one pass copying the VM's
// memory at the link bandwidth, reported in ten steps, with a nominal 20 ms
// final pause.
func TimedCopy(memBytes, _ /* dirty rate */, bandwidthMbps int64) ([]MigrationStep, error) {
	const parts = 10
	bytesPerSec := float64(bandwidthMbps) * 1e6 / 8
	total := time.Duration(float64(memBytes) / bytesPerSec * float64(time.Second))
	steps := make([]MigrationStep, parts)
	for i := range steps {
		done := memBytes * int64(i+1) / parts
		steps[i] = MigrationStep{Round: 1, TransferredBytes: done, RemainingBytes: memBytes - done, DowntimeMs: 20, Duration: total / parts}
	}
	return steps, nil
}

// Running returns the UUIDs of the VMs the simulator runs on a host.
func (d *Driver) Running(hostUUID string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	if sh := d.hosts[hostUUID]; sh != nil {
		for id := range sh.domains {
			out = append(out, id)
		}
	}
	return out
}

// HostState says whether the simulated host and its CVM are up, as the
// simulator knows it (the manager learns of a failure only from events or
// missed heartbeats). ok is false for a host the driver does not manage.
func (d *Driver) HostState(hostUUID string) (hostUp, cvmUp, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hosts[hostUUID]
	if h == nil {
		return false, false, false
	}
	return h.up, h.up && h.cvmUp, true
}

// fault applies fn to the host under the driver's lock and returns the
// report of the change: kind, stamped now, whatever the host was before
// (a fault on a host already in that state changes nothing, and applying
// its report changes nothing either).
func (d *Driver) fault(hostUUID string, kind driver.EventKind, reason string, fn func(h *host) error) (driver.HostEvent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hosts[hostUUID]
	if h == nil {
		return driver.HostEvent{}, fmt.Errorf("host %s is not managed by the sim driver", hostUUID)
	}
	if err := fn(h); err != nil {
		return driver.HostEvent{}, err
	}
	return driver.HostEvent{Kind: kind, HostUUID: h.uuid, Time: time.Now(), Reason: reason}, nil
}

// FailHost implements driver.FaultInjector: heartbeats stop, the CVM goes
// down with the host and the VMs running there are lost.
func (d *Driver) FailHost(hostUUID string) (driver.HostEvent, error) {
	return d.fault(hostUUID, driver.HostDown, "heartbeats stopped (fault injected)", func(h *host) error {
		if h.up {
			h.up, h.cvmUp = false, false
			clear(h.domains)
		}
		return nil
	})
}

// StopHost makes a host die without a word: its VMs are lost and its
// heartbeats stop, but no event says so. The manager finds out by the
// missed heartbeats, as it would for a power loss. RecoverHost brings it
// back.
func (d *Driver) StopHost(hostUUID string) error {
	_, err := d.fault(hostUUID, driver.HostDown, "", func(h *host) error {
		h.up, h.cvmUp = false, false
		clear(h.domains)
		return nil
	})
	return err
}

// RecoverHost implements driver.FaultInjector: the host and its CVM return
// empty (its VMs were lost when it failed). Like a libvirt host on
// reconnection, a host that comes back reports what it runs (nothing), so
// VMs still recorded running there, which nothing restarted, are recorded
// off.
func (d *Driver) RecoverHost(hostUUID string) (driver.HostEvent, error) {
	at := time.Now()
	back := false
	ev, err := d.fault(hostUUID, driver.HostUp, "host recovered", func(h *host) error {
		if !h.up {
			h.up, h.cvmUp, back = true, true, true
		}
		return nil
	})
	if back {
		d.reportEmpty(hostUUID, at)
	}
	return ev, err
}

// reportEmpty sends a complete VmStates report, read at at, of a host that
// runs nothing. It goes out after the fault's own report is returned, so it
// never waits for the manager to apply that one.
func (d *Driver) reportEmpty(hostUUID string, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.events == nil {
		return
	}
	ev := driver.HostEvent{Kind: driver.VmStates, HostUUID: hostUUID, Time: at, Complete: true}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		select {
		case d.events <- ev:
		case <-d.stop:
		}
	}()
}

// FailCvm implements driver.FaultInjector.
func (d *Driver) FailCvm(hostUUID string) (driver.HostEvent, error) {
	return d.fault(hostUUID, driver.CvmDown, "cvm stopped (fault injected)", func(h *host) error {
		h.cvmUp = false
		return nil
	})
}

// RecoverCvm implements driver.FaultInjector. A CVM cannot run on a down host.
func (d *Driver) RecoverCvm(hostUUID string) (driver.HostEvent, error) {
	return d.fault(hostUUID, driver.CvmUp, "cvm recovered", func(h *host) error {
		if !h.up {
			return fmt.Errorf("host %s is down; recover the host first", h.name)
		}
		h.cvmUp = true
		return nil
	})
}

// Close implements driver.Driver.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.stop)
	d.mu.Unlock()
	d.wg.Wait()
	d.mu.Lock()
	if d.events != nil {
		close(d.events)
	}
	d.mu.Unlock()
	return nil
}
