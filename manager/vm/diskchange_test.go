package vm_test

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks/taskstest"
	"github.com/acli-dev/acli/manager/vm"
)

// newCopyFake is the fake with its quick tasks begun by taskstest, whose
// locks (reads too) are the state.DB's holds as the manager's start
// commit takes them.
func newCopyFake(t *testing.T) (*fake, *vm.Service, *taskstest.Starter) {
	f := newFake(t)
	ts := taskstest.New(f.db)
	return f, vm.New(f, ts, f.db, f.drv, f.disks), ts
}

// A cloned disk is copied, then recorded with its source; while it copies
// its task reads the image: another copy of it may run, a change of it
// may not. A refused record removes the copy; a failed copy records
// nothing.
func TestCloneDiskReadsItsSourceWhileItCopies(t *testing.T) {
	f, svc, ts := newCopyFake(t)
	var during []string
	f.disks.onCopy = func() {
		f.disks.onCopy = nil
		// A second copy of the image, into another VM, while this one runs.
		if _, err := svc.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "a", CloneFromImage: "iso"}); err != nil {
			t.Errorf("a second copy of a read image: %v", err)
		}
		// A change of the image is refused, naming the copy.
		_, err := ts.Begin(bg, "image", acliv1.TaskOperation_kImageUpdate, []*acliv1.EntityRef{isoImage.Ref}, "uuid-iso")
		during = append(during, status.Convert(err).Message())
		during = append(during, ts.Held()...)
	}
	pb, err := svc.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "b", CloneFromImage: "iso", SizeBytes: 2 * gib})
	if err != nil || last(pb) != "disk scsi.0 (2 GiB, cloned from image iso) added to vm b" {
		t.Fatalf("clone: %v %v", pb, err)
	}
	if len(during) != 3 || during[0] != "image iso is busy with task task-1 (kVmDiskCreate); wait for it to finish" ||
		!slices.Contains(during[1:], state.Read("uuid-iso")) || !slices.Contains(during[1:], "uuid-b") {
		t.Fatalf("while copying: %q; want the image refused to a change, b held and iso read", during)
	}
	d := f.vm("b").Disks[0]
	if d.SourceImageUuid != "uuid-iso" || d.SizeBytes != 2*gib || d.Container != state.DefaultContainer {
		t.Fatalf("recorded disk %v", d)
	}
	if len(ts.Held()) != 0 {
		t.Fatalf("held after the copies: %v", ts.Held())
	}
	// Now the image may change.
	q, err := ts.Begin(bg, "image", acliv1.TaskOperation_kImageUpdate, []*acliv1.EntityRef{isoImage.Ref}, "uuid-iso")
	if err != nil {
		t.Fatalf("a change of the image once no copy reads it: %v", err)
	}
	// And no copy reads it while it changes.
	_, err = svc.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "b", CloneFromImage: "iso"})
	wantErr(t, err, codes.Aborted, "image iso is busy with task task-4 (kImageUpdate); wait for it to finish")
	q.Drop()

	f.disks.calls = nil
	ts.FailNext = errBoom
	if _, err := svc.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "b", CloneFromImage: "iso", Bus: "sata"}); err != errBoom {
		t.Fatalf("refused record: %v", err)
	}
	f.disks.copyErr = errBoom
	if _, err := svc.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "b", CloneFromImage: "iso", Bus: "sata"}); err != errBoom {
		t.Fatalf("failed copy: %v", err)
	}
	if want := []string{"copy image iso into sata.0 1073741824", "remove sata.0"}; !slices.Equal(f.disks.calls, want) {
		t.Fatalf("storage calls %v, want %v", f.disks.calls, want)
	}
	if got := disks(f.vm("b")); !slices.Equal(got, []string{"scsi.0/2147483648"}) || len(ts.Held()) != 0 {
		t.Fatalf("after the failures: disks %v, held %v", got, ts.Held())
	}
}

