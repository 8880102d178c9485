package manager

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/iscsi"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// Volume group vDisks copied from other vDisks. The data is copied first,
// into a volume no record names yet; the volume group change is then
// committed like any other (its sessions planned with it), and a refused
// change removes the copy.

// createVgDiskClone adds a vDisk holding a copy of another vDisk.
func (m *Manager) createVgDiskClone(ctx context.Context, req *acliv1.CreateVgDiskRequest) (*acliv1.Task, error) {
	m.mu.RLock()
	src, err := m.vdiskLocked("clone_from_vmdisk", req.CloneFromVmdisk)
	if err == nil {
		err = m.srcHeldLocked(src)
	}
	if err == nil && cmp.Or(req.Container, src.container) != src.container {
		err = apierr.BadField("container", "%s is in container %s, not %s", src.what, src.container, req.Container)
	}
	size := max(src.size, req.SizeBytes)
	if err == nil {
		err = m.checkCapacityLocked(src.container, size, "vDisk cloned from "+src.what)
	}
	m.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	d := &acliv1.VgDisk{Uuid: uuid.NewString(), SizeBytes: size, Container: src.container, SourceVmdiskUuid: src.vdisk}
	if err := m.copyVolumes(ctx, []volCopy{{src: src, container: d.Container, dst: d.Uuid, size: size}}); err != nil {
		return nil, err
	}
	task, err := m.editVg(ctx, req.VolumeGroup, acliv1.TaskOperation_kVgDiskCreate, func(cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error) {
		for slices.ContainsFunc(cur.Disks, func(o *acliv1.VgDisk) bool { return o.Index == d.Index }) {
			d.Index++
		}
		next := proto.Clone(cur).(*acliv1.VolumeGroup)
		next.Disks = append(next.Disks, d)
		slices.SortFunc(next.Disks, func(a, b *acliv1.VgDisk) int { return cmp.Compare(a.Index, b.Index) })
		return next, fmt.Sprintf("volume group %s disk %d created (%s cloned from %s)", cur.Name, d.Index, scheduler.Bytes(size), src.what), nil
	})
	if err != nil {
		m.removeVolumes(context.WithoutCancel(ctx), []*acliv1.Disk{{Uuid: d.Uuid, Container: d.Container, SizeBytes: size}})
	}
	return task, err
}

// CloneVolumeGroup creates a volume group with a copy of each vDisk of
// another; attachments are not copied (the clone is exported to no one).
func (s volumeGroupService) CloneVolumeGroup(ctx context.Context, req *acliv1.CloneVolumeGroupRequest) (*acliv1.Task, error) {
	m := s.m
	if err := state.CheckName("volume group", req.Name); err != nil {
		return nil, apierr.BadField("name", "%v", err)
	}
	m.vgs.mu.Lock()
	defer m.vgs.mu.Unlock()
	m.mu.RLock()
	r, err := m.vgLocked("clone_from_vg", req.CloneFromVg)
	if err == nil {
		err = m.checkWriterLocked("volume group", r.pb.Name, r.pb.Uuid)
	}
	if other := m.vgs.byName[req.Name]; err == nil && other != nil {
		err = apierr.AlreadyExists("volume group", req.Name, "volume group names are unique (uuid "+other.pb.Uuid+")")
	}
	var src *acliv1.VolumeGroup
	add := map[string]int64{}
	if err == nil {
		src = r.pb
		for _, d := range src.Disks {
			add[cmp.Or(d.Container, defaultContainer)] += d.SizeBytes
		}
		for c, n := range add {
			if err = m.checkCapacityLocked(c, n, "clone of volume group "+src.Name); err != nil {
				break
			}
		}
	}
	m.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	vg := &acliv1.VolumeGroup{Uuid: uuid.NewString(), Name: req.Name, Description: src.Description,
		LoadBalanceVmAttachments: src.LoadBalanceVmAttachments, IscsiTargetPrefix: req.Name}
	if p, err := targetPrefix("", req.Name); err == nil {
		vg.IscsiTargetPrefix = p
	}
	vg.IscsiTarget = iscsi.TargetDomain + ":" + vg.IscsiTargetPrefix + "-" + vg.Uuid[:8]
	var copies []volCopy
	var made []*acliv1.Disk
	for _, d := range src.Disks {
		nd := &acliv1.VgDisk{Index: d.Index, Uuid: uuid.NewString(), SizeBytes: d.SizeBytes, Container: cmp.Or(d.Container, defaultContainer), SourceVmdiskUuid: d.Uuid}
		vg.Disks = append(vg.Disks, nd)
		copies = append(copies, volCopy{src: cloneSrc{container: nd.Container, vdisk: d.Uuid, size: d.SizeBytes,
			what: fmt.Sprintf("vDisk %d of volume group %s", d.Index, src.Name)}, container: nd.Container, dst: nd.Uuid, size: nd.SizeBytes})
		made = append(made, &acliv1.Disk{Uuid: nd.Uuid, Container: nd.Container, SizeBytes: nd.SizeBytes})
	}
	// The source cannot change meanwhile: its changes take vgs.mu too.
	if err := m.copyVolumes(ctx, copies); err != nil {
		return nil, err
	}
	m.mu.Lock()
	task, err := m.runVgTaskLocked(ctx, acliv1.TaskOperation_kVgClone, []*acliv1.EntityRef{vgRef(vg), vgRef(src)}, []string{vg.Uuid},
		overrideOf(vg.Uuid, vg), fmt.Sprintf("volume group %s cloned from %s (%d vDisk(s))", vg.Name, src.Name, len(vg.Disks)))
	if err != nil {
		m.removeVolumes(context.WithoutCancel(ctx), made)
	}
	return task, err
}

// removeVgVolumes deletes the volumes of a deleted volume group's vDisks
// (called once its record is gone; nothing when the change was refused).
func (m *Manager) removeVgVolumes(ctx context.Context, disks []*acliv1.VgDisk) {
	ds := make([]*acliv1.Disk, len(disks))
	for i, d := range disks {
		ds[i] = &acliv1.Disk{Uuid: d.Uuid, Container: d.Container, SizeBytes: d.SizeBytes}
	}
	m.removeVolumes(context.WithoutCancel(ctx), ds)
}
