package vm_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/vm"
)

func TestCreateFillsDefaultsAndRefusesTakenUUIDs(t *testing.T) {
	f := newFake(t)
	pb, err := f.svc.CreateVm(bg, &acliv1.CreateVmRequest{Name: "web01", MemoryBytes: gib})
	if err != nil || pb.Status != acliv1.TaskStatus_kSucceeded || pb.Messages[len(pb.Messages)-1] != "vm web01 created (1 vCPU, 1 GiB)" {
		t.Fatalf("create: %v %v", pb, err)
	}
	v := f.vm("web01")
	if v.NumVcpus != 1 || v.NumCoresPerVcpu != 1 || v.NumThreadsPerCore != 1 || v.PowerState != acliv1.PowerState_kOff || v.HostUuid != "" {
		t.Fatalf("created %v", v)
	}

	_, err = f.svc.CreateVm(bg, &acliv1.CreateVmRequest{Name: "web02", MemoryBytes: gib, Uuid: "UUID-A"})
	wantErr(t, err, codes.InvalidArgument, `uuid "UUID-A" is not a UUID, e.g. ...`)
	_, err = f.svc.CreateVm(bg, &acliv1.CreateVmRequest{Name: "web02", MemoryBytes: gib, Uuid: v.Uuid})
	wantErr(t, err, codes.AlreadyExists, "vm "+v.Uuid+" already exists: vm web01 has this UUID")
	// A UUID a running task is creating is taken too.
	id := "0b6d2f4e-7a51-4d0c-9a3e-1f2b3c4d5e6f"
	f.take(acliv1.TaskOperation_kVmCreate, id)
	_, err = f.svc.CreateVm(bg, &acliv1.CreateVmRequest{Name: "web02", MemoryBytes: gib, Uuid: id})
	wantErr(t, err, codes.AlreadyExists, "vm "+id+" already exists: task "+f.busy[id].PB().Uuid+" is creating a VM with this UUID")
	if f.vm("web02") != nil {
		t.Fatal("a refused create left a record")
	}
}

func TestCreateChecksShapeAndSettings(t *testing.T) {
	f := newFake(t)
	for _, tc := range []struct {
		req  *acliv1.CreateVmRequest
		want string
	}{
		{&acliv1.CreateVmRequest{Name: "x", MemoryBytes: 0}, "memory 0 must be greater than 0, e.g. memory=4G"},
		{&acliv1.CreateVmRequest{Name: "x", MemoryBytes: gib, NumVcpus: -1}, "num_vcpus -1 must be at least 1"},
		{&acliv1.CreateVmRequest{Name: "x", MemoryBytes: gib, VirtualTpm: true}, "virtual_tpm needs UEFI firmware; add uefi_boot=true"},
		{&acliv1.CreateVmRequest{Name: "x", MemoryBytes: gib, NumVcpus: 3, NumVnumaNodes: 2}, "num_vnuma_nodes 2 must divide the VM's 3 vCPUs evenly"},
		{&acliv1.CreateVmRequest{Name: "=5", MemoryBytes: gib}, `vm name "=5" contains '=' at byte 0; ...`},
	} {
		_, err := f.svc.CreateVm(bg, tc.req)
		wantErr(t, err, codes.InvalidArgument, tc.want)
	}
	if f.running() != 0 {
		t.Fatal("a refused create left a task")
	}
}

func TestDeleteNeedsTheVmOff(t *testing.T) {
	f := newFake(t)
	_, err := f.svc.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "a"})
	wantErr(t, err, codes.FailedPrecondition, "vm a is on; power it off first")
	if f.vm("a") == nil || len(f.drv.called()) != 0 {
		t.Fatal("a refused delete changed something")
	}
	pb, err := f.svc.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "b"})
	if err != nil || pb.Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("delete b: %v %v", pb, err)
	}
	if f.vm("b") != nil || !slices.Equal(f.drv.called(), []string{"Undefine b"}) {
		t.Fatalf("b still recorded or driver calls %v", f.drv.called())
	}
	// The driver failing keeps the record.
	f.svc.CreateVm(bg, &acliv1.CreateVmRequest{Name: "c", MemoryBytes: gib})
	f.drv.fail = map[string]error{"Undefine": errBoom}
	pb, _ = f.svc.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "c"})
	if pb.Status != acliv1.TaskStatus_kFailed || f.vm("c") == nil {
		t.Fatalf("failed undefine: %v, record %v", pb, f.vm("c"))
	}
}

