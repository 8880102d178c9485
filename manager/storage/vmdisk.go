package storage

import (
	"cmp"
	"context"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/vm"
)

// A VM's disks as manager/vm asks for them (vm.Disks): the sources of
// cloned disks, their copies and growing a volume.

// CloneSource resolves the one clone_from_* of a VM disk request: an
// image, a vDisk (FindVdisk) or a file (FileSource).
func (c *Containers) CloneSource(ctx context.Context, req *acliv1.CreateDiskRequest) (vm.Source, error) {
	n := 0
	for _, s := range []string{req.CloneFromImage, req.CloneFromVmdisk, req.CloneFromAdsfFile} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return vm.Source{}, apierr.BadField("clone_from_image", "give only one of clone_from_image=, clone_from_vmdisk= and clone_from_adsf_file=")
	}
	var src Source
	var err error
	if req.CloneFromAdsfFile != "" {
		src, err = c.FileSource(ctx, req.CloneFromAdsfFile)
	} else {
		c.DB.View(func(tx *state.Tx) {
			if req.CloneFromVmdisk != "" {
				src, err = FindVdisk(tx, "clone_from_vmdisk", req.CloneFromVmdisk)
				return
			}
			var img *acliv1.Image
			if img, err = FindImage(tx, "clone_from_image", req.CloneFromImage); err == nil {
				src = ImageSource(img)
			}
		})
	}
	if err != nil {
		return vm.Source{}, err
	}
	out := vm.Source{What: src.What, Ref: src.Ref, Read: src.Lock, Container: src.Container, Size: src.Size, Vdisk: src.Vdisk, File: src.File}
	if src.Ref != nil && src.Ref.Kind == acliv1.EntityKind_kImage {
		out.Image = src.Ref.Uuid
	}
	return out, nil
}

// CopyInto copies src into d's new volume, the VM whose vDisk it is paused
// meanwhile when it runs (as committed now: the copying task reads it).
func (c *Containers) CopyInto(ctx context.Context, src vm.Source, d *acliv1.Disk) error {
	s := Source{Container: src.Container, Vdisk: src.Vdisk, File: src.File, Size: src.Size, What: src.What, Ref: src.Ref, Lock: src.Read}
	if src.Ref != nil && src.Ref.Kind == acliv1.EntityKind_kVm {
		c.DB.View(func(tx *state.Tx) {
			if v := tx.Vm(src.Ref.Uuid); v != nil {
				s.Vm = v
			}
		})
	}
	return c.Copy(ctx, []Copy{{Src: s, Container: cmp.Or(d.Container, state.DefaultContainer), Dst: d.Uuid, Size: d.SizeBytes}})
}

// Grow grows a disk's volume to size bytes (a driver keeping no volumes
// has none to grow).
func (c *Containers) Grow(ctx context.Context, d *acliv1.Disk, size int64) error {
	if c.Driver == nil {
		return nil
	}
	return c.Driver.ResizeVolume(ctx, cmp.Or(d.Container, state.DefaultContainer), d.Uuid, size)
}

// WithVmdiskPaths fills in each own vDisk's path in its container.
func WithVmdiskPaths(v *acliv1.Vm) *acliv1.Vm {
	v = proto.Clone(v).(*acliv1.Vm)
	for _, d := range v.Disks {
		if state.HasData(d) {
			d.VmdiskPath = VmdiskPath(d.Container, d.Uuid)
		}
	}
	return v
}
