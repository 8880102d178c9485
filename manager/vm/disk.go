package vm

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// Disks is what a VM's disks need of storage (storage.Containers): the
// containers, the volumes, and the sources and copies of cloned disks.
type Disks interface {
	// Container checks a container name ("" is the default) and returns it.
	Container(name string) (string, error)
	// Fits refuses, naming what, adding bytes a container cannot hold as
	// committed.
	Fits(container string, add int64, what string) error
	// Create makes a new disk's empty volume; one not made is made at
	// power-on.
	Create(ctx context.Context, d *acliv1.Disk)
	// Remove deletes the volumes of disks whose records are gone.
	Remove(ctx context.Context, disks []*acliv1.Disk)
	// Grow grows a disk's volume to size bytes.
	Grow(ctx context.Context, d *acliv1.Disk, size int64) error
	// CloneSource resolves the one clone_from_* of req: an image, a vDisk
	// or a file.
	CloneSource(ctx context.Context, req *acliv1.CreateDiskRequest) (Source, error)
	// CopyInto copies src into d's new volume (d.Uuid, d.Container,
	// d.SizeBytes), a running VM it reads paused meanwhile; on failure no
	// volume is left.
	CopyInto(ctx context.Context, src Source, d *acliv1.Disk) error
}

// Source is the data a cloned disk is copied from (Disks.CloneSource).
type Source struct {
	What string // "image ubuntu", for messages
	// Ref is the entity holding it, named by the task (nil: a file); the
	// task reads Read while it copies ("": nothing to read).
	Ref       *acliv1.EntityRef
	Read      string
	Container string
	Size      int64
	// Image, Vdisk: the image or vDisk it is (what the disk records it was
	// cloned from); File: the container path of a file.
	Image, Vdisk, File string
}

var diskBuses = []string{"scsi", "ide", "sata", "pci"}

// maxDiskIndex is the number of devices each bus takes.
var maxDiskIndex = map[string]int32{"scsi": 256, "ide": 4, "sata": 6, "pci": 32}

// CheckBus checks a disk bus name (any case) and returns it in lower case.
func CheckBus(bus string) (string, error) {
	b := strings.ToLower(bus)
	if slices.Contains(diskBuses, b) {
		return b, nil
	}
	if s := apierr.Nearest(b, diskBuses); s != "" {
		return "", apierr.BadField("bus", "bus %q is unknown (did you mean %q?)", bus, s)
	}
	return "", apierr.BadField("bus", "bus %q is unknown; use scsi, ide, sata or pci", bus)
}

// DiskName is a VM disk's address, bus.index.
func DiskName(d *acliv1.Disk) string { return fmt.Sprintf("%s.%d", d.Bus, d.Index) }

// SortDisks orders disks by bus, then index.
func SortDisks(ds []*acliv1.Disk) {
	slices.SortFunc(ds, func(a, b *acliv1.Disk) int {
		return cmp.Or(strings.Compare(a.Bus, b.Bus), cmp.Compare(a.Index, b.Index))
	})
}

// NextDiskIndex is the requested index on bus when free, else the first
// free one.
func NextDiskIndex(cur *acliv1.Vm, bus string, want *int32) (int32, error) {
	used := map[int32]bool{}
	for _, d := range cur.Disks {
		if d.Bus == bus {
			used[d.Index] = true
		}
	}
	if want != nil {
		if used[*want] {
			return 0, apierr.AlreadyExists("disk", fmt.Sprintf("%s.%d", bus, *want), "vm "+cur.Name+" already has this device; pick another index or omit it")
		}
		return *want, nil
	}
	for i := int32(0); i < maxDiskIndex[bus]; i++ {
		if !used[i] {
			return i, nil
		}
	}
	return 0, apierr.Precondition("DISK_SLOTS", "vm:"+cur.Name, "the %s bus of vm %s is full (%d devices); use another bus", bus, cur.Name, maxDiskIndex[bus])
}

