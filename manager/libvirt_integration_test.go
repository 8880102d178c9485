package manager_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager"
	"github.com/acli-dev/acli/manager/driver/libvirt"
	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
	"github.com/acli-dev/acli/manager/ha"
	"github.com/acli-dev/acli/manager/managertest"
)

// The manager on real libvirtd hosts (libvirtharness: one privileged
// libvirtd per loopback address, QEMU/TCG guests of 64 MiB with no disk and
// no NIC). Each test starts its own hosts (about 0.2 s each, in parallel),
// so a test that kills a daemon cannot disturb another.

// lvCluster is a manager driving real libvirt hosts, with direct
// connections to each host to check what libvirt really runs.
type lvCluster struct {
	hosts *libvirtharness.Cluster
	h     *managertest.Harness
	c     clients
	conn  map[string]*libvirt.Conn // by host name
	uuid  map[string]string        // host name -> host UUID
}

// lvHeartbeat keeps the heartbeat window at the manager's 2 s floor.
const lvHeartbeat = 200 * time.Millisecond

// failureLog is a logger whose warnings and errors (a host marked down, a
// connection cut) are printed only when the test fails: they say why a
// flaky run went wrong.
func failureLog(t testing.TB) *slog.Logger {
	var buf syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("manager and driver log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func startLibvirt(t testing.TB, n int, cfg libvirt.Config) *lvCluster {
	t.Helper()
	if tt, ok := t.(*testing.T); ok {
		tt.Parallel() // own hosts on their own addresses: nothing shared but the CPUs
	}
	var hosts *libvirtharness.Cluster
	t.Cleanup(func() { // runs last, after the hosts stopped
		if hosts != nil {
			t.Logf("CPU time of the %d libvirtd hosts and their QEMUs: %v", n, hosts.CPUTime().Round(time.Millisecond))
		}
	})
	hosts = libvirtharness.StartT(t, n) // stopped after the manager: cleanups run last first
	cfg.HeartbeatInterval = lvHeartbeat
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = time.Second // the BIOS-only guests ignore ACPI
	}
	log := failureLog(t)
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	drv := libvirt.NewDriver(cfg)
	h := managertest.New(t, managertest.Options{Driver: drv, Logger: log})
	lc := &lvCluster{hosts: hosts, h: h, c: newClients(h.Conn), conn: map[string]*libvirt.Conn{}, uuid: map[string]string{}}
	for _, hh := range hosts.Hosts {
		task := await(t, lc.c)(lc.c.host.AddHost(bg, &acliv1.AddHostRequest{Name: hh.Name, HypervisorIp: hh.Addr, LibvirtUri: hh.TCPURI()}))
		if task.Entities[0].Uuid != hh.UUID {
			t.Fatalf("host.add %s: task names uuid %q, want the host_uuid %s", hh.Name, task.Entities[0].Uuid, hh.UUID)
		}
		lc.uuid[hh.Name] = hh.UUID
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		conn, err := libvirt.Dial(ctx, hh.TCPURI(), libvirt.DialOptions{})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		lc.conn[hh.Name] = conn
	}
	return lc
}

// host returns the harness host by name.
func (lc *lvCluster) host(name string) *libvirtharness.Host {
	for _, h := range lc.hosts.Hosts {
		if h.Name == name {
			return h
		}
	}
	panic("no harness host " + name)
}

// running lists the hosts whose libvirtd runs the domain of a VM.
func (lc *lvCluster) running(t testing.TB, vmUUID string) []string {
	t.Helper()
	var out []string
	for _, hh := range lc.hosts.Hosts {
		if !hh.Running() {
			continue
		}
		d, err := lc.conn[hh.Name].Lookup(vmUUID)
		if err == nil && d.State.Active() {
			out = append(out, hh.Name)
		} else if err != nil && !errors.Is(err, libvirt.ErrNotFound) {
			t.Fatalf("lookup %s on %s: %v", vmUUID, hh.Name, err)
		}
	}
	return out
}

// defined lists the hosts that have any definition of the VM's domain.
func (lc *lvCluster) defined(t testing.TB, vmUUID string) []string {
	t.Helper()
	var out []string
	for _, hh := range lc.hosts.Hosts {
		if _, err := lc.conn[hh.Name].Lookup(vmUUID); err == nil {
			out = append(out, hh.Name)
		}
	}
	return out
}

