package manager_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

func TestHostAffinity(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	createVm(t, c, "db", 4*gib)
	final := succeed(t, c)(c.vm.SetAffinity(bg, &acliv1.SetAffinityRequest{Vm: "db", Hosts: []string{"127.20.0.23,h2"}}))
	if !strings.Contains(messages(final), "vm db host affinity set to h2 (127.20.0.22), h3 (127.20.0.23)") {
		t.Fatalf("messages %v", final.Messages)
	}
	h2, h3 := getHost(t, c, "h2"), getHost(t, c, "h3")
	if v := getVm(t, c, "db"); len(v.HostAffinity) != 2 || v.HostAffinity[0] != h2.Uuid || v.HostAffinity[1] != h3.Uuid {
		t.Fatalf("affinity %v", v.HostAffinity)
	}
	succeed(t, c)(power(c, "db", acliv1.PowerTransition_kPowerOn))
	if v := getVm(t, c, "db"); v.HostName != "h2" && v.HostName != "h3" {
		t.Fatalf("placed on %s outside its affinity", v.HostName)
	}
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "db", Host: "h1"})), codes.FailedPrecondition, "not in the VM's host affinity")
	// A running VM cannot be given an affinity that excludes its host.
	cur := getVm(t, c, "db").HostName
	wantCode(t, errOf(c.vm.SetAffinity(bg, &acliv1.SetAffinityRequest{Vm: "db", Hosts: []string{"h1"}})), codes.FailedPrecondition, "migrate it first (vm.migrate db host=h1)")
	wantCode(t, errOf(c.vm.SetAffinity(bg, &acliv1.SetAffinityRequest{Vm: "db", Hosts: []string{"h7"}})), codes.NotFound, `host "h7" not found`)
	succeed(t, c)(c.vm.SetAffinity(bg, &acliv1.SetAffinityRequest{Vm: "db", Hosts: []string{cur}}))
	// Pinned to its host: the maintenance check names the override.
	chk, _ := c.host.EnterMaintenanceModeCheck(bg, &acliv1.EnterMaintenanceModeRequest{Host: cur})
	if chk.Ok || !strings.Contains(chk.Blockers[0].Reason, "vm db has host affinity to") {
		t.Fatalf("check %v", chk.Blockers)
	}
	cleared := succeed(t, c)(c.vm.SetAffinity(bg, &acliv1.SetAffinityRequest{Vm: "db"}))
	if v := getVm(t, c, "db"); len(v.HostAffinity) != 0 || !strings.Contains(messages(cleared), "cleared") {
		t.Fatalf("after unset: %v", v.HostAffinity)
	}
}

// TestAntiAffinityGroups: members of an anti-affinity group land on
// different hosts while they can, and the rule is a should-rule.
func TestAntiAffinityGroups(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	succeed(t, c)(c.vm.CreateVmGroup(bg, &acliv1.CreateVmGroupRequest{Name: "dbs"}))
	wantCode(t, errOf(c.vm.CreateVmGroup(bg, &acliv1.CreateVmGroupRequest{Name: "dbs"})), codes.AlreadyExists, "vm_group dbs already exists")
	// A big VM makes h1 the host with the most free memory... for others.
	vmOn(t, c, "filler", 64*gib, "h2")
	for _, n := range []string{"db1", "db2", "db3", "db4"} {
		createVm(t, c, n, 4*gib)
	}
	succeed(t, c)(c.vm.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "dbs", AddVms: []string{"db1", "db2", "db3", "db4"}, AntiAffinity: proto.Bool(true)}))
	wantCode(t, errOf(c.vm.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "dsb", AddVms: []string{"db1"}})), codes.NotFound, `(did you mean "dbs"?)`)
	wantCode(t, errOf(c.vm.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "dbs"})), codes.InvalidArgument, "nothing to update")
	seen := map[string]bool{}
	for _, n := range []string{"db1", "db2", "db3"} {
		succeed(t, c)(power(c, n, acliv1.PowerTransition_kPowerOn))
		seen[getVm(t, c, n).HostName] = true
	}
	if len(seen) != 3 {
		t.Fatalf("anti-affinity members share hosts: %v", seen)
	}
	// A fourth member still powers on (should-rule).
	succeed(t, c)(power(c, "db4", acliv1.PowerTransition_kPowerOn))
	// Migrating a member prefers a host without another member: none is
	// free, so any other host will do — but it always moves.
	before := getVm(t, c, "db1").HostName
	succeed(t, c)(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "db1"}))
	if getVm(t, c, "db1").HostName == before {
		t.Fatal("db1 did not move")
	}
	list, _ := c.vm.ListVmGroups(bg, &acliv1.ListVmGroupsRequest{})
	if len(list.Groups) != 1 || len(list.Groups[0].VmUuids) != 4 || !list.Groups[0].AntiAffinity {
		t.Fatalf("groups %v", list.Groups)
	}
	succeed(t, c)(c.vm.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "dbs", RemoveVms: []string{"db4"}, AntiAffinity: proto.Bool(false)}))
	wantCode(t, errOf(c.vm.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "dbs", RemoveVms: []string{"db4"}})), codes.FailedPrecondition, "vm db4 is not a member of vm group dbs")
	succeed(t, c)(c.vm.DeleteVmGroup(bg, &acliv1.DeleteVmGroupRequest{Group: "dbs"}))
	if list, _ := c.vm.ListVmGroups(bg, &acliv1.ListVmGroupsRequest{}); len(list.Groups) != 0 {
		t.Fatalf("groups left %v", list.Groups)
	}
}
