package vm

import (
	"cmp"
	"context"
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// Disk changes beyond create/delete: cloned disks, growing a disk, a
// CD-ROM's medium and the boot device. A copy's task holds the VM and
// reads its source (state.Read: any number of copies read one at once,
// none changes it meanwhile); the data is copied before the record, and a
// refused record removes the copy.

// cloneDisk adds a disk holding a copy of an image, a vDisk or a file, on
// bus in container.
func (s *Service) cloneDisk(ctx context.Context, req *acliv1.CreateDiskRequest, bus, container string) (*acliv1.Task, error) {
	src, err := s.disks.CloneSource(ctx, req)
	if err != nil {
		return nil, err
	}
	q, cur, rev, err := s.beginCopy(ctx, req.Vm, acliv1.TaskOperation_kVmDiskCreate, src)
	if err != nil {
		return nil, err
	}
	container, err = s.disks.Container(container)
	if err == nil && src.Container != container {
		err = apierr.BadField("container", "%s is in container %s, not %s", src.What, src.Container, container)
	}
	var idx int32
	if err == nil {
		idx, err = NextDiskIndex(cur, bus, req.Index)
	}
	size := max(src.Size, req.SizeBytes)
	if err == nil {
		err = s.disks.Fits(container, size, "disk of vm "+cur.Name)
	}
	if err != nil {
		q.Drop()
		return nil, err
	}
	d := &acliv1.Disk{Index: idx, Uuid: uuid.NewString(), Bus: bus, SizeBytes: size, Container: container, Cdrom: req.Cdrom,
		SourceImageUuid: src.Image}
	if src.Image == "" {
		d.SourceVmdiskUuid = src.Vdisk
	}
	if err := s.disks.CopyInto(ctx, src, d); err != nil {
		q.Drop()
		return nil, err
	}
	next := proto.Clone(cur).(*acliv1.Vm)
	next.Disks = append(next.Disks, d)
	SortDisks(next.Disks)
	task, err := q.Commit(ctx, []state.Write{put(next, rev)},
		fmt.Sprintf("disk %s (%s, cloned from %s) added to vm %s", DiskName(d), scheduler.Bytes(size), src.What, cur.Name))
	if err != nil {
		s.disks.Remove(context.WithoutCancel(ctx), []*acliv1.Disk{d})
	}
	return task, err
}

// beginCopy resolves ref and begins op holding the VM and reading src
// (unless src is the VM's own).
func (s *Service) beginCopy(ctx context.Context, ref string, op acliv1.TaskOperation, src Source) (q tasks.Quick, cur *acliv1.Vm, rev int64, err error) {
	var v *acliv1.Vm
	s.db.View(func(tx *state.Tx) { v, err = Resolve(tx, "vm", ref) })
	if err != nil {
		return nil, nil, 0, err
	}
	var more []*acliv1.EntityRef
	var locks []string
	if src.Ref != nil && src.Ref.Uuid != v.Uuid {
		more = append(more, src.Ref)
	}
	if src.Read != "" && src.Read != v.Uuid {
		locks = append(locks, state.Read(src.Read))
	}
	return beginNaming(ctx, s.tasks, s.db, v, op, more, locks...)
}

// findDisk is the VM's disk at bus.index.
func findDisk(v *acliv1.Vm, bus string, index int32) (*acliv1.Disk, error) {
	var names []string
	for _, d := range v.Disks {
		if d.Bus == bus && d.Index == index {
			return d, nil
		}
		names = append(names, DiskName(d))
	}
	return nil, apierr.NotFound("disk", fmt.Sprintf("%s.%d of vm %s", bus, index, v.Name), names)
}

// UpdateDisk grows a disk, or ejects or inserts a CD-ROM's medium (a copy
// of an image).
func (s *Service) UpdateDisk(ctx context.Context, req *acliv1.UpdateDiskRequest) (*acliv1.Task, error) {
	bus, err := CheckBus(cmp.Or(req.Bus, "scsi"))
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
	var iso Source
	if req.CloneFromImage != "" {
		if iso, err = s.disks.CloneSource(ctx, &acliv1.CreateDiskRequest{CloneFromImage: req.CloneFromImage}); err != nil {
			return nil, err
		}
	}
	q, cur, rev, err := s.beginCopy(ctx, req.Vm, acliv1.TaskOperation_kVmDiskUpdate, iso)
	if err != nil {
		return nil, err
	}
	d, err := findDisk(cur, bus, req.Index)
	if err == nil {
		err = s.checkDiskUpdate(req, cur, d, iso)
	}
	if err != nil {
		q.Drop()
		return nil, err
	}
	next := proto.Clone(cur).(*acliv1.Vm)
	nd, _ := findDisk(next, bus, req.Index)
	var msg string
	var made, gone []*acliv1.Disk
	switch {
	case req.SizeBytes != 0:
		if err := s.disks.Grow(ctx, d, req.SizeBytes); err != nil {
			q.Drop()
			return nil, fmt.Errorf("grow disk %s: %w", DiskName(d), err)
		}
		nd.SizeBytes = req.SizeBytes
		msg = fmt.Sprintf("disk %s of vm %s grown from %s to %s", DiskName(d), cur.Name, scheduler.Bytes(d.SizeBytes), scheduler.Bytes(req.SizeBytes))
	case req.Empty:
		nd.SizeBytes, nd.SourceImageUuid, nd.SourceVmdiskUuid = 0, "", ""
		nd.Uuid = uuid.NewString()
		msg = fmt.Sprintf("CD-ROM %s of vm %s ejected", DiskName(d), cur.Name)
	default:
		nd.Uuid, nd.SizeBytes, nd.SourceImageUuid, nd.Container = uuid.NewString(), iso.Size, iso.Image, iso.Container
		if err := s.disks.CopyInto(ctx, iso, nd); err != nil {
			q.Drop()
			return nil, err
		}
		made = []*acliv1.Disk{nd}
		msg = fmt.Sprintf("%s inserted into CD-ROM %s of vm %s", iso.What, DiskName(d), cur.Name)
	}
	if (req.Empty || req.CloneFromImage != "") && d.SizeBytes > 0 {
		gone = []*acliv1.Disk{d}
	}
	task, err := q.Commit(ctx, []state.Write{put(next, rev)}, msg)
	if err != nil {
		s.disks.Remove(context.WithoutCancel(ctx), made)
		return nil, err
	}
	s.disks.Remove(ctx, gone)
	return task, nil
}

// checkDiskUpdate refuses a change disk d of VM cur cannot take.
func (s *Service) checkDiskUpdate(req *acliv1.UpdateDiskRequest, cur *acliv1.Vm, d *acliv1.Disk, iso Source) error {
	switch {
	case d.VolumeGroupUuid != "":
		return apierr.Precondition("VOLUME_GROUP_DISK", "vm:"+cur.Name, "disk %s of vm %s comes from a volume group; change it with vg.* commands", DiskName(d), cur.Name)
	case (req.Empty || req.CloneFromImage != "") && !d.Cdrom:
		return apierr.BadField("empty", "disk %s of vm %s is not a CD-ROM; only a CD-ROM's medium is ejected or inserted", DiskName(d), cur.Name)
	case req.SizeBytes != 0 && d.Cdrom:
		return apierr.BadField("size_bytes", "disk %s of vm %s is a CD-ROM; its size is its medium's", DiskName(d), cur.Name)
	case req.SizeBytes != 0 && req.SizeBytes < d.SizeBytes:
		return apierr.Precondition("DISK_SHRINK", "vm:"+cur.Name, "disk %s of vm %s is %s; a disk only grows (shrinking would cut off guest data)", DiskName(d), cur.Name, scheduler.Bytes(d.SizeBytes))
	case req.SizeBytes != 0:
		return s.disks.Fits(cmp.Or(d.Container, state.DefaultContainer), req.SizeBytes-d.SizeBytes, "growing disk "+DiskName(d)+" of vm "+cur.Name)
	case req.CloneFromImage != "":
		return s.disks.Fits(iso.Container, iso.Size, "medium of "+DiskName(d)+" of vm "+cur.Name)
	}
	return nil
}

// UpdateBootDevice sets the disk the VM boots from (at its next power-on).
func (s *Service) UpdateBootDevice(ctx context.Context, req *acliv1.UpdateBootDeviceRequest) (*acliv1.Task, error) {
	bus, err := CheckBus(cmp.Or(req.Bus, "scsi"))
	if err != nil {
		return nil, err
	}
	return s.Edit(ctx, req.Vm, acliv1.TaskOperation_kVmUpdateBootDevice, func(cur *acliv1.Vm) (*acliv1.Vm, string, error) {
		d, err := findDisk(cur, bus, req.Index)
		if err != nil {
			return nil, "", err
		}
		if d.VolumeGroupUuid != "" {
			return nil, "", apierr.BadField("disk_addr", "disk %s of vm %s comes from a volume group over iSCSI and cannot be the boot device", DiskName(d), cur.Name)
		}
		v := proto.Clone(cur).(*acliv1.Vm)
		v.BootDiskAddr = DiskName(d)
		msg := fmt.Sprintf("vm %s boots from %s", cur.Name, v.BootDiskAddr)
		if state.Placed(cur) {
			msg += " from its next power-on"
		}
		return v, msg, nil
	})
}