func TestBusyVmIsRefused(t *testing.T) {
	f := newFake(t)
	f.take(acliv1.TaskOperation_kVmMigrate, "uuid-b")
	busy := "vm b is busy with task " + f.busy["uuid-b"].PB().Uuid + " (kVmMigrate); wait for it to finish"
	_, err := f.svc.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "b"})
	wantErr(t, err, codes.Aborted, busy)
	_, err = f.svc.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "b", Description: proto.String("x")})
	wantErr(t, err, codes.Aborted, busy)
}

func TestUpdateValidation(t *testing.T) {
	f := newFake(t)
	for _, tc := range []struct {
		req  *acliv1.UpdateVmRequest
		code codes.Code
		want string
	}{
		{&acliv1.UpdateVmRequest{Vm: "nosuch"}, codes.InvalidArgument, "nothing to update: give at least one of name, ..."},
		{&acliv1.UpdateVmRequest{Vm: "nosuch", Description: proto.String("x")}, codes.NotFound, `vm "nosuch" not found`},
		{&acliv1.UpdateVmRequest{Vm: "b", NumVnumaNodes: proto.Int32(3)}, codes.InvalidArgument, "num_vnuma_nodes 3 must divide the VM's 2 vCPUs evenly"},
		{&acliv1.UpdateVmRequest{Vm: "b", VirtualTpm: proto.Bool(true)}, codes.InvalidArgument, "virtual_tpm needs UEFI firmware; add uefi_boot=true"},
		{&acliv1.UpdateVmRequest{Vm: "b", MemoryBytes: proto.Int64(0)}, codes.InvalidArgument, "memory 0 must be greater than 0, e.g. memory=4G"},
		{&acliv1.UpdateVmRequest{Vm: "b", Name: proto.String("=5")}, codes.InvalidArgument, `vm name "=5" contains '=' at byte 0; ...`},
		// Off-only settings of a running VM.
		{&acliv1.UpdateVmRequest{Vm: "a", CpuPassthrough: proto.Bool(true)}, codes.FailedPrecondition, "vm a is on; cpu_passthrough change only while it is off (vm.off a first)"},
		{&acliv1.UpdateVmRequest{Vm: "a", UefiBoot: proto.Bool(true)}, codes.FailedPrecondition, "vm a is on; uefi_boot change only while it is off (vm.off a first)"},
		// Growing a running VM past its host's free memory (8 GiB, 4 taken).
		{&acliv1.UpdateVmRequest{Vm: "a", MemoryBytes: proto.Int64(9 * gib)}, codes.FailedPrecondition, "vm a is on and host h1 has 4 GiB free; growing it by 5 GiB would over-commit memory"},
	} {
		_, err := f.svc.UpdateVm(bg, tc.req)
		wantErr(t, err, tc.code, tc.want)
	}
	if f.running() != 0 || f.db.Reserved("uuid-h1") != 0 {
		t.Fatalf("refused updates left %d task(s), %d bytes held", f.running(), f.db.Reserved("uuid-h1"))
	}
	if v := f.vm("a"); v.MemoryBytes != 4*gib || v.CpuPassthrough || v.UefiBoot {
		t.Fatalf("a refused update changed a: %v", v)
	}
}

