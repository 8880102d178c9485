package storage_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
)

// filesDriver knows the size of one file.
type filesDriver struct {
	fakeDriver
	files map[string]int64
}

func (d *filesDriver) FileSize(ctx context.Context, path string) (int64, error) {
	if n, ok := d.files[path]; ok {
		return n, nil
	}
	return 0, errors.New("no such file")
}

const (
	vmDisk   = "00000000-0000-4000-8000-000000000001"
	snapDisk = "00000000-0000-4000-8000-000000000002"
	imgDisk  = "00000000-0000-4000-8000-000000000003"
	vgDisk   = "00000000-0000-4000-8000-000000000004"
	cdrom    = "00000000-0000-4000-8000-000000000005"
	nowhere  = "00000000-0000-4000-8000-000000000006"
	snapCd   = "00000000-0000-4000-8000-000000000007"
)

// TestFindVdiskNamesItsHolder: a vDisk is found by UUID (any case) on a
// VM, snapshot, image or volume group, with what to name, lock and pause;
// a CD-ROM without a medium, an unknown UUID and a non-UUID are refused.
func TestFindVdiskNamesItsHolder(t *testing.T) {
	f := newFixture(t, storage.IscsiConfig{}, 1<<50)
	if _, err := f.db.Update(bg, func(tx *state.Tx) error {
		web := proto.Clone(tx.Vm("uuid-web")).(*acliv1.Vm)
		web.Disks = []*acliv1.Disk{{Uuid: vmDisk, Bus: "scsi", Index: 1, SizeBytes: gib}, {Uuid: cdrom, Bus: "ide", Cdrom: true}}
		tx.Put(state.VmKey(web.Uuid), web, tx.Rev(state.VmKey(web.Uuid)))
		tx.Put(state.SnapshotKey("uuid-sn"), &acliv1.Snapshot{Uuid: "uuid-sn", Name: "s1", VmUuid: web.Uuid,
			Vm: &acliv1.Vm{Disks: []*acliv1.Disk{{Uuid: snapDisk, Bus: "scsi", SizeBytes: 2 * gib, Container: state.DefaultContainer}, {Uuid: snapCd, Bus: "ide", Cdrom: true}}}}, 0)
		tx.Put(state.ImageKey(imgDisk), &acliv1.Image{Uuid: imgDisk, Name: "img", Container: state.DefaultContainer, VmdiskUuid: imgDisk, SizeBytes: 3 * gib}, 0)
		tx.Put(state.VgKey("uuid-vg"), &acliv1.VolumeGroup{Uuid: "uuid-vg", Name: "vg", Disks: []*acliv1.VgDisk{{Index: 2, Uuid: vgDisk, SizeBytes: 4 * gib}}}, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	find := func(id string) (storage.Source, error) {
		var s storage.Source
		var err error
		f.db.View(func(tx *state.Tx) { s, err = storage.FindVdisk(tx, "clone_from_vmdisk", id) })
		return s, err
	}
	for _, tt := range []struct {
		id, what, lock string
		size           int64
		kind           acliv1.EntityKind
		paused         bool
	}{
		{id: " " + vmDisk + " ", what: "vDisk scsi.1 of vm web", lock: "uuid-web", size: gib, kind: acliv1.EntityKind_kVm, paused: true},
		{id: snapDisk, what: "vDisk scsi.0 of snapshot s1", lock: "uuid-sn", size: 2 * gib, kind: acliv1.EntityKind_kSnapshot},
		{id: imgDisk, what: "image img", lock: imgDisk, size: 3 * gib, kind: acliv1.EntityKind_kImage},
		{id: "00000000-0000-4000-8000-000000000004", what: "vDisk 2 of volume group vg", lock: "uuid-vg", size: 4 * gib, kind: acliv1.EntityKind_kVolumeGroup},
	} {
		s, err := find(tt.id)
		if err != nil {
			t.Fatalf("%s: %v", tt.id, err)
		}
		if s.What != tt.what || s.Lock != tt.lock || s.Size != tt.size || s.Ref.GetKind() != tt.kind || s.Container != state.DefaultContainer || (s.Vm != nil) != tt.paused {
			t.Errorf("%s: %+v", tt.id, s)
		}
	}
	if s, err := find(strings.ToUpper(imgDisk)); err != nil || s.Vdisk != imgDisk {
		t.Errorf("upper-case UUID: %+v %v", s, err)
	}
	for _, tt := range []struct {
		id   string
		code codes.Code
	}{{cdrom, codes.NotFound}, {snapCd, codes.NotFound}, {nowhere, codes.NotFound}, {"web", codes.InvalidArgument}} {
		if _, err := find(tt.id); status.Code(err) != tt.code {
			t.Errorf("%s: %v; want %v", tt.id, err, tt.code)
		}
	}

	c := &storage.Containers{DB: f.db, Driver: &filesDriver{files: map[string]int64{"/default-container/iso/a.iso": 7}}, DriverName: "fake"}
	if s, err := c.FileSource(bg, storage.VmdiskPath("", vmDisk)); err != nil || s.Vdisk != vmDisk || s.Lock != "uuid-web" {
		t.Errorf("own path: %+v %v", s, err)
	}
	if s, err := c.FileSource(bg, "/default-container/iso/a.iso"); err != nil || s.File != "/default-container/iso/a.iso" || s.Size != 7 || s.Ref != nil {
		t.Errorf("file: %+v %v", s, err)
	}
	for _, tt := range []struct {
		path string
		code codes.Code
	}{
		{"default-container/iso/a.iso", codes.InvalidArgument},
		{"/default-container", codes.InvalidArgument},
		{"/other/iso/a.iso", codes.NotFound},
		{"/default-container/vdisks/" + nowhere, codes.NotFound},
		{"/default-container/iso/b.iso", codes.InvalidArgument},
	} {
		if _, err := c.FileSource(bg, tt.path); status.Code(err) != tt.code {
			t.Errorf("%s: %v; want %v", tt.path, err, tt.code)
		}
	}
	if _, err := (&storage.Containers{DB: f.db}).FileSource(bg, "/default-container/iso/a.iso"); status.Code(err) != codes.NotFound {
		t.Errorf("file without storage: %v", err)
	}
}
