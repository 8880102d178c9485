package manager

import (
	"cmp"
	"context"
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/image"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
)

// CloneVm creates a stopped VM with the settings of a VM or snapshot and a
// copy of each of its vDisks (a running source is paused while they are
// copied). NICs get new MAC addresses.
func (s vmService) CloneVm(ctx context.Context, req *acliv1.CloneVmRequest) (*acliv1.Task, error) {
	m := s.m
	if err := state.CheckName("vm", req.Name); err != nil {
		return nil, apierr.BadField("name", "%v", err)
	}
	if (req.CloneFromVm == "") == (req.CloneFromSnapshot == "") {
		return nil, apierr.BadField("clone_from_vm", "give one of clone_from_vm=<vm> or clone_from_snapshot=<snapshot>")
	}
	m.mu.Lock()
	var base *acliv1.Vm
	var srcRef *acliv1.EntityRef
	var lock, what string
	var running *acliv1.Vm
	if req.CloneFromVm != "" {
		r, err := m.vmLocked("clone_from_vm", req.CloneFromVm)
		if err == nil {
			err = m.checkWriterLocked("vm", r.pb.Name, r.pb.Uuid)
		}
		if err != nil {
			m.mu.Unlock()
			return nil, err
		}
		base, srcRef, lock, what, running = r.pb, vmRef(r.pb), r.pb.Uuid, "vm "+r.pb.Name, r.pb
	} else {
		var sn *acliv1.Snapshot
		var err error
		m.db.View(func(tx *state.Tx) { sn, err = image.FindSnapshot(tx, "clone_from_snapshot", req.CloneFromSnapshot) })
		if err == nil {
			err = m.checkWriterLocked("snapshot", sn.Name, sn.Uuid)
		}
		if err != nil {
			m.mu.Unlock()
			return nil, err
		}
		base, srcRef, lock, what = sn.Vm, image.SnapshotRef(sn), sn.Uuid, "snapshot "+sn.Name
	}
	v := image.VmConfig(base)
	v.Uuid, v.Name, v.CreateTime = uuid.NewString(), req.Name, timestamppb.Now()
	var copies []storage.Copy
	add := map[string]int64{}
	for _, d := range v.Disks {
		src := d.Uuid
		d.Uuid, d.SourceVmdiskUuid, d.Container = uuid.NewString(), src, cmp.Or(d.Container, defaultContainer)
		if !state.HasData(d) {
			continue
		}
		add[d.Container] += d.SizeBytes
		copies = append(copies, storage.Copy{Src: storage.Source{Container: d.Container, Vdisk: src, Size: d.SizeBytes,
			What: "vDisk " + diskName(d) + " of " + what, Vm: running}, Container: d.Container, Dst: d.Uuid, Size: d.SizeBytes})
	}
	locks := []string{v.Uuid}
	for _, n := range v.Nics {
		n.Mac = m.newMACLocked()
		locks = append(locks, "mac:"+n.Mac)
	}
	for c, n := range add {
		if err := m.checkCapacityLocked(c, n, "clone of "+what); err != nil {
			m.mu.Unlock()
			return nil, err
		}
	}
	t := m.newTaskLocked(acliv1.TaskOperation_kVmClone, []*acliv1.EntityRef{vmRef(v), srcRef}, locks...)
	if err := m.cloneNicAddrsLocked(t, v); err != nil {
		m.forgetLocked(t)
		m.mu.Unlock()
		return nil, err
	}
	m.readLocked(t, lock)
	m.mu.Unlock()
	return m.launch(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		if err := m.stor.containers.Copy(ctx, copies); err != nil {
			return outcome{}, fmt.Errorf("clone %s: %w", what, err)
		}
		var size int64
		for _, c := range copies {
			size += c.Size
		}
		return outcome{
			writes:  []write{{key: vmKey(v.Uuid), msg: v, rev: 0}},
			message: fmt.Sprintf("vm %s cloned from %s (%d vDisk(s), %s)", v.Name, what, len(copies), scheduler.Bytes(size)),
			undo:    m.undoCopies(ctx, copies),
		}, nil
	})
}
