package manager_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
)

// gpuCluster is 3 hosts; h2 has one Nvidia Tesla M60, h2 and h3 an Intel
// X710 VF each.
func gpuCluster(t *testing.T) (clients, *managertest.Harness) {
	vf := sim.DeviceSpec{Kind: "pcie", Vendor: "Intel", Model: "X710_VF"}
	h := managertest.New(t, managertest.Options{Sim: &sim.Config{HostList: []sim.HostSpec{
		{},
		{Devices: []sim.DeviceSpec{{Kind: "gpu", Vendor: "Nvidia", Model: "Tesla_M60"}, vf}},
		{Devices: []sim.DeviceSpec{vf}},
	}}})
	return newClients(h.Conn), h
}

func gpu(vm string) *acliv1.AssignDeviceRequest {
	return &acliv1.AssignDeviceRequest{Vm: vm, Kind: acliv1.DeviceKind_kGpuPassthrough, Device: "Nvidia_Tesla_M60"}
}

// A GPU goes to one running VM at a time: power-on places a GPU VM on the
// host with a free one, refuses when none is free (naming why per host),
// and the VM is pinned (no live migration; maintenance lists it as a
// blocker with the argument that overrides it).
func TestGpuPassthrough(t *testing.T) {
	c, h := gpuCluster(t)
	createVm(t, c, "g1", 4*gib)
	createVm(t, c, "g2", 4*gib)
	final := succeed(t, c)(c.vm.AssignDevice(bg, gpu("g1")))
	if final.Operation != acliv1.TaskOperation_kVmGpuAssign || messages(final) != "vm g1 assigned GPU Nvidia_Tesla_M60" {
		t.Fatalf("assign: %v %q", final.Operation, messages(final))
	}
	succeed(t, c)(c.vm.AssignDevice(bg, &acliv1.AssignDeviceRequest{Vm: "g2", Kind: acliv1.DeviceKind_kGpuPassthrough, Device: "nvidia:tesla_m60"}))
	wantCode(t, errOf(c.vm.AssignDevice(bg, &acliv1.AssignDeviceRequest{Vm: "g2", Kind: acliv1.DeviceKind_kGpuPassthrough, Device: "Nvidia_Tesla_M6"})),
		codes.NotFound, `gpu "Nvidia_Tesla_M6" not found (did you mean "Nvidia_Tesla_M60"?)`)
	wantCode(t, errOf(c.vm.AssignDevice(bg, gpu("g2"))), codes.FailedPrecondition,
		"vm g2 would need 2 GPU Nvidia_Tesla_M60 on one host; the most any host has is 1")

	succeed(t, c)(power(c, "g1", acliv1.PowerTransition_kPowerOn))
	g1 := getVm(t, c, "g1")
	if g1.HostName != "h2" || g1.Devices[0].Address != "0000:3b:00.0" {
		t.Fatalf("g1 on %s with %v", g1.HostName, g1.Devices)
	}
	wantCode(t, errOf(power(c, "g2", acliv1.PowerTransition_kPowerOn)), codes.FailedPrecondition,
		"host h2 (127.20.0.22): host h2 (127.20.0.22) has no free GPU Nvidia_Tesla_M60")
	wantCode(t, errOf(c.vm.AssignDevice(bg, gpu("g1"))), codes.FailedPrecondition,
		"vm g1 is on; passthrough devices change only while it is off (vm.off g1 first)")
	h2, _ := c.host.GetHost(bg, &acliv1.GetHostRequest{Host: "h2"})
	if d := h2.Devices[0]; d.HeldByVmName != "g1" || d.Kind != acliv1.DeviceKind_kGpuPassthrough || h2.Devices[1].HeldByVmName != "" {
		t.Fatalf("h2 devices %v", h2.Devices)
	}
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "g1", Host: "h3"})), codes.FailedPrecondition,
		"vm g1 has a passthrough GPU Nvidia_Tesla_M60 and cannot live-migrate")
	chk, err := c.host.EnterMaintenanceModeCheck(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h2"})
	if err != nil || chk.Ok || len(chk.Blockers) != 1 || chk.Blockers[0].Vm.GetName() != "g1" ||
		chk.Blockers[0].Override != "non_migratable_vm_action=acpi_shutdown or mode=power_off" {
		t.Fatalf("maintenance check %v %v", chk, err)
	}

	// Off, g1 frees the GPU for g2.
	succeed(t, c)(power(c, "g1", acliv1.PowerTransition_kPowerOff))
	succeed(t, c)(power(c, "g2", acliv1.PowerTransition_kPowerOn))
	if g2 := getVm(t, c, "g2"); g2.HostName != "h2" {
		t.Fatalf("g2 on %s", g2.HostName)
	}
	final = succeed(t, c)(c.vm.DeassignDevice(bg, gpu("g1")))
	if final.Operation != acliv1.TaskOperation_kVmGpuDeassign || messages(final) != "vm g1 deassigned GPU Nvidia_Tesla_M60" || len(getVm(t, c, "g1").Devices) != 0 {
		t.Fatalf("deassign: %q", messages(final))
	}
	wantCode(t, errOf(c.vm.DeassignDevice(bg, gpu("g1"))), codes.NotFound, `gpu "Nvidia_Tesla_M60" not found: vm g1 has no passthrough GPU`)
	checkInvariants(t, h)
}