// CreateDisk adds a disk to a VM: empty (its volume made now, or at
// power-on), a CD-ROM, or a copy of an image, vDisk or file (Disks.Clone).
func (s *Service) CreateDisk(ctx context.Context, req *acliv1.CreateDiskRequest) (*acliv1.Task, error) {
	bus := req.Bus
	if bus == "" {
		bus = "scsi"
		if req.Cdrom {
			bus = "ide"
		}
	}
	bus, err := CheckBus(bus)
	if err != nil {
		return nil, err
	}
	clone := req.CloneFromImage != "" || req.CloneFromVmdisk != "" || req.CloneFromAdsfFile != ""
	switch {
	case req.Cdrom && bus == "pci":
		return nil, apierr.BadField("bus", "a CD-ROM cannot be on the pci bus; use ide, sata or scsi")
	case req.SizeBytes < 0 || (!req.Cdrom && req.SizeBytes == 0 && !clone):
		return nil, apierr.BadField("size_bytes", "disk size %d must be greater than 0, e.g. size=20G", req.SizeBytes)
	case req.Index != nil && (*req.Index < 0 || *req.Index >= maxDiskIndex[bus]):
		return nil, apierr.BadField("index", "index %d is out of range for the %s bus (0-%d)", *req.Index, bus, maxDiskIndex[bus]-1)
	}
	container := cmp.Or(req.Container, state.DefaultContainer)
	if clone {
		return s.cloneDisk(ctx, req, bus, container)
	}
	var made *acliv1.Disk
	task, err := s.Edit(ctx, req.Vm, acliv1.TaskOperation_kVmDiskCreate, func(cur *acliv1.Vm) (*acliv1.Vm, string, error) {
		idx, err := NextDiskIndex(cur, bus, req.Index)
		if err == nil {
			container, err = s.disks.Container(container)
		}
		if err == nil {
			err = s.disks.Fits(container, req.SizeBytes, "disk of vm "+cur.Name)
		}
		if err != nil {
			return nil, "", err
		}
		d := &acliv1.Disk{Index: idx, Uuid: uuid.NewString(), Bus: bus, SizeBytes: req.SizeBytes, Container: container, Cdrom: req.Cdrom}
		made = d
		v := proto.Clone(cur).(*acliv1.Vm)
		v.Disks = append(v.Disks, d)
		SortDisks(v.Disks)
		what := scheduler.Bytes(d.SizeBytes)
		if d.Cdrom {
			what = "CD-ROM"
		}
		return v, fmt.Sprintf("disk %s (%s) added to vm %s", DiskName(d), what, cur.Name), nil
	})
	// The volume follows its record.
	if err == nil && state.HasData(made) {
		s.disks.Create(ctx, made)
	}
	return task, err
}

// DeleteDisk removes a disk from a VM, then its volume.
func (s *Service) DeleteDisk(ctx context.Context, req *acliv1.DeleteDiskRequest) (*acliv1.Task, error) {
	bus, err := CheckBus(cmp.Or(req.Bus, "scsi"))
	if err != nil {
		return nil, err
	}
	var gone *acliv1.Disk
	task, err := s.Edit(ctx, req.Vm, acliv1.TaskOperation_kVmDiskDelete, func(cur *acliv1.Vm) (*acliv1.Vm, string, error) {
		name := fmt.Sprintf("%s.%d", bus, req.Index)
		var names []string
		v := proto.Clone(cur).(*acliv1.Vm)
		v.Disks = slices.DeleteFunc(v.Disks, func(d *acliv1.Disk) bool {
			names = append(names, DiskName(d))
			if d.Bus == bus && d.Index == req.Index {
				gone = d
			}
			return d.Bus == bus && d.Index == req.Index
		})
		if gone == nil {
			return nil, "", apierr.NotFound("disk", name+" of vm "+cur.Name, names)
		}
		if v.BootDiskAddr == name {
			v.BootDiskAddr = ""
		}
		return v, fmt.Sprintf("disk %s removed from vm %s", name, cur.Name), nil
	})
	// The record went first: a volume left by a failure here is unused
	// space, never a disk without its data.
	if err == nil {
		s.disks.Remove(ctx, []*acliv1.Disk{gone})
	}
	return task, err
}
