package vm_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/vm"
)

// fakeDisks is one container, default-container, with free bytes left,
// and one image, iso (1 GiB); it records the volumes made, grown, copied
// and removed. onCopy, when set, runs as a copy is made; copyErr fails
// copies.
type fakeDisks struct {
	free    int64
	calls   []string
	onCopy  func()
	copyErr error
}

func (d *fakeDisks) Container(name string) (string, error) {
	if name != state.DefaultContainer {
		return "", apierr.NotFound("container", name, []string{state.DefaultContainer})
	}
	return name, nil
}

func (d *fakeDisks) Fits(container string, add int64, what string) error {
	if add > d.free {
		return apierr.Precondition(state.RuleCapacity, "container:"+container, "%s does not fit container %s", what, container)
	}
	return nil
}

func (d *fakeDisks) Create(_ context.Context, disk *acliv1.Disk) {
	d.calls = append(d.calls, fmt.Sprintf("create %s %d", disk.Bus, disk.SizeBytes))
}

func (d *fakeDisks) Remove(_ context.Context, disks []*acliv1.Disk) {
	for _, disk := range disks {
		d.calls = append(d.calls, fmt.Sprintf("remove %s.%d", disk.Bus, disk.Index))
	}
}

func (d *fakeDisks) Grow(_ context.Context, disk *acliv1.Disk, size int64) error {
	d.calls = append(d.calls, fmt.Sprintf("grow %s.%d %d", disk.Bus, disk.Index, size))
	return nil
}

var isoImage = vm.Source{What: "image iso", Ref: &acliv1.EntityRef{Kind: acliv1.EntityKind_kImage, Uuid: "uuid-iso", Name: "iso"},
	Read: "uuid-iso", Container: state.DefaultContainer, Size: gib, Image: "uuid-iso", Vdisk: "vol-iso"}

func (d *fakeDisks) CloneSource(_ context.Context, req *acliv1.CreateDiskRequest) (vm.Source, error) {
	if req.CloneFromImage != "iso" {
		return vm.Source{}, apierr.NotFound("image", req.CloneFromImage, []string{"iso"})
	}
	return isoImage, nil
}

func (d *fakeDisks) CopyInto(_ context.Context, src vm.Source, disk *acliv1.Disk) error {
	if d.onCopy != nil {
		d.onCopy()
	}
	if d.copyErr != nil {
		return d.copyErr
	}
	d.calls = append(d.calls, fmt.Sprintf("copy %s into %s.%d %d", src.What, disk.Bus, disk.Index, disk.SizeBytes))
	return nil
}