// runsOn asserts that the VM is recorded on host and that only that
// host's libvirtd runs it.
func (lc *lvCluster) runsOn(t testing.TB, vm, host string) *acliv1.Vm {
	t.Helper()
	v, err := lc.c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: vm})
	if err != nil {
		t.Fatal(err)
	}
	if v.PowerState != acliv1.PowerState_kOn || v.HostName != host {
		t.Fatalf("vm %s recorded %s on %q, want kOn on %s", vm, v.PowerState, v.HostName, host)
	}
	if got := lc.running(t, v.Uuid); len(got) != 1 || got[0] != host {
		t.Fatalf("vm %s: libvirt runs it on %v, want only %s", vm, got, host)
	}
	return v
}

func (lc *lvCluster) vmOn(t testing.TB, name, host string) *acliv1.Vm {
	t.Helper()
	task := await(t, lc.c)(lc.c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: name, MemoryBytes: 64 << 20, NumVcpus: 1}))
	id := task.Entities[0].Uuid
	await(t, lc.c)(lc.c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: id, Transition: acliv1.PowerTransition_kPowerOn, Host: host}))
	if host != "" {
		lc.runsOn(t, name, host)
	}
	v, err := lc.c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: id})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// await is succeed for tests and benchmarks alike.
func await(t testing.TB, c clients) func(*acliv1.Task, error) *acliv1.Task {
	return func(task *acliv1.Task, err error) *acliv1.Task {
		t.Helper()
		if err != nil {
			t.Fatalf("starting task: %v", err)
		}
		stream, err := c.task.WatchTask(bg, &acliv1.GetTaskRequest{Uuid: task.Uuid})
		if err != nil {
			t.Fatal(err)
		}
		final := task
		for {
			got, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("watch: %v", err)
			}
			final = got
		}
		if final.Status != acliv1.TaskStatus_kSucceeded {
			t.Fatalf("task %s %s: %s (%s)", final.Operation, final.Status, final.Error, codes.Code(final.ErrorCode))
		}
		return final
	}
}

// eventually polls cond every 20 ms for up to d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func (lc *lvCluster) vmState(t testing.TB, vm string) (acliv1.PowerState, string) {
	t.Helper()
	v, err := lc.c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: vm})
	if err != nil {
		t.Fatal(err)
	}
	return v.PowerState, v.HostName
}

