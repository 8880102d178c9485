package image_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/image"
	"github.com/acli-dev/acli/manager/state"
)

func snapshot(t *testing.T, f *fixture, vm string, names ...string) *acliv1.Task {
	t.Helper()
	task, err := f.svc.CreateSnapshots(bg, &acliv1.CreateSnapshotsRequest{Vm: vm, Names: names})
	if err != nil {
		t.Fatal(err)
	}
	end := f.tasks.wait(task)
	if end.Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("snapshot %v of %s: %v", names, vm, end)
	}
	return end
}

func getSnapshot(t *testing.T, f *fixture, ref string) *acliv1.Snapshot {
	t.Helper()
	sn, err := f.svc.GetSnapshot(bg, &acliv1.GetSnapshotRequest{Snapshot: ref})
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

// Snapshots of one VM taken together copy each vDisk with data once per
// name in one pause (one Copy call, the VM named as running), keep the
// VM's settings without its placement, and take container space.
func TestSnapshotsCopyEachDiskOnce(t *testing.T) {
	f := newFixture(t)
	end := snapshot(t, f, "web", "s1", "s2")
	if msg := strings.Join(end.Messages, ";"); msg != "vm web: 2 snapshot(s) taken (s1, s2), 2 vDisk(s) each" {
		t.Errorf("message = %q", msg)
	}
	if len(f.vols.copies) != 1 || len(f.vols.copies[0]) != 4 {
		t.Fatalf("copies = %v; want one call of 4", f.vols.copies)
	}
	for _, c := range f.vols.copies[0] {
		if c.Src.Vm.GetUuid() != "uuid-web" || c.Container != state.DefaultContainer {
			t.Errorf("copy %+v: want it from running vm web in the default container", c)
		}
	}
	s1 := getSnapshot(t, f, "s1")
	if s1.VmUuid != "uuid-web" || s1.PowerState != acliv1.PowerState_kOn || s1.SizeBytes != 30*gib {
		t.Errorf("s1 = %v", s1)
	}
	if v := s1.Vm; v.HostUuid != "" || v.PowerState != acliv1.PowerState_kOff || len(v.Disks) != 2 {
		t.Errorf("s1's settings = %v; want no placement and the two data disks", v)
	}
	for i, d := range s1.Vm.Disks {
		if want := []string{"d-web-0", "d-web-1"}[i]; d.SourceVmdiskUuid != want || d.Uuid == want || !f.vols.has(d.Uuid) {
			t.Errorf("s1 disk %d = %v; want a volume of its own copied from %s", i, d, want)
		}
	}
	// 30 GiB of the VM and 5 of db, and 30 per snapshot.
	if use := f.db.ContainerUse(state.DefaultContainer); use.Bytes != 95*gib {
		t.Errorf("container use = %+v; want 95 GiB", use)
	}
	_, err := f.svc.CreateSnapshots(bg, &acliv1.CreateSnapshotsRequest{Vm: "web", Names: []string{"s3"}})
	wantCode(t, err, codes.FailedPrecondition, "snapshot (30 GiB) does not fit container default-container")
}

// A chain: a snapshot, a VM whose disk is that snapshot's copy, a snapshot
// of it; deleting the first snapshot removes only its own volumes, and
// the later snapshot, copied from the VM, keeps all of its own.
func TestSnapshotChainsAreIndependentCopies(t *testing.T) {
	f := newFixture(t)
	snapshot(t, f, "db", "base")
	base := getSnapshot(t, f, "base")
	// A clone of base: its disk is a copy of base's (root CloneVm).
	clone := &acliv1.Vm{Uuid: "uuid-clone", Name: "clone", MemoryBytes: gib,
		Disks: []*acliv1.Disk{{Uuid: "d-clone-0", Bus: "scsi", SizeBytes: 5 * gib, SourceVmdiskUuid: base.Vm.Disks[0].Uuid}}}
	if _, err := f.db.Update(bg, func(tx *state.Tx) error {
		tx.Put(state.VmKey(clone.Uuid), clone, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.vols.vols["d-clone-0"] = 5 * gib
	snapshot(t, f, "clone", "next")
	next := getSnapshot(t, f, "next")
	if next.Vm.Disks[0].SourceVmdiskUuid != "d-clone-0" {
		t.Errorf("next copies %s; want the clone's own disk", next.Vm.Disks[0].SourceVmdiskUuid)
	}
	if _, err := f.svc.DeleteSnapshot(bg, &acliv1.DeleteSnapshotRequest{Snapshot: "base"}); err != nil {
		t.Fatal(err)
	}
	if f.vols.has(base.Vm.Disks[0].Uuid) {
		t.Errorf("base's volume is left")
	}
	for _, id := range []string{"d-db-0", "d-clone-0", next.Vm.Disks[0].Uuid} {
		if !f.vols.has(id) {
			t.Errorf("volume %s went with base", id)
		}
	}
	if len(f.vols.early) > 0 {
		t.Errorf("volumes removed while still recorded: %v", f.vols.early)
	}
	out, err := f.svc.ListSnapshots(bg, &acliv1.ListSnapshotsRequest{})
	if err != nil || len(out.Snapshots) != 1 || out.Snapshots[0].Name != "next" {
		t.Errorf("snapshots = %v, %v; want next only", out, err)
	}
}

func TestSnapshotNames(t *testing.T) {
	f := newFixture(t)
	snapshot(t, f, "web", "daily")
	_, err := f.svc.CreateSnapshots(bg, &acliv1.CreateSnapshotsRequest{Vm: "web", Names: []string{"x", "daily"}})
	wantCode(t, err, codes.AlreadyExists, "vm web has a snapshot of this name")
	_, err = f.svc.CreateSnapshots(bg, &acliv1.CreateSnapshotsRequest{Vm: "web", Names: []string{"x", "x"}})
	wantCode(t, err, codes.InvalidArgument, `snapshot name "x" is given twice`)
	_, err = f.svc.CreateSnapshots(bg, &acliv1.CreateSnapshotsRequest{Vm: "nosuch", Names: []string{"x"}})
	wantCode(t, err, codes.NotFound, `vm "nosuch" not found`)
	// Another VM may use the name; the name alone is then ambiguous.
	snapshot(t, f, "db", "daily")
	_, err = f.svc.GetSnapshot(bg, &acliv1.GetSnapshotRequest{Snapshot: "daily"})
	wantCode(t, err, codes.InvalidArgument, `snapshot name "daily" is ambiguous: 2 snapshots have it`)
	out, err := f.svc.ListSnapshots(bg, &acliv1.ListSnapshotsRequest{Vm: "db"})
	if err != nil || len(out.Snapshots) != 1 || out.Snapshots[0].VmName != "db" {
		t.Fatalf("db's snapshots = %v, %v", out, err)
	}
	if sn := getSnapshot(t, f, strings.ToUpper(out.Snapshots[0].Uuid)); sn.VmName != "db" {
		t.Errorf("by UUID: %v", sn)
	}
	_, err = f.svc.GetSnapshot(bg, &acliv1.GetSnapshotRequest{Snapshot: strings.Repeat("x", state.MaxNameBytes+1)})
	wantCode(t, err, codes.InvalidArgument, "no name or UUID is longer than")
}

// While a snapshot is taken its names are held (a second one of the same
// name is refused), the VM may be read but not changed meanwhile, and a
// failed copy records nothing and leaves no volume.
func TestSnapshotWhileTaken(t *testing.T) {
	f := newFixture(t)
	changing, err := f.tasks.Begin(bg, func(image.Held) (image.Start, error) {
		return image.Start{Op: acliv1.TaskOperation_kVmUpdate, Locks: []string{"uuid-web"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.CreateSnapshots(bg, &acliv1.CreateSnapshotsRequest{Vm: "web", Names: []string{"a"}})
	wantCode(t, err, codes.Aborted, changing.PB().Uuid)
	f.tasks.end(changing)

	// A reader of the VM (a clone) does not stop a snapshot.
	_, done := f.tasks.read("uuid-web")
	defer done()
	f.vols.copyErr = errors.New("volume busy")
	gate := make(chan struct{})
	f.tasks.beforeWork = func() { <-gate }
	first, err := f.svc.CreateSnapshots(bg, &acliv1.CreateSnapshotsRequest{Vm: "web", Names: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.CreateSnapshots(bg, &acliv1.CreateSnapshotsRequest{Vm: "web", Names: []string{"b", "a"}})
	wantCode(t, err, codes.Aborted, first.Uuid)
	close(gate)
	end := f.tasks.wait(first)
	if end.Status != acliv1.TaskStatus_kFailed || end.Error != "snapshot vm web: volume busy" {
		t.Errorf("end = %v; want failed: snapshot vm web: volume busy", end)
	}
	out, err := f.svc.ListSnapshots(bg, &acliv1.ListSnapshotsRequest{Vm: "web"})
	if err != nil || len(out.Snapshots) != 0 {
		t.Errorf("snapshots = %v, %v; want none", out, err)
	}
}
