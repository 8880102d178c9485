package storage

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
	"github.com/acli-dev/acli/manager/vm"
)

// The sources of vDisk copies: a vDisk of a VM, snapshot, image or volume
// group, found by UUID, or a file in a container.

// FindVdisk finds a vDisk holding data by UUID among the VMs', snapshots',
// images' and volume groups' (field names the request field).
func FindVdisk(tx *state.Tx, field, id string) (Source, error) {
	id = strings.ToLower(strings.TrimSpace(id))
	if _, err := uuid.Parse(id); err != nil {
		return Source{}, apierr.BadField(field, "%s=%q is not a vDisk UUID (vm.get <vm> include_vmdisk_paths=1 shows them)", field, id)
	}
	disk := func(d *acliv1.Disk) Source {
		return Source{Container: cmp.Or(d.Container, state.DefaultContainer), Vdisk: id, Size: d.SizeBytes}
	}
	for _, v := range tx.Vms() {
		for _, d := range v.Disks {
			if d.Uuid == id && state.HasData(d) {
				s := disk(d)
				s.What, s.Ref, s.Lock, s.Vm = "vDisk "+vm.DiskName(d)+" of vm "+v.Name, state.VmRef(v), v.Uuid, v
				return s, nil
			}
		}
	}
	for _, sn := range tx.Snapshots() {
		for _, d := range sn.Vm.GetDisks() {
			if d.Uuid == id && state.HasData(d) {
				s := disk(d)
				s.What, s.Ref, s.Lock = "vDisk "+vm.DiskName(d)+" of snapshot "+sn.Name,
					&acliv1.EntityRef{Kind: acliv1.EntityKind_kSnapshot, Uuid: sn.Uuid, Name: sn.Name}, sn.Uuid
				return s, nil
			}
		}
	}
	if im := tx.Image(id); im != nil {
		return ImageSource(im), nil
	}
	for _, vg := range tx.VolumeGroups() {
		for _, d := range vg.Disks {
			if d.Uuid == id {
				return Source{Container: cmp.Or(d.Container, state.DefaultContainer), Vdisk: id, Size: d.SizeBytes,
					What: fmt.Sprintf("vDisk %d of volume group %s", d.Index, vg.Name), Ref: VgRef(vg), Lock: vg.Uuid}, nil
			}
		}
	}
	return Source{}, apierr.NotFound("vDisk", id, nil)
}

// FindImage resolves an image by UUID or name (image names are unique).
func FindImage(tx *state.Tx, field, ref string) (*acliv1.Image, error) {
	if err := state.CheckRef(field, ref); err != nil {
		return nil, err
	}
	if im := tx.Image(ref); im != nil {
		return im, nil
	}
	if im := ImageNamed(tx, ref); im != nil {
		return im, nil
	}
	all := tx.Images()
	names := make([]string, len(all))
	for i, im := range all {
		names[i] = im.Name
	}
	return nil, apierr.NotFound("image", ref, names)
}

// ImageNamed is the image of a name (nil if none).
func ImageNamed(tx *state.Tx, name string) *acliv1.Image {
	for _, im := range tx.Images() {
		if im.Name == name {
			return im
		}
	}
	return nil
}

// ImageSource is an image's volume.
func ImageSource(im *acliv1.Image) Source {
	return Source{Container: im.Container, Vdisk: im.VmdiskUuid, Size: im.SizeBytes, What: "image " + im.Name,
		Ref: &acliv1.EntityRef{Kind: acliv1.EntityKind_kImage, Uuid: im.Uuid, Name: im.Name}, Lock: im.Uuid}
}

// FileSource resolves clone_from_adsf_file: a vDisk's own path
// (VmdiskPath) names that vDisk; any other file is asked of the driver.
func (c *Containers) FileSource(ctx context.Context, path string) (Source, error) {
	container, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !strings.HasPrefix(path, "/") || container == "" || rest == "" {
		return Source{}, apierr.BadField("clone_from_adsf_file", "clone_from_adsf_file=%q is not /<container>/<path>, e.g. /%s/vdisks/<uuid>", path, state.DefaultContainer)
	}
	if _, err := c.Container(container); err != nil {
		return Source{}, err
	}
	if id, ok := strings.CutPrefix(rest, "vdisks/"); ok {
		var src Source
		var err error
		c.DB.View(func(tx *state.Tx) { src, err = FindVdisk(tx, "clone_from_adsf_file", id) })
		if err == nil && src.Container != container {
			err = apierr.NotFound("file", path, nil)
		}
		return src, err
	}
	if c.Driver == nil {
		return Source{}, apierr.NotFound("file", path, nil)
	}
	size, err := c.Driver.FileSize(ctx, path)
	if err != nil {
		return Source{}, apierr.BadField("clone_from_adsf_file", "clone_from_adsf_file=%s: %v", path, err)
	}
	return Source{Container: container, File: path, Size: size, What: "file " + path}, nil
}

// Source resolves a vDisk to copy by UUID (FindVdisk), refusing one a
// task is changing.
func (c *Containers) Source(field, id string) (Source, error) {
	var src Source
	var err error
	c.DB.View(func(tx *state.Tx) { src, err = FindVdisk(tx, field, id) })
	if err != nil {
		return src, err
	}
	return src, c.Readable(src)
}

// Readable refuses a copy source a task is changing (any number of
// tasks may read one at once).
func (c *Containers) Readable(src Source) error {
	if src.Lock == "" || c.Changing == nil {
		return nil
	}
	if t := c.Changing(src.Lock); t != nil {
		return apierr.Busy(tasks.Noun(src.Ref.Kind), src.Ref.Name, t.Uuid, t.Operation.String())
	}
	return nil
}