// PCIe devices go by group UUID; a VM with one lands only where one is free.
func TestPcieDevicePlacement(t *testing.T) {
	c, _ := gpuCluster(t)
	h3, _ := c.host.GetHost(bg, &acliv1.GetHostRequest{Host: "h3"})
	group := h3.Devices[0].GroupUuid
	for _, n := range []string{"p1", "p2", "p3"} {
		createVm(t, c, n, 2*gib)
		final := succeed(t, c)(c.vm.AssignDevice(bg, &acliv1.AssignDeviceRequest{Vm: n, Kind: acliv1.DeviceKind_kPcieDevice, Device: group}))
		if final.Operation != acliv1.TaskOperation_kVmAssignPcieDevice {
			t.Fatalf("op %v", final.Operation)
		}
	}
	on := map[string]bool{}
	for _, n := range []string{"p1", "p2"} {
		succeed(t, c)(power(c, n, acliv1.PowerTransition_kPowerOn))
		on[getVm(t, c, n).HostName] = true
	}
	if !on["h2"] || !on["h3"] {
		t.Fatalf("p1 and p2 on %v", on)
	}
	wantCode(t, errOf(power(c, "p3", acliv1.PowerTransition_kPowerOn)), codes.FailedPrecondition, "has no free PCIe device Intel_X710_VF")
	wantCode(t, errOf(c.vm.AssignDevice(bg, &acliv1.AssignDeviceRequest{Vm: "p3", Kind: acliv1.DeviceKind_kPcieDevice, Device: "nope"})),
		codes.NotFound, `pcie device group "nope" not found`)
	wantCode(t, errOf(c.vm.AssignDevice(bg, &acliv1.AssignDeviceRequest{Vm: "p3", Kind: acliv1.DeviceKind_kPcieDevice})),
		codes.InvalidArgument, "name the PCIe device group")
}

// sim.set_dirty_rate changes what the guest's next live migration copies
// against: a busy guest fails to converge on a slow link, idle again it moves.
func TestSimDirtyRate(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	vmOn(t, c, "busy", 256<<20, "h1")
	r, err := c.sim.SetDirtyRate(bg, &acliv1.SimDirtyRateRequest{Vm: "busy", DirtyRateMbps: 400})
	if err != nil || r.DirtyRateMbps != 400 || r.Vm.GetName() != "busy" {
		t.Fatalf("set %v %v", r, err)
	}
	slow := &acliv1.MigrateVmRequest{Vm: "busy", Host: "h2", Live: proto.Bool(true), BandwidthMbps: 100}
	task, err := c.vm.MigrateVm(bg, slow)
	final := wait(t, c, task, err)
	if final.Status != acliv1.TaskStatus_kFailed {
		t.Fatalf("busy guest migrated at 100 Mb/s: %v %s", final.Status, messages(final))
	}
	r, err = c.sim.SetDirtyRate(bg, &acliv1.SimDirtyRateRequest{Vm: "busy"})
	if err != nil || r.DirtyRateMbps != sim.DefaultDirtyRateMBps {
		t.Fatalf("back to idle %v %v", r, err)
	}
	succeed(t, c)(c.vm.MigrateVm(bg, slow))
	wantCode(t, errOf(c.sim.SetDirtyRate(bg, &acliv1.SimDirtyRateRequest{Vm: "busy", DirtyRateMbps: -1})), codes.InvalidArgument, "dirty_rate_mbps -1 must not be negative")
	wantCode(t, errOf(c.sim.SetDirtyRate(bg, &acliv1.SimDirtyRateRequest{Vm: "nope", DirtyRateMbps: 1})), codes.NotFound, `vm "nope" not found`)
}
