package manager_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
)

// gpuPair is 3 hosts: h1 and h3 have one Nvidia Tesla M60 each, h2 none;
// h2 has the most memory, so placement by memory alone picks it.
func gpuPair(t *testing.T) (clients, *managertest.Harness) {
	m60 := []sim.DeviceSpec{{Kind: "gpu", Vendor: "Nvidia", Model: "Tesla_M60"}}
	h := managertest.New(t, managertest.Options{Sim: &sim.Config{HostList: []sim.HostSpec{
		{Devices: m60}, {MemoryGiB: 512}, {Devices: m60},
	}}})
	return newClients(h.Conn), h
}

// gpuVmOn creates a VM with a GPU and powers it on host.
func gpuVmOn(t *testing.T, c clients, name string, mem int64, host string) *acliv1.Vm {
	t.Helper()
	createVm(t, c, name, mem)
	succeed(t, c)(c.vm.AssignDevice(bg, gpu(name)))
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: name, Transition: acliv1.PowerTransition_kPowerOn, Host: host}))
	return getVm(t, c, name)
}

// onItsGpu fails unless vm runs on host holding that host's GPU.
func onItsGpu(t *testing.T, c clients, vm, host string) {
	t.Helper()
	v := getVm(t, c, vm)
	hd := getHost(t, c, host)
	if v.HostName != host || v.PowerState != acliv1.PowerState_kOn || len(v.Devices) != 1 || v.Devices[0].Address != hd.Devices[0].Address || hd.Devices[0].HeldByVmName != vm {
		t.Fatalf("vm %s on %s (%v) with %v; %s's devices %v", vm, v.HostName, v.PowerState, v.Devices, host, hd.Devices)
	}
}

// HA restarts a GPU VM on the host with a free GPU, not where the memory is.
func TestHARestartPlacesByDevice(t *testing.T) {
	c, h := gpuPair(t)
	gpuVmOn(t, c, "g1", 8*gib, "h1")
	if _, err := c.sim.FailHost(bg, &acliv1.SimHostRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	final := haTask(t, c, "h1")
	if final.Status != acliv1.TaskStatus_kSucceeded || !strings.Contains(messages(final), "vm g1 restarted on h3 (127.20.0.23)") {
		t.Fatalf("ha: %v %q", final.Status, messages(final))
	}
	onItsGpu(t, c, "g1", "h3")
	checkInvariants(t, h)
}

// An offline move takes a GPU VM to a host with a free GPU, bound to it; a
// named host without one is refused before the VM stops.
func TestOfflineMigrationPlacesByDevice(t *testing.T) {
	c, h := gpuPair(t)
	gpuVmOn(t, c, "g1", 8*gib, "h1")
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "g1", Host: "h2", Live: proto.Bool(false)})), codes.FailedPrecondition,
		"cannot move vm g1 to h2 (127.20.0.22): no free GPU Nvidia_Tesla_M60")
	onItsGpu(t, c, "g1", "h1")
	succeed(t, c)(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "g1", Live: proto.Bool(false)}))
	onItsGpu(t, c, "g1", "h3")
	// Both GPUs taken: no host can take g2 offline.
	gpuVmOn(t, c, "g2", 4*gib, "h1")
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "g2", Live: proto.Bool(false)})), codes.FailedPrecondition,
		"h3 (127.20.0.23): no free GPU Nvidia_Tesla_M60")
	checkInvariants(t, h)
}

