package storage_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
	"github.com/acli-dev/acli/manager/vm"
)

// growDriver also grows volumes.
type growDriver struct{ filesDriver }

func (d *growDriver) ResizeVolume(ctx context.Context, container, id string, size int64) error {
	d.add("resize %s %s %d", container, id, size)
	return nil
}

// A VM disk's clone_from_* resolves to what manager/vm records and reads:
// an image (by name) is read by its UUID and recorded as its source, a
// VM's vDisk is read by the VM's UUID and recorded by its own, a file is
// read by no one. Its copy pauses the VM as committed now; a disk grows
// in its container.
func TestVmDiskSourcesAndCopies(t *testing.T) {
	f := newFixture(t, storage.IscsiConfig{}, 1<<50)
	if _, err := f.db.Update(bg, func(tx *state.Tx) error {
		web := proto.Clone(tx.Vm("uuid-web")).(*acliv1.Vm)
		web.Disks = []*acliv1.Disk{{Uuid: vmDisk, Bus: "scsi", Index: 1, SizeBytes: gib}}
		tx.Put(state.VmKey(web.Uuid), web, tx.Rev(state.VmKey(web.Uuid)))
		tx.Put(state.ImageKey(imgDisk), &acliv1.Image{Uuid: imgDisk, Name: "img", Container: state.DefaultContainer, VmdiskUuid: imgDisk, SizeBytes: 3 * gib}, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	d := &growDriver{filesDriver{files: map[string]int64{"/default-container/iso/x.iso": 5}}}
	c := &storage.Containers{DB: f.db, Driver: d, Pauser: d, DriverName: "fake"}
	src := func(req *acliv1.CreateDiskRequest) vm.Source {
		t.Helper()
		s, err := c.CloneSource(bg, req)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	img := src(&acliv1.CreateDiskRequest{CloneFromImage: "img"})
	if img.Read != imgDisk || img.Image != imgDisk || img.Vdisk != imgDisk || img.What != "image img" || img.Size != 3*gib || img.Ref.Kind != acliv1.EntityKind_kImage {
		t.Fatalf("image source %+v", img)
	}
	vd := src(&acliv1.CreateDiskRequest{CloneFromVmdisk: vmDisk})
	if vd.Read != "uuid-web" || vd.Image != "" || vd.Vdisk != vmDisk || vd.What != "vDisk scsi.1 of vm web" || vd.Ref.Uuid != "uuid-web" {
		t.Fatalf("vDisk source %+v", vd)
	}
	file := src(&acliv1.CreateDiskRequest{CloneFromAdsfFile: "/default-container/iso/x.iso"})
	if file.Read != "" || file.Ref != nil || file.File != "/default-container/iso/x.iso" || file.Size != 5 {
		t.Fatalf("file source %+v", file)
	}
	for _, tc := range []struct {
		req  *acliv1.CreateDiskRequest
		code codes.Code
		msg  string
	}{
		{&acliv1.CreateDiskRequest{CloneFromImage: "img", CloneFromVmdisk: vmDisk}, codes.InvalidArgument, "give only one of clone_from_image=, clone_from_vmdisk= and clone_from_adsf_file="},
		{&acliv1.CreateDiskRequest{CloneFromImage: "imh"}, codes.NotFound, `image "imh" not found`},
		{&acliv1.CreateDiskRequest{CloneFromVmdisk: nowhere}, codes.NotFound, `vDisk "` + nowhere + `" not found`},
	} {
		_, err := c.CloneSource(bg, tc.req)
		if st := status.Convert(err); st.Code() != tc.code || !strings.HasPrefix(st.Message(), tc.msg) {
			t.Errorf("%v: %v, want %s %q", tc.req, err, tc.code, tc.msg)
		}
	}

	for i, s := range []vm.Source{vd, img, file} {
		if err := c.CopyInto(bg, s, &acliv1.Disk{Uuid: []string{"n1", "n2", "n3"}[i], SizeBytes: 4 * gib}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Grow(bg, &acliv1.Disk{Uuid: "n1"}, 8*gib); err != nil {
		t.Fatal(err)
	}
	want := []string{"pause web on h1", "clone default-container " + vmDisk + "->n1 4294967296 paused=1", "resume web",
		"clone default-container " + imgDisk + "->n2 4294967296 paused=0", "file /default-container/iso/x.iso->n3 4294967296 paused=0",
		"resize default-container n1 8589934592"}
	if !slices.Equal(d.log, want) {
		t.Fatalf("driver calls\n%s\nwant\n%s", strings.Join(d.log, "\n"), strings.Join(want, "\n"))
	}

	var web *acliv1.Vm
	f.db.View(func(tx *state.Tx) { web = tx.Vm("uuid-web") })
	if got := storage.WithVmdiskPaths(web).Disks[0].VmdiskPath; got != "/default-container/vdisks/"+vmDisk || web.Disks[0].VmdiskPath != "" {
		t.Fatalf("vmdisk path %q (the record's %q)", got, web.Disks[0].VmdiskPath)
	}
}