func (lc *lvCluster) nodeState(t testing.TB, host string) acliv1.NodeState {
	t.Helper()
	h, err := lc.c.host.GetHost(bg, &acliv1.GetHostRequest{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	return h.NodeState
}

// failed waits for a task and requires it to fail with the code and a
// message fragment.
func failed(t *testing.T, c clients, code codes.Code, fragment string) func(*acliv1.Task, error) *acliv1.Task {
	return func(task *acliv1.Task, err error) *acliv1.Task {
		t.Helper()
		final := wait(t, c, task, err)
		if final.Status != acliv1.TaskStatus_kFailed || codes.Code(final.ErrorCode) != code || !strings.Contains(final.Error, fragment) {
			t.Fatalf("task %s %s %s: %q; want kFailed %s containing %q", final.Operation, final.Status, codes.Code(final.ErrorCode), final.Error, code, fragment)
		}
		return final
	}
}

func TestLibvirtHostsJoinAndLeave(t *testing.T) {
	lc := startLibvirt(t, 2, libvirt.Config{})
	c := lc.c
	hosts, err := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts.Hosts) != 2 {
		t.Fatalf("%d hosts, want 2", len(hosts.Hosts))
	}
	for _, h := range hosts.Hosts {
		hh := lc.host(h.Name)
		if h.Uuid != hh.UUID || h.HypervisorIp != hh.Addr || h.LibvirtUri != hh.TCPURI() || h.CpuCores < 1 || h.MemoryBytes < 64<<20 ||
			h.NodeState != acliv1.NodeState_AcropolisNormal || !h.Schedulable || h.HypervisorDnsName != "acli-"+h.Name {
			t.Errorf("host %s as recorded: %+v (harness: uuid %s on %s)", h.Name, h, hh.UUID, hh.Addr)
		}
		// Discovered through libvirt's node devices: a PCI function of this
		// machine is offered only when no host driver holds it (here the
		// kernel drives them all: its virtio disk and NIC are never offered).
		g, err := c.host.GetHost(bg, &acliv1.GetHostRequest{Host: h.Name})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range g.Devices {
			l, err := os.Readlink("/sys/bus/pci/devices/" + d.Address + "/driver")
			if _, serr := os.Stat("/sys/bus/pci/devices/" + d.Address); serr != nil || (err == nil && !slices.Contains([]string{"vfio-pci", "pci-stub"}, filepath.Base(l))) {
				t.Errorf("host %s offers %v, which this machine's kernel drives (%s) or has not: %v", h.Name, d, l, serr)
			}
		}
	}
	a := lc.hosts.Hosts[0]

	// Refusals: nothing recorded, each a one-line reason.
	wantCode(t, errOf(c.host.AddHost(bg, &acliv1.AddHostRequest{Name: "h9", HypervisorIp: "127.0.0.250", LibvirtUri: "http://127.0.0.250/"})),
		codes.InvalidArgument, `unsupported driver "http"`)
	wantCode(t, errOf(c.host.AddHost(bg, &acliv1.AddHostRequest{Name: "h9", HypervisorIp: "127.0.0.250"})),
		codes.InvalidArgument, "libvirt_uri is required")
	wantCode(t, errOf(c.host.AddHost(bg, &acliv1.AddHostRequest{Name: a.Name, HypervisorIp: "127.0.0.250", LibvirtUri: "qemu+tcp://127.0.0.250/system"})),
		codes.AlreadyExists, a.Name)
	wantCode(t, errOf(c.host.AddHost(bg, &acliv1.AddHostRequest{Name: "h9", HypervisorIp: a.Addr, LibvirtUri: a.TCPURI()})),
		codes.AlreadyExists, a.Addr)
	// The same libvirtd under another name and address: its host_uuid gives it away.
	failed(t, c, codes.FailedPrecondition, "already in the cluster as "+a.Name)(
		c.host.AddHost(bg, &acliv1.AddHostRequest{Name: "h9", HypervisorIp: "127.0.0.250", LibvirtUri: a.TCPURI()}))
	// Nobody listens there: the task fails and names the address.
	failed(t, c, codes.Unknown, "127.0.0.250")(
		c.host.AddHost(bg, &acliv1.AddHostRequest{Name: "h9", HypervisorIp: "127.0.0.250", LibvirtUri: "qemu+tcp://127.0.0.250:1/system"}))
	if hosts, _ := c.host.ListHosts(bg, &acliv1.ListHostsRequest{}); len(hosts.Hosts) != 2 {
		t.Fatalf("refused joins left %d hosts", len(hosts.Hosts))
	}

	// A host running a VM cannot leave; once the VM is off it can, and its
	// libvirtd can join again (over its unix socket this time).
	wantCode(t, errOf(c.host.RemoveHost(bg, &acliv1.RemoveHostRequest{Host: "h9"})), codes.NotFound, "h9")
	lc.vmOn(t, "pinned", a.Name)
	wantCode(t, errOf(c.host.RemoveHost(bg, &acliv1.RemoveHostRequest{Host: a.Name})), codes.FailedPrecondition,
		"host "+a.Name+" runs 1 VM(s) (pinned)")
	// These hosts declare no passthrough devices: a GPU is refused by name
	// and the VM keeps running as it was.
	wantCode(t, errOf(c.vm.AssignDevice(bg, &acliv1.AssignDeviceRequest{Vm: "pinned", Kind: acliv1.DeviceKind_kGpuPassthrough, Device: "Nvidia_Tesla_M60"})),
		codes.NotFound, `gpu "Nvidia_Tesla_M60" not found: no host has a passthrough GPU`)
	succeed(t, c)(power(c, "pinned", acliv1.PowerTransition_kPowerOff))
	succeed(t, c)(c.host.RemoveHost(bg, &acliv1.RemoveHostRequest{Host: a.Addr}))
	wantCode(t, errOf(c.host.GetHost(bg, &acliv1.GetHostRequest{Host: a.Name})), codes.NotFound, a.Name)
	succeed(t, c)(c.host.AddHost(bg, &acliv1.AddHostRequest{Name: a.Name, HypervisorIp: a.Addr, LibvirtUri: a.UnixURI()}))
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "pinned", Transition: acliv1.PowerTransition_kPowerOn, Host: a.Name}))
	lc.runsOn(t, "pinned", a.Name)
}

