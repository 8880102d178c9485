package manager_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

// acli's VM settings: given at create, changed while off, refused (exit 5)
// while on, checked against each other; cpu_passthrough pins the VM to its
// host; power_cycle resets a running VM where it runs.
func TestVmSettings(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c := newClients(h.Conn)
	v := vmOn(t, c, "sap01", 4*gib, "h1", func(r *acliv1.CreateVmRequest) {
		r.NumVcpus, r.UefiBoot, r.NumVnumaNodes, r.VirtualTpm = 4, true, 2, true
	})
	if !v.UefiBoot || v.NumVnumaNodes != 2 || !v.VirtualTpm || v.NumThreadsPerCore != 1 {
		t.Fatalf("created %v", v)
	}
	wantCode(t, errOf(c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "sap01", CpuPassthrough: proto.Bool(true)})), codes.FailedPrecondition,
		"vm sap01 is on; cpu_passthrough change only while it is off (vm.off sap01 first)")
	// What may change while on still does.
	succeed(t, c)(c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "sap01", Description: proto.String("SAP"), HaPriority: proto.Int32(5)}))

	for _, bad := range []struct {
		req  *acliv1.UpdateVmRequest
		want string
	}{
		{&acliv1.UpdateVmRequest{Vm: "sap01", NumVnumaNodes: proto.Int32(3)}, "num_vnuma_nodes 3 must divide the VM's 4 vCPUs evenly"},
		{&acliv1.UpdateVmRequest{Vm: "sap01", UefiBoot: proto.Bool(false)}, "virtual_tpm needs UEFI firmware; add uefi_boot=true"},
		{&acliv1.UpdateVmRequest{Vm: "sap01", NumThreadsPerCore: proto.Int32(9)}, "num_threads_per_core 9 must be 1 to 8"},
	} {
		wantCode(t, errOf(c.vm.UpdateVm(bg, bad.req)), codes.InvalidArgument, bad.want)
	}

	succeed(t, c)(power(c, "sap01", acliv1.PowerTransition_kPowerOff))
	final := succeed(t, c)(c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "sap01", CpuPassthrough: proto.Bool(true),
		NumThreadsPerCore: proto.Int32(2), MemoryOvercommit: proto.Bool(true), VcpuHardPin: proto.Bool(true), HardwareVirtualization: proto.Bool(true)}))
	if messages(final) == "" {
		t.Fatal("no message")
	}
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "sap01", Transition: acliv1.PowerTransition_kPowerOn, Host: "h2"}))
	v = getVm(t, c, "sap01")
	if !v.CpuPassthrough || v.NumThreadsPerCore != 2 || !v.MemoryOvercommit || !v.VcpuHardPin || !v.HardwareVirtualization || v.Description != "SAP" {
		t.Fatalf("updated %v", v)
	}
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "sap01"})), codes.FailedPrecondition,
		"vm sap01 has the host CPU passed through and cannot live-migrate (use live=false)")

	// power_cycle: a reset where the VM runs; refused for a VM that is off.
	final = succeed(t, c)(power(c, "sap01", acliv1.PowerTransition_kPowerCycle))
	if final.Operation != acliv1.TaskOperation_kVmPowerCycle || messages(final) != "vm sap01 power cycled on host h2" {
		t.Fatalf("power cycle: %v %q", final.Operation, messages(final))
	}
	if v := getVm(t, c, "sap01"); v.HostName != "h2" || v.PowerState != acliv1.PowerState_kOn {
		t.Fatalf("after power cycle: %v", v)
	}
	createVm(t, c, "cold", gib)
	wantCode(t, errOf(power(c, "cold", acliv1.PowerTransition_kPowerCycle)), codes.FailedPrecondition, "vm cold is off; power it on first")
	checkInvariants(t, h)
}
