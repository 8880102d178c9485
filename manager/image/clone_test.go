package image_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/image"
	"github.com/acli-dev/acli/manager/state"
)

// withNics puts network prod (pool 10.0.0.10-10.0.0.13) and gives web two
// NICs on it holding the pool's first two addresses.
func withNics(t *testing.T, f *fixture) {
	t.Helper()
	if _, err := f.db.Update(bg, func(tx *state.Tx) error {
		tx.Put(state.NetworkKey("uuid-prod"), &acliv1.Network{Uuid: "uuid-prod", Name: "prod", IpConfig: "10.0.0.1/24",
			DhcpPools: []*acliv1.DhcpPool{{Start: "10.0.0.10", End: "10.0.0.13"}}}, 0)
		web := proto.Clone(tx.Vm("uuid-web")).(*acliv1.Vm)
		web.Nics = []*acliv1.Nic{
			{Mac: "50:6b:8d:00:00:01", NetworkUuid: "uuid-prod", Ip: "10.0.0.10"},
			{Mac: "50:6b:8d:00:00:02", NetworkUuid: "uuid-prod", Ip: "10.0.0.11"},
		}
		tx.Put(state.VmKey(web.Uuid), web, state.AnyRev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func clone(t *testing.T, f *fixture, req *acliv1.CloneVmRequest) *acliv1.Vm {
	t.Helper()
	task, err := f.svc.CloneVm(bg, req)
	if err != nil {
		t.Fatal(err)
	}
	if end := f.tasks.wait(task); end.Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("clone %s: %v", req.Name, end)
	}
	var v *acliv1.Vm
	f.db.View(func(tx *state.Tx) { v = tx.VmsNamed(req.Name)[0] })
	return v
}

// A clone of a running VM with two NICs on one managed network: the next
// two addresses of the pool, one each, new MACs, a copy of each vDisk with
// data (the source paused for them), stopped and on no host. Once the pool
// is empty a clone is refused and holds nothing.
func TestCloneNicsTakeAddressesAndMacsOfTheirOwn(t *testing.T) {
	f := newFixture(t)
	withNics(t, f)
	c := clone(t, f, &acliv1.CloneVmRequest{Name: "c1", CloneFromVm: "web"})
	if len(c.Nics) != 2 || c.Nics[0].Ip != "10.0.0.12" || c.Nics[1].Ip != "10.0.0.13" {
		t.Fatalf("clone's NICs %v; want 10.0.0.12 and 10.0.0.13", c.Nics)
	}
	macs := map[string]bool{"50:6b:8d:00:00:01": true, "50:6b:8d:00:00:02": true}
	for _, n := range c.Nics {
		if macs[n.Mac] {
			t.Errorf("clone's NIC has MAC %s, already given", n.Mac)
		}
		macs[n.Mac] = true
	}
	if c.PowerState != acliv1.PowerState_kOff || c.HostUuid != "" || len(c.Disks) != 3 {
		t.Fatalf("clone %v; want off, on no host, with 3 disks (no volume group disk)", c)
	}
	for i, want := range []string{"d-web-0", "d-web-1"} {
		if d := c.Disks[i]; d.SourceVmdiskUuid != want || !f.vols.has(d.Uuid) {
			t.Errorf("clone disk %d = %v; want a volume of its own copied from %s", i, d, want)
		}
	}
	if cp := f.vols.copies[0]; len(cp) != 2 || cp[0].Src.Vm.GetUuid() != "uuid-web" {
		t.Errorf("copies %v; want two, pausing web", cp)
	}
	_, err := f.svc.CloneVm(bg, &acliv1.CloneVmRequest{Name: "c2", CloneFromVm: "web"})
	wantCode(t, err, codes.FailedPrecondition, "no free address left")
	if held := f.tasks.changing; len(held) != 0 {
		t.Errorf("a refused clone left holds: %v", held)
	}
}

// A clone reads its source: other clones and snapshots of it may run
// meanwhile, a task changing it refuses the clone, and a clone that does
// not fit its container is refused before anything is copied.
func TestCloneReadsItsSource(t *testing.T) {
	f := newFixture(t)
	_, done := f.tasks.read("uuid-web")
	c := clone(t, f, &acliv1.CloneVmRequest{Name: "c1", CloneFromVm: "web"})
	done()
	if len(c.Disks) != 3 {
		t.Fatalf("clone %v", c)
	}
	snapshot(t, f, "db", "base")
	if c := clone(t, f, &acliv1.CloneVmRequest{Name: "c2", CloneFromSnapshot: "base"}); len(c.Disks) != 1 || c.Disks[0].SizeBytes != 5*gib {
		t.Fatalf("clone of snapshot %v", c)
	}
	// web's 30 GiB once more does not fit: 35 + 30 + 5 + 5 of 100 GiB used.
	n := len(f.vols.copies)
	_, err := f.svc.CloneVm(bg, &acliv1.CloneVmRequest{Name: "c3", CloneFromVm: "web"})
	wantCode(t, err, codes.FailedPrecondition, "clone of vm web (30 GiB) does not fit container default-container")
	if len(f.vols.copies) != n {
		t.Errorf("a refused clone copied")
	}
	edit, err := f.tasks.Begin(bg, func(image.Held) (image.Start, error) {
		return image.Start{Op: acliv1.TaskOperation_kVmUpdate, Locks: []string{"uuid-db"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.CloneVm(bg, &acliv1.CloneVmRequest{Name: "c3", CloneFromVm: "db"})
	wantCode(t, err, codes.Aborted, "vm db is busy with task "+edit.PB().Uuid)
	f.tasks.end(edit)
	_, err = f.svc.CloneVm(bg, &acliv1.CloneVmRequest{Name: "c3", CloneFromVm: "web", CloneFromSnapshot: "base"})
	wantCode(t, err, codes.InvalidArgument, "give one of clone_from_vm=<vm> or clone_from_snapshot=<snapshot>")
	_, err = f.svc.CloneVm(bg, &acliv1.CloneVmRequest{Name: "c3", CloneFromVm: "wbe"})
	wantCode(t, err, codes.NotFound, `did you mean "web"`)
}