// Every power transition is the libvirt operation it names, and a domain
// changed behind clusterd's back is reflected in the model.
func TestLibvirtLifecycle(t *testing.T) {
	lc := startLibvirt(t, 2, libvirt.Config{})
	c := lc.c
	h1, h2 := lc.hosts.Hosts[0].Name, lc.hosts.Hosts[1].Name

	// Created: a record only; a VM that is off belongs to no host.
	v := createVm(t, c, "web", 64<<20)
	if d := lc.defined(t, v.Uuid); len(d) != 0 {
		t.Fatalf("a created VM is defined on %v", d)
	}
	begin := time.Now()
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "web", Transition: acliv1.PowerTransition_kPowerOn, Host: h2}))
	t.Logf("vm.on (define+start) through the manager: %v", time.Since(begin).Round(time.Millisecond))
	lc.runsOn(t, "web", h2)
	d, err := lc.conn[h2].Lookup(v.Uuid)
	if err != nil || d.Name != "web" || !d.Persistent {
		t.Fatalf("domain of web on %s: %+v %v", h2, d, err)
	}

	for _, tr := range []acliv1.PowerTransition{acliv1.PowerTransition_kReboot, acliv1.PowerTransition_kReset} {
		succeed(t, c)(power(c, "web", tr))
		lc.runsOn(t, "web", h2)
	}
	// The guest has no OS and ignores ACPI: after the shutdown timeout it
	// is powered off, and its definition goes with it.
	begin = time.Now()
	succeed(t, c)(power(c, "web", acliv1.PowerTransition_kShutdown))
	if took := time.Since(begin); took < time.Second {
		t.Errorf("shutdown returned after %v, before the 1 s ACPI timeout", took)
	}
	if st, host := lc.vmState(t, "web"); st != acliv1.PowerState_kOff || host != "" {
		t.Fatalf("after shutdown: %s on %q", st, host)
	}
	if d := lc.defined(t, v.Uuid); len(d) != 0 {
		t.Fatalf("after shutdown the domain is still defined on %v", d)
	}

	// On where the scheduler says, then off: destroy and undefine.
	succeed(t, c)(power(c, "web", acliv1.PowerTransition_kPowerOn))
	_, host := lc.vmState(t, "web")
	lc.runsOn(t, "web", host)
	succeed(t, c)(power(c, "web", acliv1.PowerTransition_kPowerOff))
	if got := lc.defined(t, v.Uuid); len(got) != 0 {
		t.Fatalf("after vm.off the domain is still defined on %v", got)
	}

	// Behind clusterd's back: virsh destroy, then virsh start.
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "web", Transition: acliv1.PowerTransition_kPowerOn, Host: h1}))
	if err := lc.conn[h1].Destroy(v.Uuid); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 5*time.Second, "a domain destroyed outside clusterd is not recorded off", func() bool {
		st, _ := lc.vmState(t, "web")
		return st == acliv1.PowerState_kOff
	})
	t.Logf("domain destroyed with the libvirt API: recorded off after %v", took.Round(time.Millisecond))
	if err := lc.conn[h1].Start(v.Uuid); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a domain started outside clusterd is not recorded on", func() bool {
		st, host := lc.vmState(t, "web")
		return st == acliv1.PowerState_kOn && host == h1
	})
	lc.runsOn(t, "web", h1)
	// Not fought: the manager neither stopped it nor started a second copy.
	time.Sleep(3 * lvHeartbeat)
	lc.runsOn(t, "web", h1)

	// A running VM cannot be deleted; off, delete leaves no definition anywhere.
	wantCode(t, errOf(c.vm.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "web"})), codes.FailedPrecondition, "web")
	succeed(t, c)(power(c, "web", acliv1.PowerTransition_kPowerOff))
	succeed(t, c)(c.vm.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "web"}))
	if got := lc.defined(t, v.Uuid); len(got) != 0 {
		t.Fatalf("after vm.delete the domain is still defined on %v", got)
	}
}

// migrateWatched migrates a VM and returns the final task with every
// progress sample the task stream carried.
func migrateWatched(t *testing.T, c clients, req *acliv1.MigrateVmRequest) (*acliv1.Task, []*acliv1.MigrationProgress, time.Duration) {
	t.Helper()
	begin := time.Now()
	task, err := c.vm.MigrateVm(bg, req)
	if err != nil {
		t.Fatalf("migrate %s: %v", req.Vm, err)
	}
	stream, err := c.task.WatchTask(bg, &acliv1.GetTaskRequest{Uuid: task.Uuid})
	if err != nil {
		t.Fatal(err)
	}
	var samples []*acliv1.MigrationProgress
	final := task
	for {
		got, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		final = got
		if p := got.Migration; p != nil && (len(samples) == 0 || !proto.Equal(samples[len(samples)-1], p)) {
			samples = append(samples, p)
		}
	}
	return final, samples, time.Since(begin)
}

