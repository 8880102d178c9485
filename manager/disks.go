package manager

import (
	"cmp"
	"context"
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/image"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
	"github.com/acli-dev/acli/manager/vm"
)

// VM disk actions beyond create/delete: clones, resize, CD-ROM media, the
// boot device and vDisk paths.

// withVmdiskPaths fills in each own vDisk's path in its container.
func withVmdiskPaths(v *acliv1.Vm) *acliv1.Vm {
	v = proto.Clone(v).(*acliv1.Vm)
	for _, d := range v.Disks {
		if state.HasData(d) {
			d.VmdiskPath = storage.VmdiskPath(d.Container, d.Uuid)
		}
	}
	return v
}

// cloneSource resolves the one clone_from_* of a disk request.
func (m *Manager) cloneSource(ctx context.Context, req *acliv1.CreateDiskRequest) (storage.Source, error) {
	n := 0
	for _, s := range []string{req.CloneFromImage, req.CloneFromVmdisk, req.CloneFromAdsfFile} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return storage.Source{}, apierr.BadField("clone_from_image", "give only one of clone_from_image=, clone_from_vmdisk= and clone_from_adsf_file=")
	}
	if req.CloneFromAdsfFile != "" {
		return m.stor.containers.FileSource(ctx, req.CloneFromAdsfFile)
	}
	var src storage.Source
	var err error
	m.db.View(func(tx *state.Tx) {
		if req.CloneFromVmdisk != "" {
			src, err = storage.FindVdisk(tx, "clone_from_vmdisk", req.CloneFromVmdisk)
			return
		}
		var img *acliv1.Image
		if img, err = image.FindImage(tx, "clone_from_image", req.CloneFromImage); err == nil {
			src = storage.ImageSource(img)
		}
	})
	return src, err
}

// createDiskClone adds a vDisk holding a copy of an image, a vDisk or a
// file: the driver copies the data (a sparse copy), then the disk is
// recorded.
func (m *Manager) createDiskClone(ctx context.Context, req *acliv1.CreateDiskRequest, bus, container string) (*acliv1.Task, error) {
	src, err := m.cloneSource(ctx, req)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	r, err := m.vmLocked("vm", req.Vm)
	if err == nil {
		err = m.checkBusyLocked("vm", r.pb.Name, r.pb.Uuid)
	}
	if err == nil {
		err = m.srcHeldLocked(src)
	}
	if err == nil {
		container, err = m.containerLocked(container)
	}
	if err == nil && src.Container != container {
		err = apierr.BadField("container", "%s is in container %s, not %s", src.What, src.Container, container)
	}
	var idx int32
	if err == nil {
		idx, err = vm.NextDiskIndex(r.pb, bus, req.Index)
	}
	size := int64(0)
	if err == nil {
		size = max(src.Size, req.SizeBytes)
		err = m.checkCapacityLocked(container, size, "disk of vm "+r.pb.Name)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur, rev := r.pb, r.rev
	d := &acliv1.Disk{Index: idx, Uuid: uuid.NewString(), Bus: bus, SizeBytes: size, Container: container, Cdrom: req.Cdrom}
	refs := []*acliv1.EntityRef{vmRef(cur)}
	if src.Ref != nil && src.Ref.Uuid != cur.Uuid {
		refs = append(refs, src.Ref)
	}
	if src.Ref != nil && src.Ref.Kind == acliv1.EntityKind_kImage {
		d.SourceImageUuid = src.Ref.Uuid
	} else if src.Vdisk != "" {
		d.SourceVmdiskUuid = src.Vdisk
	}
	t := m.newTaskLocked(acliv1.TaskOperation_kVmDiskCreate, refs, cur.Uuid)
	if src.Lock != "" && src.Lock != cur.Uuid {
		m.readLocked(t, src.Lock)
	}
	m.mu.Unlock()
	return m.quick(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		copies := []storage.Copy{{Src: src, Container: container, Dst: d.Uuid, Size: size}}
		if err := m.stor.containers.Copy(ctx, copies); err != nil {
			return outcome{}, err
		}
		next := proto.Clone(cur).(*acliv1.Vm)
		next.Disks = append(next.Disks, d)
		vm.SortDisks(next.Disks)
		return outcome{
			writes:  []write{{key: vmKey(cur.Uuid), msg: next, rev: rev}},
			message: fmt.Sprintf("disk %s (%s, cloned from %s) added to vm %s", vm.DiskName(d), scheduler.Bytes(size), src.What, cur.Name),
			undo:    m.undoCopies(ctx, copies),
		}, nil
	})
}