func TestUpdateAppliesWhatIsGiven(t *testing.T) {
	f := newFake(t)
	// What may change while on does; the memory grows on its host.
	pb, err := f.svc.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "a", Description: proto.String("db"), HaPriority: proto.Int32(5), MemoryBytes: proto.Int64(6 * gib)})
	if err != nil || pb.Messages[len(pb.Messages)-1] != "vm a updated (ha_priority, memory, description)" {
		t.Fatalf("update: %v %v", pb, err)
	}
	if v := f.vm("a"); v.Description != "db" || v.HaPriority != 5 || v.MemoryBytes != 6*gib || v.NumVcpus != 2 {
		t.Fatalf("updated %v", v)
	}
	if f.db.Reserved("uuid-h1") != 0 || f.db.MemoryTaken("uuid-h1") != 6*gib {
		t.Fatalf("after the grow: %d held, %d taken", f.db.Reserved("uuid-h1"), f.db.MemoryTaken("uuid-h1"))
	}
	// Off, the settings change.
	_, err = f.svc.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "b", Name: proto.String("b2"), UefiBoot: proto.Bool(true), VirtualTpm: proto.Bool(true), NumVnumaNodes: proto.Int32(2)})
	if v := f.vm("b2"); err != nil || v == nil || !v.UefiBoot || !v.VirtualTpm || v.NumVnumaNodes != 2 {
		t.Fatalf("update b: %v %v", v, err)
	}
}

// A quick task holds the VM it changes: the flows that launch tasks see it
// busy until it ends, and it ends releasing the VM and any memory it held,
// whether its commit is made or refused.
func TestQuickTasksHoldTheirVm(t *testing.T) {
	f := newFake(t)
	q, err := fakeStarter{f}.Begin(bg, "vm", acliv1.TaskOperation_kVmUpdate, []*acliv1.EntityRef{{Name: "a"}}, "uuid-a")
	if err != nil {
		t.Fatal(err)
	}
	busy := "vm a is busy with task " + f.busy["uuid-a"].PB().Uuid + " (kVmUpdate); wait for it to finish"
	_, err = power(f, "a", acliv1.PowerTransition_kPowerOff, "")
	wantErr(t, err, codes.Aborted, busy)
	_, err = power(f, "a", acliv1.PowerTransition_kPowerOn, "") // nothing to do, and still refused
	wantErr(t, err, codes.Aborted, busy)
	q.Drop()

	// A grow whose commit is refused releases the memory it held.
	f.commitErr = errBoom
	_, err = f.svc.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "a", MemoryBytes: proto.Int64(6 * gib)})
	if err != errBoom {
		t.Fatalf("got %v, want %v", err, errBoom)
	}
	if f.running() != 0 || len(f.busy) != 0 || f.db.Reserved("uuid-h1") != 0 || f.vm("a").MemoryBytes != 4*gib {
		t.Fatalf("a refused commit left %d task(s), busy %v, %d bytes held, a at %d", f.running(), f.busy, f.db.Reserved("uuid-h1"), f.vm("a").MemoryBytes)
	}
	if _, err := power(f, "a", acliv1.PowerTransition_kPowerOff, ""); err != nil {
		t.Fatal(err)
	}
}

// An update reads the VM once its task holds it: a change committed
// between the request's resolve and the hold is built on, not undone.
func TestUpdateBuildsOnWhatLandedBeforeItsHold(t *testing.T) {
	f := newFake(t)
	f.onBegin = func() {
		f.onBegin = nil
		v := proto.Clone(f.vm("b")).(*acliv1.Vm)
		v.Description = "set meanwhile"
		if err := f.commit(vm.Outcome{Writes: []state.Write{{Key: state.VmKey(v.Uuid), Msg: v, Rev: state.AnyRev}}}); err != nil {
			t.Error(err)
		}
	}
	if _, err := f.svc.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "b", HaPriority: proto.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	if v := f.vm("b"); v.Description != "set meanwhile" || v.HaPriority != 3 {
		t.Fatalf("b is %v", v)
	}
}