func TestLibvirtLiveMigration(t *testing.T) {
	lc := startLibvirt(t, 3, libvirt.Config{})
	c := lc.c
	h1, h2 := lc.hosts.Hosts[0].Name, lc.hosts.Hosts[1].Name
	v := lc.vmOn(t, "mover", h1)

	// To a named host, and back, then twice to the scheduler's choice.
	for i, to := range []string{h2, h1, "", ""} {
		_, from := lc.vmState(t, "mover")
		final, samples, took := migrateWatched(t, c, &acliv1.MigrateVmRequest{Vm: "mover", Host: to})
		if final.Status != acliv1.TaskStatus_kSucceeded {
			t.Fatalf("migration %d: %s %s", i, final.Status, final.Error)
		}
		_, now := lc.vmState(t, "mover")
		if now == from || (to != "" && now != to) {
			t.Fatalf("migration %d from %s to %q: now on %s", i, from, to, now)
		}
		lc.runsOn(t, "mover", now)
		if got := lc.defined(t, v.Uuid); len(got) != 1 {
			t.Fatalf("after migration %d the domain is defined on %v, want only %s (undefine-source)", i, got, now)
		}
		if len(samples) == 0 {
			t.Fatalf("migration %d: no progress on the task", i)
		}
		last := samples[len(samples)-1]
		if last.Round < 1 || last.TransferredBytes == 0 || last.EstimatedDowntimeMs <= 0 ||
			last.SourceHostUuid != lc.uuid[from] || last.TargetHostUuid != lc.uuid[now] || last.VmUuid != v.Uuid {
			t.Errorf("migration %d: final progress %+v", i, last)
		}
		if !strings.Contains(messages(final), "downtime") {
			t.Errorf("migration %d: task messages lack the downtime: %v", i, final.Messages)
		}
		t.Logf("migration %s -> %s: %v wall (task), %d round(s), %d bytes, downtime %d ms, %d progress samples",
			from, now, took.Round(time.Millisecond), last.Round, last.TransferredBytes, last.EstimatedDowntimeMs, len(samples))
	}

	// The scheduler never answers "no migration needed", and a down or
	// unknown target is refused before anything moves.
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "mover", Host: "h9"})), codes.NotFound, "h9")
	_, cur := lc.vmState(t, "mover")
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "mover", Host: cur})), codes.FailedPrecondition, "")
	lc.runsOn(t, "mover", cur)
}

// Past the deadline (clusterd --libvirt-migration-timeout) the job is
// aborted and the VM keeps running on its source.
func TestLibvirtMigrationAbortedStaysOnSource(t *testing.T) {
	lc := startLibvirt(t, 2, libvirt.Config{MigrationTimeout: 300 * time.Millisecond})
	c := lc.c
	h1, h2 := lc.hosts.Hosts[0].Name, lc.hosts.Hosts[1].Name
	v := lc.vmOn(t, "stayer", h1)
	// 8 Mb/s is libvirt's floor of 1 MiB/s: the ~0.6 MB a 64 MiB idle guest
	// sends take longer than the deadline.
	final, _, took := migrateWatched(t, c, &acliv1.MigrateVmRequest{Vm: "stayer", Host: h2, BandwidthMbps: 8})
	if final.Status != acliv1.TaskStatus_kFailed || !strings.Contains(final.Error, "migration aborted") ||
		!strings.Contains(final.Error, "stays on host "+h1) {
		t.Fatalf("throttled migration past its deadline: %s %q", final.Status, final.Error)
	}
	t.Logf("aborted migration: task failed after %v: %s", took.Round(time.Millisecond), final.Error)
	lc.runsOn(t, "stayer", h1)
	if got := lc.defined(t, v.Uuid); len(got) != 1 || got[0] != h1 {
		t.Fatalf("after the abort the domain is defined on %v, want only %s", got, h1)
	}
	// Nothing is left locked: the next task on the VM runs (offline, since
	// even an unthrottled live migration may outlast 300 ms on a loaded machine).
	live := false
	succeed(t, c)(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "stayer", Host: h2, Live: &live}))
	lc.runsOn(t, "stayer", h2)
}