func disks(v *acliv1.Vm) []string {
	var out []string
	for _, d := range v.Disks {
		out = append(out, fmt.Sprintf("%s.%d/%d", d.Bus, d.Index, d.SizeBytes))
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// Disks take the first free index of their bus (or the one asked for),
// are kept sorted, make their volume after the record (CD-ROMs have none),
// and go with their volume after it.
func TestDisksAreAddedInOrderAndRemovedWithTheirVolume(t *testing.T) {
	f := newFake(t)
	for _, req := range []*acliv1.CreateDiskRequest{
		{Vm: "b", SizeBytes: gib},
		{Vm: "b", SizeBytes: 2 * gib, Bus: "SATA"},
		{Vm: "b", SizeBytes: 3 * gib},
		{Vm: "b", Cdrom: true},
		{Vm: "b", SizeBytes: gib, Index: ptr(int32(7))},
	} {
		if pb, err := f.svc.CreateDisk(bg, req); err != nil || pb.Status != acliv1.TaskStatus_kSucceeded {
			t.Fatalf("%v: %v %v", req, pb, err)
		}
	}
	want := []string{"ide.0/0", "sata.0/2147483648", "scsi.0/1073741824", "scsi.1/3221225472", "scsi.7/1073741824"}
	if got := disks(f.vm("b")); !slices.Equal(got, want) {
		t.Fatalf("disks %v, want %v", got, want)
	}
	pb, err := f.svc.DeleteDisk(bg, &acliv1.DeleteDiskRequest{Vm: "b", Index: 1})
	if err != nil || last(pb) != "disk scsi.1 removed from vm b" {
		t.Fatalf("delete: %v %v", pb, err)
	}
	wantCalls := []string{"create scsi 1073741824", "create sata 2147483648", "create scsi 3221225472", "create scsi 1073741824", "remove scsi.1"}
	if !slices.Equal(f.disks.calls, wantCalls) {
		t.Fatalf("storage calls %v, want %v", f.disks.calls, wantCalls)
	}
	if f.running() != 0 {
		t.Fatal("a task was left running")
	}
}

// Bad requests and refusals leave the VM and the volumes as they were and
// no task; a copy is made on the checked bus and container.
func TestDiskRefusals(t *testing.T) {
	f := newFake(t)
	f.svc.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "b", SizeBytes: gib, Bus: "ide", Index: ptr(int32(0))})
	f.disks.calls = nil
	before := disks(f.vm("b"))
	for _, tc := range []struct {
		req  any
		code codes.Code
		want string
	}{
		{&acliv1.CreateDiskRequest{Vm: "b", SizeBytes: gib, Bus: "scsy"}, codes.InvalidArgument, `bus "scsy" is unknown (did you mean "scsi"?)`},
		{&acliv1.CreateDiskRequest{Vm: "b", SizeBytes: gib, Bus: "usb"}, codes.InvalidArgument, `bus "usb" is unknown; use scsi, ide, sata or pci`},
		{&acliv1.CreateDiskRequest{Vm: "b", Cdrom: true, Bus: "pci"}, codes.InvalidArgument, "a CD-ROM cannot be on the pci bus; use ide, sata or scsi"},
		{&acliv1.CreateDiskRequest{Vm: "b"}, codes.InvalidArgument, "disk size 0 must be greater than 0, e.g. size=20G"},
		{&acliv1.CreateDiskRequest{Vm: "b", SizeBytes: gib, Bus: "ide", Index: ptr(int32(4))}, codes.InvalidArgument, "index 4 is out of range for the ide bus (0-3)"},
		{&acliv1.CreateDiskRequest{Vm: "b", SizeBytes: gib, Bus: "ide", Index: ptr(int32(0))}, codes.AlreadyExists, "disk ide.0 already exists: vm b already has this device; pick another index or omit it"},
		{&acliv1.CreateDiskRequest{Vm: "b", SizeBytes: gib, Container: "ctr2"}, codes.NotFound, `container "ctr2" not found...`},
		{&acliv1.CreateDiskRequest{Vm: "b", SizeBytes: 200 * gib}, codes.FailedPrecondition, "disk of vm b does not fit container default-container"},
		{&acliv1.CreateDiskRequest{Vm: "nosuch", SizeBytes: gib}, codes.NotFound, `vm "nosuch" not found...`},
		{&acliv1.DeleteDiskRequest{Vm: "b", Bus: "ide", Index: 1}, codes.NotFound, `disk "ide.1 of vm b" not found...`},
		{&acliv1.DeleteDiskRequest{Vm: "b", Bus: "floppy"}, codes.InvalidArgument, `bus "floppy" is unknown; use scsi, ide, sata or pci`},
	} {
		var err error
		switch r := tc.req.(type) {
		case *acliv1.CreateDiskRequest:
			_, err = f.svc.CreateDisk(bg, r)
		case *acliv1.DeleteDiskRequest:
			_, err = f.svc.DeleteDisk(bg, r)
		}
		wantErr(t, err, tc.code, tc.want)
	}
	// A full bus.
	for i := range 3 {
		f.svc.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "b", SizeBytes: 1, Bus: "ide", Index: ptr(int32(i + 1))})
	}
	_, err := f.svc.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "b", SizeBytes: 1, Bus: "ide"})
	wantErr(t, err, codes.FailedPrecondition, "the ide bus of vm b is full (4 devices); use another bus")
	if got := disks(f.vm("b")); len(got) != len(before)+3 || f.running() != 0 {
		t.Fatalf("refusals changed the disks to %v or left %d task(s)", got, f.running())
	}
	f.disks.calls = nil
	if _, err := f.svc.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "b", CloneFromImage: "iso", Cdrom: true, Bus: "sata"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"copy image iso into sata.0 1073741824"}; !slices.Equal(f.disks.calls, want) {
		t.Fatalf("storage calls %v, want %v", f.disks.calls, want)
	}
}

// Deleting the boot disk leaves the VM with no boot device set.
func TestDeletingTheBootDiskClearsIt(t *testing.T) {
	f := newFake(t)
	f.svc.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "b", SizeBytes: gib})
	if _, err := f.svc.Edit(bg, "b", acliv1.TaskOperation_kVmUpdateBootDevice, func(cur *acliv1.Vm) (*acliv1.Vm, string, error) {
		v := proto.Clone(cur).(*acliv1.Vm)
		v.BootDiskAddr = "scsi.0"
		return v, "", nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.DeleteDisk(bg, &acliv1.DeleteDiskRequest{Vm: "b"}); err != nil {
		t.Fatal(err)
	}
	if v := f.vm("b"); v.BootDiskAddr != "" || len(v.Disks) != 0 {
		t.Fatalf("after deleting the boot disk: %v", v)
	}
}