// Edit builds on the record committed once its task holds the VM; a
// refusal by the change or at the commit leaves no task, and a busy VM is
// refused before the change runs.
func TestEdit(t *testing.T) {
	f := newFake(t)
	describe := func(text string) func(*acliv1.Vm) (*acliv1.Vm, string, error) {
		return func(cur *acliv1.Vm) (*acliv1.Vm, string, error) {
			v := proto.Clone(cur).(*acliv1.Vm)
			v.Description += text
			return v, "vm " + cur.Name + " described", nil
		}
	}
	f.onBegin = func() {
		f.onBegin = nil
		f.grow(t, "b", 3*gib)
	}
	pb, err := f.svc.Edit(bg, "b", acliv1.TaskOperation_kVmUpdate, describe("x"))
	if err != nil || last(pb) != "vm b described" || f.vm("b").MemoryBytes != 3*gib || f.vm("b").Description != "x" {
		t.Fatalf("edit: %v %v; b %v", pb, err, f.vm("b"))
	}
	_, err = f.svc.Edit(bg, "b", acliv1.TaskOperation_kVmUpdate, func(*acliv1.Vm) (*acliv1.Vm, string, error) { return nil, "", errBoom })
	if err != errBoom {
		t.Fatalf("got %v", err)
	}
	f.commitErr = errBoom
	if _, err = f.svc.Edit(bg, "b", acliv1.TaskOperation_kVmUpdate, describe("y")); err != errBoom {
		t.Fatalf("got %v", err)
	}
	_, err = f.svc.Edit(bg, "nosuch", acliv1.TaskOperation_kVmUpdate, describe("z"))
	wantErr(t, err, codes.NotFound, `vm "nosuch" not found`)
	f.take(acliv1.TaskOperation_kVmMigrate, "uuid-b")
	_, err = f.svc.Edit(bg, "b", acliv1.TaskOperation_kVmUpdate, func(*acliv1.Vm) (*acliv1.Vm, string, error) {
		t.Fatal("the change ran on a busy VM")
		return nil, "", nil
	})
	wantErr(t, err, codes.Aborted, "vm b is busy with task "+f.busy["uuid-b"].PB().Uuid+" (kVmMigrate); wait for it to finish")
	f.letGo("uuid-b")
	if f.running() != 1 || len(f.busy) != 0 || f.vm("b").Description != "x" {
		t.Fatalf("%d task(s) running (the migrate only), busy %v, b %v", f.running(), f.busy, f.vm("b"))
	}
}

// Begin holds the VM and the claims it is given: a claim another task
// holds refuses it as the VM being busy, and a dropped task frees both.
func TestBeginHoldsTheVmAndItsClaims(t *testing.T) {
	f := newFake(t)
	st := fakeStarter{f}
	q, cur, rev, err := vm.Begin(bg, st, f.db, "a", acliv1.TaskOperation_kVmNicCreate, "mac:50:6b:8d:00:00:01")
	if err != nil || cur.Uuid != "uuid-a" || rev <= 0 || len(f.busy) != 2 || f.busy["mac:50:6b:8d:00:00:01"] != f.busy["uuid-a"] {
		t.Fatalf("begin: %v %v %d; busy %v", err, cur, rev, f.busy)
	}
	_, _, _, err = vm.Begin(bg, st, f.db, "b", acliv1.TaskOperation_kVmNicCreate, "mac:50:6b:8d:00:00:01")
	wantErr(t, err, codes.Aborted, "vm b is busy with task "+f.busy["uuid-a"].PB().Uuid+" (kVmNicCreate); wait for it to finish")
	_, _, _, err = vm.Begin(bg, st, f.db, "nosuch", acliv1.TaskOperation_kVmNicCreate)
	wantErr(t, err, codes.NotFound, `vm "nosuch" not found`)
	q.Drop()
	if len(f.busy) != 0 || f.running() != 0 {
		t.Fatalf("after the drop: busy %v, %d task(s)", f.busy, f.running())
	}
}