// Maintenance evacuates real domains by live migration and brings them
// back on exit.
func TestLibvirtMaintenance(t *testing.T) {
	lc := startLibvirt(t, 3, libvirt.Config{})
	c := lc.c
	h1 := lc.hosts.Hosts[0].Name
	var vms []*acliv1.Vm
	for i := range 4 {
		vms = append(vms, lc.vmOn(t, fmt.Sprintf("guest%d", i+1), h1))
	}
	begin := time.Now()
	enterTask := succeed(t, c)(enter(c, h1, 0))
	entered := time.Since(begin)
	if st := lc.nodeState(t, h1); st != acliv1.NodeState_EnteredMaintenanceMode {
		t.Fatalf("%s after enter: %s", h1, st)
	}
	for _, v := range vms {
		st, host := lc.vmState(t, v.Name)
		if st != acliv1.PowerState_kOn || host == h1 || host == "" {
			t.Fatalf("%s after enter: %s on %q", v.Name, st, host)
		}
		lc.runsOn(t, v.Name, host)
	}
	if doms, err := lc.conn[h1].List(); err != nil || len(doms) != 0 {
		t.Fatalf("%s still has domains after evacuation: %+v %v", h1, doms, err)
	}
	for _, m := range enterTask.Messages {
		if strings.Contains(m, "downtime") {
			t.Logf("enter: %s", m)
		}
	}
	// Nothing lands on a host in maintenance.
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: vms[0].Name, Host: h1})), codes.FailedPrecondition, "")

	begin = time.Now()
	succeed(t, c)(c.host.ExitMaintenanceMode(bg, &acliv1.ExitMaintenanceModeRequest{Host: h1}))
	exited := time.Since(begin)
	for _, v := range vms {
		lc.runsOn(t, v.Name, h1)
	}
	t.Logf("enter_maintenance_mode of %s with 4 real guests: %v; exit (all 4 back): %v",
		h1, entered.Round(time.Millisecond), exited.Round(time.Millisecond))
}

// A killed libvirtd: the host goes down within the heartbeat window; the
// fence agent powers the host off (no QEMU of it runs any more), then HA
// restarts its VMs elsewhere; when the host is back it is usable again.
func TestLibvirtHostFailureHA(t *testing.T) {
	var cluster atomic.Pointer[lvCluster]
	fenced := make(chan string, 4)
	lc := startLibvirt(t, 3, libvirt.Config{FenceHost: func(ctx context.Context, h *acliv1.Host) error {
		fenced <- h.Name
		return cluster.Load().host(h.Name).PowerOff()
	}})
	cluster.Store(lc)
	c := lc.c
	h3 := lc.host(lc.hosts.Hosts[2].Name)
	a := lc.vmOn(t, "ha-a", h3.Name)
	b := lc.vmOn(t, "ha-b", h3.Name)
	timeout := manager.DefaultHeartbeatMisses * lvHeartbeat
	timeout = max(timeout, 2*time.Second)

	killed := time.Now()
	if err := h3.Kill(); err != nil {
		t.Fatal(err)
	}
	down := eventually(t, timeout+5*time.Second, h3.Name+" not marked down", func() bool {
		return lc.nodeState(t, h3.Name) == acliv1.NodeState_kNodeDown
	})
	t.Logf("libvirtd of %s killed: host down after %v (heartbeat timeout %v)", h3.Name, down.Round(time.Millisecond), timeout)
	// Follow the HA task to its end rather than bounding it in time: real
	// guests start one after another, seconds each on a loaded machine.
	begin := time.Now()
	if final := haTask(t, c, h3.Name); final.Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("HA task %v: %s", final.Status, final.Error)
	}
	restarted := time.Since(begin)
	for _, v := range []*acliv1.Vm{a, b} {
		if st, host := lc.vmState(t, v.Name); st != acliv1.PowerState_kOn || host == h3.Name || host == "" {
			t.Fatalf("%s after HA: %s on %q", v.Name, st, host)
		}
	}
	t.Logf("HA fenced %s and restarted 2 VMs %v after the host was marked down (%v after the kill)", h3.Name, restarted.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	if got := <-fenced; got != h3.Name {
		t.Fatalf("fence agent called for %s, want %s", got, h3.Name)
	}
	for _, v := range []*acliv1.Vm{a, b} {
		_, host := lc.vmState(t, v.Name)
		lc.runsOn(t, v.Name, host)
	}

	// The host boots again with no guest running and is in service again.
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := h3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	conn := lc.redial(t, h3)
	eventually(t, 10*time.Second, h3.Name+" not back in service", func() bool {
		return lc.nodeState(t, h3.Name) == acliv1.NodeState_AcropolisNormal
	})
	if doms, err := conn.List(); err != nil {
		t.Fatal(err)
	} else {
		for _, d := range doms {
			if d.State.Active() {
				t.Fatalf("%s runs %s after its fence", h3.Name, d.Name)
			}
		}
	}
	t.Logf("%s back in service %v after its daemon answered", h3.Name, time.Since(back).Round(time.Millisecond))
	for _, v := range []*acliv1.Vm{a, b} {
		_, host := lc.vmState(t, v.Name)
		lc.runsOn(t, v.Name, host)
	}
	// Usable: a VM migrates onto it, and a new one starts there.
	final, _, _ := migrateWatched(t, c, &acliv1.MigrateVmRequest{Vm: "ha-a", Host: h3.Name})
	if final.Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("migration back to %s: %s", h3.Name, final.Error)
	}
	lc.runsOn(t, "ha-a", h3.Name)
	lc.vmOn(t, "ha-new", h3.Name)
}

