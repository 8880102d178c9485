package storage

import (
	"cmp"
	"context"
	"fmt"

	"github.com/google/uuid"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/iscsi"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// Volume group vDisks copied from other vDisks. The data is copied first,
// into a volume no record names yet; the volume group change is then
// committed like any other (its sessions planned with it), and a refused
// change removes the copy.

// Volumes copies and removes the volumes that hold vDisks.
type Volumes interface {
	// Source resolves a vDisk to copy by UUID (field names the request
	// field), refusing one a task is changing.
	Source(field, id string) (Source, error)
	// Copy makes the copies, a running VM they read paused meanwhile; on
	// failure none is left.
	Copy(ctx context.Context, copies []Copy) error
	// Remove deletes the volumes of disks whose records are gone.
	Remove(ctx context.Context, disks []*acliv1.Disk)
}

// CheckCapacity refuses early, with what the request names, adding bytes
// that do not fit a container as committed; the capacity rule
// (state.RuleCapacity) refuses the commit of whatever still does not fit.
func CheckCapacity(db *state.DB, container string, add int64, what string) error {
	capacity, bounded := db.Capacity(container)
	used := db.ContainerUse(container).Bytes
	if bounded && used+add > capacity {
		return apierr.Precondition(state.RuleCapacity, "container:"+container,
			"%s (%s) does not fit container %s: %s of %s used, %s free",
			what, scheduler.Bytes(add), container, scheduler.Bytes(used), scheduler.Bytes(capacity), scheduler.Bytes(max(capacity-used, 0)))
	}
	return nil
}

// createDiskClone adds a vDisk holding a copy of another vDisk. Its task
// holds the VG and reads the source (state.Read) from before the copy
// until the record, so neither changes or goes meanwhile.
func (v *Service) createDiskClone(ctx context.Context, req *acliv1.CreateVgDiskRequest) (*acliv1.Task, error) {
	src, err := v.Volumes.Source("clone_from_vmdisk", req.CloneFromVmdisk)
	if err == nil && cmp.Or(req.Container, src.Container) != src.Container {
		err = apierr.BadField("container", "%s is in container %s, not %s", src.What, src.Container, req.Container)
	}
	size := max(src.Size, req.SizeBytes)
	if err == nil {
		err = CheckCapacity(v.DB, src.Container, size, "vDisk cloned from "+src.What)
	}
	var vg *acliv1.VolumeGroup
	if err == nil {
		v.DB.View(func(tx *state.Tx) { vg, err = Find(tx, "volume_group", req.VolumeGroup) })
	}
	if err != nil {
		return nil, err
	}
	refs, locks := []*acliv1.EntityRef{VgRef(vg)}, []string{vg.Uuid}
	if src.Ref != nil && src.Lock != vg.Uuid {
		refs, locks = append(refs, src.Ref), append(locks, state.Read(src.Lock))
	}
	q, err := v.Tasks.Begin(ctx, "volume group", acliv1.TaskOperation_kVgDiskCreate, refs, locks...)
	if err != nil {
		return nil, err
	}
	d := &acliv1.VgDisk{Uuid: uuid.NewString(), SizeBytes: size, Container: src.Container, SourceVmdiskUuid: src.Vdisk}
	if err := v.Volumes.Copy(ctx, []Copy{{Src: src, Container: d.Container, Dst: d.Uuid, Size: size}}); err != nil {
		q.Drop()
		return nil, err
	}
	task, err := v.commitDisk(ctx, q, vg.Uuid, d, src.What)
	if err != nil {
		v.Volumes.Remove(context.WithoutCancel(ctx), []*acliv1.Disk{{Uuid: d.Uuid, Container: d.Container, SizeBytes: size}})
	}
	return task, err
}

// commitDisk records copied vDisk d in the VG the task q holds, with the
// sessions planned with it.
func (v *Service) commitDisk(ctx context.Context, q tasks.Quick, id string, d *acliv1.VgDisk, from string) (*acliv1.Task, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var plan *Plan
	var msg string
	v.DB.View(func(tx *state.Tx) {
		if cur := tx.VolumeGroup(id); cur != nil {
			plan = v.plan(tx, overrideOf(id, withDisk(cur, d)), v.Now())
			msg = fmt.Sprintf("volume group %s disk %d created (%s cloned from %s)", cur.Name, d.Index, scheduler.Bytes(d.SizeBytes), from)
		}
	})
	if plan == nil {
		q.Drop()
		return nil, apierr.NotFound("volume group", id, nil)
	}
	return v.commitPlan(ctx, q, plan, id, msg)
}

// CloneVolumeGroup creates a volume group with a copy of each vDisk of
// another; attachments are not copied (the clone is exported to no one).
func (v *Service) CloneVolumeGroup(ctx context.Context, req *acliv1.CloneVolumeGroupRequest) (*acliv1.Task, error) {
	if err := state.CheckName("volume group", req.Name); err != nil {
		return nil, apierr.BadField("name", "%v", err)
	}
	// The source cannot change meanwhile: every VG change holds mu.
	v.mu.Lock()
	defer v.mu.Unlock()
	var src *acliv1.VolumeGroup
	var err error
	v.DB.View(func(tx *state.Tx) {
		if src, err = Find(tx, "clone_from_vg", req.CloneFromVg); err == nil {
			err = nameFree(tx, req.Name)
		}
	})
	if err != nil {
		return nil, err
	}
	add := map[string]int64{}
	for _, d := range src.Disks {
		add[cmp.Or(d.Container, state.DefaultContainer)] += d.SizeBytes
	}
	for c, n := range add {
		if err := CheckCapacity(v.DB, c, n, "clone of volume group "+src.Name); err != nil {
			return nil, err
		}
	}
	vg := &acliv1.VolumeGroup{Uuid: uuid.NewString(), Name: req.Name, Description: src.Description,
		LoadBalanceVmAttachments: src.LoadBalanceVmAttachments, IscsiTargetPrefix: req.Name}
	if p, err := TargetPrefix("", req.Name); err == nil {
		vg.IscsiTargetPrefix = p
	}
	vg.IscsiTarget = iscsi.TargetDomain + ":" + vg.IscsiTargetPrefix + "-" + vg.Uuid[:8]
	var copies []Copy
	var made []*acliv1.Disk
	for _, d := range src.Disks {
		nd := &acliv1.VgDisk{Index: d.Index, Uuid: uuid.NewString(), SizeBytes: d.SizeBytes, Container: cmp.Or(d.Container, state.DefaultContainer), SourceVmdiskUuid: d.Uuid}
		vg.Disks = append(vg.Disks, nd)
		copies = append(copies, Copy{Src: Source{Container: nd.Container, Vdisk: d.Uuid, Size: d.SizeBytes,
			What: fmt.Sprintf("vDisk %d of volume group %s", d.Index, src.Name)}, Container: nd.Container, Dst: nd.Uuid, Size: nd.SizeBytes})
		made = append(made, &acliv1.Disk{Uuid: nd.Uuid, Container: nd.Container, SizeBytes: nd.SizeBytes})
	}
	if err := v.Volumes.Copy(ctx, copies); err != nil {
		return nil, err
	}
	var plan *Plan
	v.DB.View(func(tx *state.Tx) { plan = v.plan(tx, overrideOf(vg.Uuid, vg), v.Now()) })
	task, err := v.run(ctx, acliv1.TaskOperation_kVgClone, []*acliv1.EntityRef{VgRef(vg), VgRef(src)}, []string{vg.Uuid}, plan, vg.Uuid,
		fmt.Sprintf("volume group %s cloned from %s (%d vDisk(s))", vg.Name, src.Name, len(vg.Disks)))
	if err != nil {
		v.Volumes.Remove(context.WithoutCancel(ctx), made)
	}
	return task, err
}