// findDisk is the VM's disk at bus.index.
func findDisk(v *acliv1.Vm, bus string, index int32) (*acliv1.Disk, error) {
	var names []string
	for _, d := range v.Disks {
		if d.Bus == bus && d.Index == index {
			return d, nil
		}
		names = append(names, vm.DiskName(d))
	}
	return nil, apierr.NotFound("disk", fmt.Sprintf("%s.%d of vm %s", bus, index, v.Name), names)
}

// UpdateDisk grows a disk, or ejects or inserts a CD-ROM's medium.
func (s vmService) UpdateDisk(ctx context.Context, req *acliv1.UpdateDiskRequest) (*acliv1.Task, error) {
	m := s.m
	bus, err := vm.CheckBus(cmp.Or(req.Bus, "scsi"))
	if err != nil {
		return nil, err
	}
	n := 0
	for _, set := range []bool{req.SizeBytes != 0, req.CloneFromImage != "", req.Empty} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return nil, apierr.BadField("vm", "nothing to update: give new_size= (grow a disk), empty=true (eject a CD-ROM) or clone_from_image= (insert an ISO)")
	case n > 1:
		return nil, apierr.BadField("vm", "give only one of new_size=, empty=true and clone_from_image=")
	case req.SizeBytes < 0:
		return nil, apierr.BadField("size_bytes", "disk size %d must be greater than 0", req.SizeBytes)
	}
	var iso storage.Source
	if req.CloneFromImage != "" {
		if iso, err = m.cloneSource(ctx, &acliv1.CreateDiskRequest{CloneFromImage: req.CloneFromImage}); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	r, err := m.vmLocked("vm", req.Vm)
	if err == nil {
		err = m.checkBusyLocked("vm", r.pb.Name, r.pb.Uuid)
	}
	var d *acliv1.Disk
	if err == nil {
		d, err = findDisk(r.pb, bus, req.Index)
	}
	if err == nil && d.VolumeGroupUuid != "" {
		err = apierr.Precondition("VOLUME_GROUP_DISK", "vm:"+r.pb.Name, "disk %s of vm %s comes from a volume group; change it with vg.* commands", vm.DiskName(d), r.pb.Name)
	}
	if err == nil && (req.Empty || req.CloneFromImage != "") && !d.Cdrom {
		err = apierr.BadField("empty", "disk %s of vm %s is not a CD-ROM; only a CD-ROM's medium is ejected or inserted", vm.DiskName(d), r.pb.Name)
	}
	if err == nil && req.SizeBytes != 0 {
		switch {
		case d.Cdrom:
			err = apierr.BadField("size_bytes", "disk %s of vm %s is a CD-ROM; its size is its medium's", vm.DiskName(d), r.pb.Name)
		case req.SizeBytes < d.SizeBytes:
			err = apierr.Precondition("DISK_SHRINK", "vm:"+r.pb.Name, "disk %s of vm %s is %s; a disk only grows (shrinking would cut off guest data)", vm.DiskName(d), r.pb.Name, scheduler.Bytes(d.SizeBytes))
		default:
			err = m.checkCapacityLocked(cmp.Or(d.Container, defaultContainer), req.SizeBytes-d.SizeBytes, "growing disk "+vm.DiskName(d)+" of vm "+r.pb.Name)
		}
	}
	if err == nil && req.CloneFromImage != "" {
		err = m.srcHeldLocked(iso)
		if err == nil {
			err = m.checkCapacityLocked(iso.Container, iso.Size, "medium of "+vm.DiskName(d)+" of vm "+r.pb.Name)
		}
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur, rev := r.pb, r.rev
	old := proto.Clone(d).(*acliv1.Disk)
	next := proto.Clone(cur).(*acliv1.Vm)
	nd, _ := findDisk(next, bus, req.Index)
	refs := []*acliv1.EntityRef{vmRef(cur)}
	if iso.Ref != nil {
		refs = append(refs, iso.Ref)
	}
	t := m.newTaskLocked(acliv1.TaskOperation_kVmDiskUpdate, refs, cur.Uuid)
	if iso.Lock != "" {
		m.readLocked(t, iso.Lock)
	}
	m.mu.Unlock()
	st := m.storageDriver()
	var msg string
	var gone []*acliv1.Disk
	var undo func()
	task, err := m.quick(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		switch {
		case req.SizeBytes != 0:
			if st != nil {
				if err := st.ResizeVolume(ctx, cmp.Or(d.Container, defaultContainer), d.Uuid, req.SizeBytes); err != nil {
					return outcome{}, fmt.Errorf("grow disk %s: %w", vm.DiskName(d), err)
				}
			}
			nd.SizeBytes = req.SizeBytes
			msg = fmt.Sprintf("disk %s of vm %s grown from %s to %s", vm.DiskName(d), cur.Name, scheduler.Bytes(old.SizeBytes), scheduler.Bytes(req.SizeBytes))
		case req.Empty:
			if old.SizeBytes > 0 {
				gone = append(gone, old)
			}
			nd.SizeBytes, nd.SourceImageUuid, nd.SourceVmdiskUuid = 0, "", ""
			nd.Uuid = uuid.NewString()
			msg = fmt.Sprintf("CD-ROM %s of vm %s ejected", vm.DiskName(d), cur.Name)
		default:
			nd.Uuid, nd.SizeBytes, nd.SourceImageUuid, nd.Container = uuid.NewString(), iso.Size, iso.Ref.Uuid, iso.Container
			copies := []storage.Copy{{Src: iso, Container: iso.Container, Dst: nd.Uuid, Size: iso.Size}}
			if err := m.stor.containers.Copy(ctx, copies); err != nil {
				return outcome{}, err
			}
			undo = m.undoCopies(ctx, copies)
			if old.SizeBytes > 0 {
				gone = append(gone, old)
			}
			msg = fmt.Sprintf("%s inserted into CD-ROM %s of vm %s", iso.What, vm.DiskName(d), cur.Name)
		}
		return outcome{
			writes:  []write{{key: vmKey(cur.Uuid), msg: next, rev: rev}},
			message: msg,
			undo:    undo,
		}, nil
	})
	if err == nil {
		m.stor.containers.Remove(ctx, gone)
	}
	return task, err
}

// UpdateBootDevice sets the disk the VM boots from (at its next power-on).
func (s vmService) UpdateBootDevice(ctx context.Context, req *acliv1.UpdateBootDeviceRequest) (*acliv1.Task, error) {
	bus, err := vm.CheckBus(cmp.Or(req.Bus, "scsi"))
	if err != nil {
		return nil, err
	}
	return s.m.vms.Edit(ctx, req.Vm, acliv1.TaskOperation_kVmUpdateBootDevice, func(cur *acliv1.Vm) (*acliv1.Vm, string, error) {
		d, err := findDisk(cur, bus, req.Index)
		if err != nil {
			return nil, "", err
		}
		if d.VolumeGroupUuid != "" {
			return nil, "", apierr.BadField("disk_addr", "disk %s of vm %s comes from a volume group over iSCSI and cannot be the boot device", vm.DiskName(d), cur.Name)
		}
		v := proto.Clone(cur).(*acliv1.Vm)
		v.BootDiskAddr = vm.DiskName(d)
		msg := fmt.Sprintf("vm %s boots from %s", cur.Name, v.BootDiskAddr)
		if state.Placed(cur) {
			msg += " from its next power-on"
		}
		return v, msg, nil
	})
}