// With no fence agent, a killed libvirtd proves nothing: its QEMUs run on.
// HA restarts nothing, the VMs stay recorded on the down host with an event
// saying why, and when the daemon is back each VM runs once, where it was.
func TestLibvirtDeadDaemonIsNoFence(t *testing.T) {
	lc := startLibvirt(t, 3, libvirt.Config{})
	h3 := lc.host(lc.hosts.Hosts[2].Name)
	a := lc.vmOn(t, "ha-a", h3.Name)
	b := lc.vmOn(t, "ha-b", h3.Name)
	timeout := max(manager.DefaultHeartbeatMisses*lvHeartbeat, 2*time.Second)
	if err := h3.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout+5*time.Second, h3.Name+" not marked down", func() bool {
		return lc.nodeState(t, h3.Name) == acliv1.NodeState_kNodeDown
	})
	eventually(t, 10*time.Second, "no event says why HA waits", func() bool {
		evs, err := lc.c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "ha"})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs.Events {
			if strings.Contains(e.Message, "is not fenced") && strings.Contains(e.Message, "no fence agent") {
				n++
			}
		}
		return n == 2
	})
	time.Sleep(2 * time.Second) // HA tries again meanwhile
	for _, v := range []*acliv1.Vm{a, b} {
		if st, host := lc.vmState(t, v.Name); st != acliv1.PowerState_kOn || host != h3.Name {
			t.Fatalf("vm %s not fenced, yet recorded %v on %q", v.Name, st, host)
		}
		if got := lc.running(t, v.Uuid); len(got) != 0 {
			t.Fatalf("vm %s started on %v while its copy on %s was not fenced", v.Name, got, h3.Name)
		}
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := h3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	lc.redial(t, h3)
	eventually(t, 10*time.Second, h3.Name+" not back in service", func() bool {
		return lc.nodeState(t, h3.Name) == acliv1.NodeState_AcropolisNormal
	})
	for _, v := range []*acliv1.Vm{a, b} {
		lc.runsOn(t, v.Name, h3.Name)
	}
}

// HA's fence of a VM on a host recorded down, made once the driver has
// reconnected to the host's daemon (before the manager, behind on its
// heartbeats, records it up): the host answers, so the VM that runs there
// is not powered off. HA powered it off there and the VM, left recorded on
// the host, ran nowhere (TestLibvirtDeadDaemonIsNoFence's "libvirt runs it
// on []" under load).
func TestLibvirtFenceSparesAHostThatAnswersAgain(t *testing.T) {
	t.Parallel()
	hh := libvirtharness.StartT(t, 1).Hosts[0]
	drv := libvirt.NewDriver(libvirt.Config{HeartbeatInterval: lvHeartbeat, Logger: failureLog(t)})
	host := &acliv1.Host{Uuid: hh.UUID, Name: hh.Name, HypervisorIp: hh.Addr, LibvirtUri: hh.TCPURI()}
	events, err := drv.Start(bg, []*acliv1.Host{host}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range events {
		}
	}()
	t.Cleanup(func() { drv.Close() })
	eventually(t, 10*time.Second, "driver not connected", func() bool { return drv.Answers(host) })
	vm := &acliv1.Vm{Uuid: "6f1c0a52-0000-4000-8000-0000000000f1", Name: "kept", MemoryBytes: 64 << 20, NumVcpus: 1}
	if err := drv.PowerOn(bg, host, vm); err != nil {
		t.Fatal(err)
	}

	if err := hh.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "driver still connected to a killed daemon", func() bool { return !drv.Answers(host) })
	if err := ha.Fence(bg, drv, host, vm); err == nil {
		t.Fatal("fenced through a dead daemon with no fence agent")
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := hh.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "driver not connected again", func() bool { return drv.Answers(host) })
	if err := ha.Fence(bg, drv, host, vm); err == nil || !strings.Contains(err.Error(), "answers again") {
		t.Fatalf("fence of a host that answers again: %v", err)
	}
	ctx, cancel = context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	conn, err := libvirt.Dial(ctx, hh.TCPURI(), libvirt.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if d, err := conn.Lookup(vm.Uuid); err != nil || !d.State.Active() {
		t.Fatalf("vm %s after the fence: %v %v, want running", vm.Name, d, err)
	}
	if err := drv.PowerOff(bg, host, vm); err != nil {
		t.Fatal(err)
	}
}