// Cold maintenance moves a GPU VM offline to a host with a free GPU; live
// maintenance still lists it as a blocker, naming mode=cold as what lifts
// it (with one GPU in the cluster, TestGpuPassthrough's hint does not).
func TestColdMaintenanceMovesGpuVm(t *testing.T) {
	c, h := gpuPair(t)
	gpuVmOn(t, c, "g1", 8*gib, "h1")
	chk, err := c.host.EnterMaintenanceModeCheck(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h1"})
	if err != nil || chk.Ok || len(chk.Blockers) != 1 || chk.Blockers[0].Override != "mode=cold, non_migratable_vm_action=acpi_shutdown or mode=power_off" {
		t.Fatalf("live check %v %v", chk, err)
	}
	succeed(t, c)(c.host.EnterMaintenanceMode(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h1", Mode: acliv1.MaintenanceMode_kMaintenanceCold}))
	onItsGpu(t, c, "g1", "h3")
	checkInvariants(t, h)
}

// Anti-affinity gives way to devices: a GPU VM whose group already runs on
// the one host with a free GPU powers on there (it was placed apart, on a
// host without one, and refused).
func TestAntiAffinityPlacesByDevice(t *testing.T) {
	c, h := gpuPair(t)
	vmOn(t, c, "a", 4*gib, "h3")
	createVm(t, c, "b", 4*gib)
	succeed(t, c)(c.vm.AssignDevice(bg, gpu("b")))
	succeed(t, c)(c.vm.CreateVmGroup(bg, &acliv1.CreateVmGroupRequest{Name: "web"}))
	succeed(t, c)(c.vm.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "web", AddVms: []string{"a", "b"}, AntiAffinity: proto.Bool(true)}))
	gpuVmOn(t, c, "busy", 4*gib, "h1")
	succeed(t, c)(power(c, "b", acliv1.PowerTransition_kPowerOn))
	onItsGpu(t, c, "b", "h3")
	checkInvariants(t, h)
}

// ha.get names a host whose GPU VMs could restart nowhere, and the
// guarantee refuses what would leave one so.
func TestHAGuaranteeCountsDevices(t *testing.T) {
	c, h := gpuPair(t)
	gpuVmOn(t, c, "g1", 8*gib, "h1")
	gpuVmOn(t, c, "g2", 8*gib, "h3")
	const short = "if host h1 (127.20.0.21) fails, vm g1 needs a GPU Nvidia_Tesla_M60 and none of the hosts left has one free"
	if cfg, err := c.cl.GetHaConfig(bg, &acliv1.GetHaConfigRequest{}); err != nil || cfg.Unprotected != short {
		t.Fatalf("ha.get %v %v", cfg, err)
	}
	guarantee := &acliv1.UpdateHaConfigRequest{ReservationType: acliv1.HaReservationType_kAcropolisHAReserveSegments}
	wantCode(t, errOf(c.cl.UpdateHaConfig(bg, guarantee)), codes.FailedPrecondition, short)
	succeed(t, c)(power(c, "g2", acliv1.PowerTransition_kPowerOff))
	if cfg, _ := c.cl.GetHaConfig(bg, &acliv1.GetHaConfigRequest{}); cfg.Unprotected != "" {
		t.Fatalf("ha.get with h3's GPU free: %q", cfg.Unprotected)
	}
	succeed(t, c)(c.cl.UpdateHaConfig(bg, guarantee))
	// h3's GPU is h1's failover now: g2 may not take it.
	wantCode(t, errOf(power(c, "g2", acliv1.PowerTransition_kPowerOn)), codes.FailedPrecondition,
		"vm g2 cannot power on: the HA reservation (kAcropolisHAReserveSegments) keeps room for 1 host failure(s): if host h1 (127.20.0.21) fails, vm g1 needs a GPU")
	checkInvariants(t, h)
}

// splitGpus is 3 hosts with one Tesla M60 each, split into two 2Q vGPUs
// or passed through whole; h2 has the most memory.
func splitGpus(t *testing.T) (clients, *managertest.Harness) {
	m60 := []sim.DeviceSpec{{Kind: "gpu", Vendor: "Nvidia", Model: "Tesla_M60",
		Profiles: []sim.ProfileSpec{{Name: "2Q", Count: 2, Type: "nvidia-18"}}}}
	h := managertest.New(t, managertest.Options{Sim: &sim.Config{HostList: []sim.HostSpec{
		{Devices: m60}, {MemoryGiB: 512, Devices: m60}, {Devices: m60},
	}}})
	return newClients(h.Conn), h
}

// Placement sees what the DEVICE rule sees: HA restarts a GPU VM past the
// host whose GPU serves vGPUs, and a vGPU VM past the host whose GPU is
// passed through whole (both went to h2, the most memory, and the commit
// refused them).
func TestHARestartSkipsGpusInOtherUse(t *testing.T) {
	c, h := splitGpus(t)
	createVm(t, c, "v", gib)
	succeed(t, c)(c.vm.AssignDevice(bg, vgpu("v", "Nvidia_Tesla_M60-2Q")))
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "v", Transition: acliv1.PowerTransition_kPowerOn, Host: "h2"}))
	gpuVmOn(t, c, "g", 8*gib, "h1")
	if _, err := c.sim.FailHost(bg, &acliv1.SimHostRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	final := haTask(t, c, "h1")
	if final.Status != acliv1.TaskStatus_kSucceeded || !strings.Contains(messages(final), "vm g restarted on h3 (127.20.0.23)") {
		t.Fatalf("ha: %v %q", final.Status, messages(final))
	}
	onItsGpu(t, c, "g", "h3")
	checkInvariants(t, h)
}

func TestHARestartPlacesVgpuBesideItsProfile(t *testing.T) {
	c, h := splitGpus(t)
	gpuVmOn(t, c, "g", 8*gib, "h2")
	createVm(t, c, "v", gib)
	succeed(t, c)(c.vm.AssignDevice(bg, vgpu("v", "Nvidia_Tesla_M60-2Q")))
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "v", Transition: acliv1.PowerTransition_kPowerOn, Host: "h1"}))
	if _, err := c.sim.FailHost(bg, &acliv1.SimHostRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	final := haTask(t, c, "h1")
	if final.Status != acliv1.TaskStatus_kSucceeded || !strings.Contains(messages(final), "vm v restarted on h3 (127.20.0.23)") {
		t.Fatalf("ha: %v %q", final.Status, messages(final))
	}
	if v := getVm(t, c, "v"); v.HostName != "h3" || len(v.Devices) != 1 || v.Devices[0].Address == "" || v.Devices[0].MdevUuid == "" {
		t.Fatalf("v on %s with %v", v.HostName, v.Devices)
	}
	checkInvariants(t, h)
}

// An anti-affinity power-on (placed by the scheduler) goes past a GPU
// serving vGPUs to the host with a GPU free, instead of failing.
func TestAntiAffinitySkipsGpuServingVgpus(t *testing.T) {
	c, h := splitGpus(t)
	createVm(t, c, "v", gib)
	succeed(t, c)(c.vm.AssignDevice(bg, vgpu("v", "Nvidia_Tesla_M60-2Q")))
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "v", Transition: acliv1.PowerTransition_kPowerOn, Host: "h2"}))
	vmOn(t, c, "a", 4*gib, "h1")
	createVm(t, c, "b", 4*gib)
	succeed(t, c)(c.vm.AssignDevice(bg, gpu("b")))
	succeed(t, c)(c.vm.CreateVmGroup(bg, &acliv1.CreateVmGroupRequest{Name: "web"}))
	succeed(t, c)(c.vm.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "web", AddVms: []string{"a", "b"}, AntiAffinity: proto.Bool(true)}))
	succeed(t, c)(power(c, "b", acliv1.PowerTransition_kPowerOn))
	onItsGpu(t, c, "b", "h3")
	checkInvariants(t, h)
}
