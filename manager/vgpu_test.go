package manager_test

import (
	"slices"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
)

// vgpuCluster is 3 hosts; h2 has two Tesla M60s, each split into four
// 2Q vGPUs or one 8Q.
func vgpuCluster(t *testing.T) (clients, *managertest.Harness) {
	m60 := sim.DeviceSpec{Kind: "gpu", Vendor: "Nvidia", Model: "Tesla_M60", Count: 2,
		Profiles: []sim.ProfileSpec{{Name: "2Q", Count: 2, Type: "nvidia-18"}, {Name: "8Q", Count: 1, Type: "nvidia-22"}}}
	h := managertest.New(t, managertest.Options{Sim: &sim.Config{HostList: []sim.HostSpec{{}, {Devices: []sim.DeviceSpec{m60}}, {}}}})
	return newClients(h.Conn), h
}

func vgpu(vm, profile string) *acliv1.AssignDeviceRequest {
	return &acliv1.AssignDeviceRequest{Vm: vm, Kind: acliv1.DeviceKind_kGpuPassthrough, Device: profile}
}

// VMs share a GPU by a vGPU profile up to its count, one profile per GPU,
// and a GPU serving vGPUs is not passed through whole (nor the reverse).
func TestVgpuProfiles(t *testing.T) {
	c, h := vgpuCluster(t)
	for _, n := range []string{"v1", "v2", "v3", "big", "whole"} {
		createVm(t, c, n, gib)
	}
	for _, n := range []string{"v1", "v2", "v3"} {
		final := succeed(t, c)(c.vm.AssignDevice(bg, vgpu(n, "Nvidia_Tesla_M60-2Q")))
		if final.Operation != acliv1.TaskOperation_kVmGpuAssign || messages(final) != "vm "+n+" assigned vGPU Nvidia_Tesla_M60-2Q" {
			t.Fatalf("assign: %v %q", final.Operation, messages(final))
		}
	}
	succeed(t, c)(c.vm.AssignDevice(bg, &acliv1.AssignDeviceRequest{Vm: "big", Kind: acliv1.DeviceKind_kVirtualGpu, Device: "nvidia:tesla_m60-8q"}))
	succeed(t, c)(c.vm.AssignDevice(bg, gpu("whole")))
	wantCode(t, errOf(c.vm.AssignDevice(bg, &acliv1.AssignDeviceRequest{Vm: "v1", Kind: acliv1.DeviceKind_kVirtualGpu, Device: "Nvidia_Tesla_M60"})),
		codes.NotFound, `vgpu profile "Nvidia_Tesla_M60" not found (did you mean "Nvidia_Tesla_M60-2Q"?)`)
	if d := getVm(t, c, "big").Devices; len(d) != 1 || d[0].Kind != acliv1.DeviceKind_kVirtualGpu || d[0].Name != "Nvidia_Tesla_M60-8Q" {
		t.Fatalf("big's devices %v", d)
	}

	// v1 and v2 fill the first GPU's 2Q slots; v3 takes the second GPU.
	for _, n := range []string{"v1", "v2", "v3"} {
		succeed(t, c)(power(c, n, acliv1.PowerTransition_kPowerOn))
	}
	at := map[string]string{}
	mdevs := map[string]bool{}
	for _, n := range []string{"v1", "v2", "v3"} {
		v := getVm(t, c, n)
		if v.HostName != "h2" || len(v.Devices) != 1 || v.Devices[0].MdevUuid == "" {
			t.Fatalf("%s on %s with %v", n, v.HostName, v.Devices)
		}
		at[n], mdevs[v.Devices[0].MdevUuid] = v.Devices[0].Address, true
	}
	if at["v1"] != "0000:3b:00.0" || at["v2"] != "0000:3b:00.0" || at["v3"] != "0000:3c:00.0" || len(mdevs) != 3 {
		t.Fatalf("vGPUs at %v, mdevs %v", at, mdevs)
	}
	// Both GPUs serve 2Q: no room for an 8Q, and none to pass through whole.
	wantCode(t, errOf(power(c, "big", acliv1.PowerTransition_kPowerOn)), codes.FailedPrecondition,
		"host h2 (127.20.0.22): host h2 (127.20.0.22) has no GPU with room for a vGPU Nvidia_Tesla_M60-8Q")
	wantCode(t, errOf(power(c, "whole", acliv1.PowerTransition_kPowerOn)), codes.FailedPrecondition,
		"host h2 (127.20.0.22): host h2 (127.20.0.22) has no free GPU Nvidia_Tesla_M60")
	h2, err := c.host.GetHost(bg, &acliv1.GetHostRequest{Host: "h2"})
	if err != nil {
		t.Fatal(err)
	}
	if p := h2.Devices[0].VgpuProfiles; len(p) != 2 || !slices.Equal(p[0].HeldByVmNames, []string{"v1", "v2"}) || len(p[1].HeldByVmNames) != 0 || p[0].Count != 2 || p[0].TypeId != "nvidia-18" {
		t.Fatalf("h2's first GPU: %v", h2.Devices[0])
	}
	// No other host has the profile: live=false would be refused too, so
	// it is not suggested; every blocker is listed.
	st := wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "v1", Host: "h3"})), codes.FailedPrecondition,
		"vm v1 cannot move, live or offline: vm v1 has a vGPU Nvidia_Tesla_M60-2Q and cannot live-migrate; cannot move vm v1 to h3 (127.20.0.23): no GPU with room for a vGPU Nvidia_Tesla_M60-2Q")
	if vs := detail[*errdetails.PreconditionFailure](t, st).Violations; len(vs) != 2 || vs[0].Type != "NOT_MIGRATABLE" || vs[1].Type != "TARGET" {
		t.Fatalf("violations %v", vs)
	}
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "v1"})), codes.FailedPrecondition,
		"vm v1 cannot move, live or offline: vm v1 has a vGPU Nvidia_Tesla_M60-2Q and cannot live-migrate; h1 (127.20.0.21): no GPU with room")

	// v3 off frees the second GPU for the 8Q; v1 and v2 off free the first
	// for passthrough.
	succeed(t, c)(power(c, "v3", acliv1.PowerTransition_kPowerOff))
	succeed(t, c)(power(c, "big", acliv1.PowerTransition_kPowerOn))
	if v := getVm(t, c, "big"); v.Devices[0].Address != "0000:3c:00.0" {
		t.Fatalf("big at %v", v.Devices)
	}
	wantCode(t, errOf(power(c, "v3", acliv1.PowerTransition_kPowerOn)), codes.FailedPrecondition,
		"has no GPU with room for a vGPU Nvidia_Tesla_M60-2Q")
	succeed(t, c)(power(c, "v1", acliv1.PowerTransition_kPowerOff))
	wantCode(t, errOf(power(c, "whole", acliv1.PowerTransition_kPowerOn)), codes.FailedPrecondition, "has no free GPU Nvidia_Tesla_M60")
	succeed(t, c)(power(c, "v2", acliv1.PowerTransition_kPowerOff))
	succeed(t, c)(power(c, "whole", acliv1.PowerTransition_kPowerOn))
	if v := getVm(t, c, "whole"); v.Devices[0].Address != "0000:3b:00.0" {
		t.Fatalf("whole at %v", v.Devices)
	}
	final := succeed(t, c)(c.vm.DeassignDevice(bg, vgpu("v1", "nvidia_tesla_m60-2q")))
	if messages(final) != "vm v1 deassigned vGPU Nvidia_Tesla_M60-2Q" || len(getVm(t, c, "v1").Devices) != 0 {
		t.Fatalf("deassign: %q", messages(final))
	}
	checkInvariants(t, h)
}