// redial replaces the test's own connection to a restarted host.
func (lc *lvCluster) redial(t *testing.T, h *libvirtharness.Host) *libvirt.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	conn, err := libvirt.Dial(ctx, h.TCPURI(), libvirt.DialOptions{})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	lc.conn[h.Name] = conn
	return conn
}

// A restarted clusterd reconnects to the recorded hosts and takes what
// they run as the truth: a domain destroyed while it was away is recorded
// off, one still running stays on its host.
func TestLibvirtRestartReconciles(t *testing.T) {
	lc := startLibvirt(t, 2, libvirt.Config{})
	h1, h2 := lc.hosts.Hosts[0].Name, lc.hosts.Hosts[1].Name
	lc.vmOn(t, "kept", h1)
	gone := lc.vmOn(t, "gone", h2)
	lc.h.Stop()
	if err := lc.conn[h2].Destroy(gone.Uuid); err != nil {
		t.Fatal(err)
	}

	log := failureLog(t)
	drv := libvirt.NewDriver(libvirt.Config{HeartbeatInterval: lvHeartbeat, Logger: log})
	lc.h = managertest.New(t, managertest.Options{Driver: drv, Dir: lc.h.Dir, Logger: log})
	lc.c = newClients(lc.h.Conn)
	took := eventually(t, 10*time.Second, "the domain destroyed while clusterd was down is not recorded off", func() bool {
		st, _ := lc.vmState(t, "gone")
		return st == acliv1.PowerState_kOff
	})
	t.Logf("after the restart: reconciled in %v", took.Round(time.Millisecond))
	lc.runsOn(t, "kept", h1)
	for _, h := range []string{h1, h2} {
		if st := lc.nodeState(t, h); st != acliv1.NodeState_AcropolisNormal {
			t.Fatalf("%s after the restart: %s", h, st)
		}
	}
	// And it drives them as before.
	final, _, _ := migrateWatched(t, lc.c, &acliv1.MigrateVmRequest{Vm: "kept", Host: h2})
	if final.Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("migration after the restart: %s", final.Error)
	}
	lc.runsOn(t, "kept", h2)
}

// BenchmarkLibvirtMaintenance4Guests evacuates a host running four 64 MiB
// guests by live migration and brings them back, reporting each half.
func BenchmarkLibvirtMaintenance4Guests(b *testing.B) {
	lc := startLibvirt(b, 3, libvirt.Config{})
	h1 := lc.hosts.Hosts[0].Name
	for i := range 4 {
		lc.vmOn(b, fmt.Sprintf("guest%d", i+1), h1)
	}
	var in, out time.Duration
	for b.Loop() {
		begin := time.Now()
		await(b, lc.c)(lc.c.host.EnterMaintenanceMode(bg, &acliv1.EnterMaintenanceModeRequest{Host: h1}))
		in += time.Since(begin)
		begin = time.Now()
		await(b, lc.c)(lc.c.host.ExitMaintenanceMode(bg, &acliv1.ExitMaintenanceModeRequest{Host: h1}))
		out += time.Since(begin)
	}
	b.ReportMetric(float64(in.Milliseconds())/float64(b.N), "enter-ms/op")
	b.ReportMetric(float64(out.Milliseconds())/float64(b.N), "exit-ms/op")
}