// A disk grows (never shrinks); a CD-ROM's medium is inserted (a copy
// read as a clone's is) and ejected, the old medium's volume removed after
// the record; a disk of a volume group is changed only by vg.* commands;
// the boot device is a disk of the VM's.
func TestUpdateDisk(t *testing.T) {
	f, svc, ts := newCopyFake(t)
	ok := func(pb *acliv1.Task, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return last(pb)
	}
	ok(svc.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "b", SizeBytes: gib}))
	ok(svc.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "b", Cdrom: true}))
	f.disks.calls = nil
	for _, tc := range []struct {
		req  *acliv1.UpdateDiskRequest
		want string
	}{
		{&acliv1.UpdateDiskRequest{Vm: "b", SizeBytes: 3 * gib}, "disk scsi.0 of vm b grown from 1 GiB to 3 GiB"},
		{&acliv1.UpdateDiskRequest{Vm: "b", Bus: "ide", CloneFromImage: "iso"}, "image iso inserted into CD-ROM ide.0 of vm b"},
		{&acliv1.UpdateDiskRequest{Vm: "b", Bus: "ide", CloneFromImage: "iso"}, "image iso inserted into CD-ROM ide.0 of vm b"},
		{&acliv1.UpdateDiskRequest{Vm: "b", Bus: "ide", Empty: true}, "CD-ROM ide.0 of vm b ejected"},
	} {
		if got := ok(svc.UpdateDisk(bg, tc.req)); got != tc.want {
			t.Fatalf("%v: %q, want %q", tc.req, got, tc.want)
		}
	}
	want := []string{"grow scsi.0 3221225472", "copy image iso into ide.0 1073741824", "copy image iso into ide.0 1073741824", "remove ide.0", "remove ide.0"}
	if !slices.Equal(f.disks.calls, want) {
		t.Fatalf("storage calls %v, want %v", f.disks.calls, want)
	}
	if got := disks(f.vm("b")); !slices.Equal(got, []string{"ide.0/0", "scsi.0/3221225472"}) {
		t.Fatalf("disks %v", got)
	}

	// A medium copied while a task changes the image is refused.
	q, err := ts.Begin(bg, "image", acliv1.TaskOperation_kImageUpdate, []*acliv1.EntityRef{isoImage.Ref}, "uuid-iso")
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.UpdateDisk(bg, &acliv1.UpdateDiskRequest{Vm: "b", Bus: "ide", CloneFromImage: "iso"})
	wantErr(t, err, codes.Aborted, "image iso is busy with task ...")
	q.Drop()

	vgDisk(t, f, "b")
	f.disks.calls = nil
	for _, tc := range []struct {
		req  *acliv1.UpdateDiskRequest
		code codes.Code
		want string
	}{
		{&acliv1.UpdateDiskRequest{Vm: "b"}, codes.InvalidArgument, "nothing to update: give new_size= (grow a disk), empty=true (eject a CD-ROM) or clone_from_image= (insert an ISO)"},
		{&acliv1.UpdateDiskRequest{Vm: "b", SizeBytes: gib, Empty: true}, codes.InvalidArgument, "give only one of new_size=, empty=true and clone_from_image="},
		{&acliv1.UpdateDiskRequest{Vm: "b", SizeBytes: gib}, codes.FailedPrecondition, "disk scsi.0 of vm b is 3 GiB; a disk only grows (shrinking would cut off guest data)"},
		{&acliv1.UpdateDiskRequest{Vm: "b", SizeBytes: 200 * gib}, codes.FailedPrecondition, "growing disk scsi.0 of vm b does not fit container default-container"},
		{&acliv1.UpdateDiskRequest{Vm: "b", Bus: "ide", SizeBytes: 2 * gib}, codes.InvalidArgument, "disk ide.0 of vm b is a CD-ROM; its size is its medium's"},
		{&acliv1.UpdateDiskRequest{Vm: "b", Empty: true}, codes.InvalidArgument, "disk scsi.0 of vm b is not a CD-ROM; only a CD-ROM's medium is ejected or inserted"},
		{&acliv1.UpdateDiskRequest{Vm: "b", Index: 1, Empty: true}, codes.FailedPrecondition, "disk scsi.1 of vm b comes from a volume group; change it with vg.* commands"},
		{&acliv1.UpdateDiskRequest{Vm: "b", Index: 9, SizeBytes: gib}, codes.NotFound, `disk "scsi.9 of vm b" not found...`},
		{&acliv1.UpdateDiskRequest{Vm: "b", Bus: "ide", CloneFromImage: "nosuch"}, codes.NotFound, `image "nosuch" not found...`},
	} {
		_, err := svc.UpdateDisk(bg, tc.req)
		wantErr(t, err, tc.code, tc.want)
	}
	if len(f.disks.calls) != 0 || len(ts.Held()) != 0 || f.running() != 0 {
		t.Fatalf("refusals left storage calls %v, holds %v", f.disks.calls, ts.Held())
	}

	if got := ok(svc.UpdateBootDevice(bg, &acliv1.UpdateBootDeviceRequest{Vm: "b", Bus: "ide"})); got != "vm b boots from ide.0" {
		t.Fatalf("boot device: %q", got)
	}
	_, err = svc.UpdateBootDevice(bg, &acliv1.UpdateBootDeviceRequest{Vm: "b", Index: 1})
	wantErr(t, err, codes.InvalidArgument, "disk scsi.1 of vm b comes from a volume group over iSCSI and cannot be the boot device")
	_, err = svc.UpdateBootDevice(bg, &acliv1.UpdateBootDeviceRequest{Vm: "a"})
	wantErr(t, err, codes.NotFound, `disk "scsi.0 of vm a" not found...`)
	if v := f.vm("b"); v.BootDiskAddr != "ide.0" {
		t.Fatalf("boot device %q after the refusals, want ide.0", v.BootDiskAddr)
	}
}

// vgDisk gives VM name a disk scsi.1 from a volume group.
func vgDisk(t *testing.T, f *fake, name string) {
	t.Helper()
	v := proto.Clone(f.vm(name)).(*acliv1.Vm)
	v.Disks = append(v.Disks, &acliv1.Disk{Bus: "scsi", Index: 1, Uuid: "uuid-vgd", VolumeGroupUuid: "uuid-vg", SizeBytes: gib})
	vm.SortDisks(v.Disks)
	if _, err := f.db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.VmKey(v.Uuid), v, state.AnyRev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
