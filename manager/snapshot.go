package manager

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// Snapshots: a VM's settings and a copy of each of its vDisks, all taken
// while the VM is paused (crash-consistent). A snapshot's vDisks are
// volumes of their own; VMs cloned from it copy them, so deleting the
// snapshot later never strands a clone.

const snapPrefix = state.SnapshotPrefix

func snapKey(id string) string { return snapPrefix + id }

type snapRec struct {
	pb  *acliv1.Snapshot
	rev int64
}

func snapRef(s *acliv1.Snapshot) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kSnapshot, Uuid: s.Uuid, Name: s.Name}
}

func (m *Manager) loadSnapshots(ctx context.Context) error {
	return loadAll(ctx, m.st, snapPrefix, m.putSnapLocked)
}

func (m *Manager) putSnapLocked(s *acliv1.Snapshot, rev int64) {
	m.deleteSnapLocked(s.Uuid)
	r := &snapRec{pb: s, rev: rev}
	m.stor.snaps[s.Uuid] = r
	m.stor.snapByName[s.Name] = append(m.stor.snapByName[s.Name], r)
}

func (m *Manager) deleteSnapLocked(id string) {
	old := m.stor.snaps[id]
	if old == nil {
		return
	}
	delete(m.stor.snaps, id)
	rs := slices.DeleteFunc(m.stor.snapByName[old.pb.Name], func(r *snapRec) bool { return r == old })
	if len(rs) == 0 {
		delete(m.stor.snapByName, old.pb.Name)
	} else {
		m.stor.snapByName[old.pb.Name] = rs
	}
}

// snapLocked resolves a snapshot by UUID or unique name.
func (m *Manager) snapLocked(field, ref string) (*snapRec, error) {
	if err := checkRef(field, ref); err != nil {
		return nil, err
	}
	if r := m.stor.snaps[strings.ToLower(ref)]; r != nil {
		return r, nil
	}
	return byName(field, ref, "snapshot", "snapshots", m.stor.snapByName, func(r *snapRec) string { return r.pb.Uuid })
}

func snapSorted(recs []*acliv1.Snapshot) {
	slices.SortFunc(recs, func(a, b *acliv1.Snapshot) int {
		return cmp.Or(a.CreateTime.AsTime().Compare(b.CreateTime.AsTime()), strings.Compare(a.Name, b.Name), strings.Compare(a.Uuid, b.Uuid))
	})
}

// snapshotService is the snapshot feature behind manager/rpc's adapter.
type snapshotService struct {
	m *Manager
}

func (s snapshotService) ListSnapshots(ctx context.Context, req *acliv1.ListSnapshotsRequest) (*acliv1.ListSnapshotsResponse, error) {
	m := s.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	vm := ""
	if req.Vm != "" {
		r, err := m.vmLocked("vm", req.Vm)
		if err != nil {
			return nil, err
		}
		vm = r.pb.Uuid
	}
	out := &acliv1.ListSnapshotsResponse{}
	for _, r := range m.stor.snaps {
		if vm == "" || r.pb.VmUuid == vm {
			out.Snapshots = append(out.Snapshots, r.pb)
		}
	}
	snapSorted(out.Snapshots)
	return out, nil
}

func (s snapshotService) GetSnapshot(ctx context.Context, req *acliv1.GetSnapshotRequest) (*acliv1.Snapshot, error) {
	m := s.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, err := m.snapLocked("snapshot", req.Snapshot)
	if err != nil {
		return nil, err
	}
	return r.pb, nil
}

// CreateSnapshots copies the VM's vDisks once per name, all while the VM
// is paused, and records the snapshots with the VM's settings.
func (s snapshotService) CreateSnapshots(ctx context.Context, req *acliv1.CreateSnapshotsRequest) (*acliv1.Task, error) {
	m := s.m
	if len(req.Names) == 0 {
		return nil, apierr.BadField("names", "give at least one snapshot name, e.g. snapshot_name_list=before-upgrade")
	}
	seen := map[string]bool{}
	for _, n := range req.Names {
		if err := state.CheckName("snapshot", n); err != nil {
			return nil, apierr.BadField("names", "%v", err)
		}
		if seen[n] {
			return nil, apierr.BadField("names", "snapshot name %q is given twice", n)
		}
		seen[n] = true
	}
	m.mu.Lock()
	r, err := m.vmLocked("vm", req.Vm)
	if err == nil {
		err = m.checkWriterLocked("vm", r.pb.Name, r.pb.Uuid)
	}
	if err == nil {
		for _, o := range m.stor.snaps {
			if o.pb.VmUuid == r.pb.Uuid && seen[o.pb.Name] {
				err = apierr.AlreadyExists("snapshot", o.pb.Name, "vm "+r.pb.Name+" has a snapshot of this name (uuid "+o.pb.Uuid+")")
				break
			}
		}
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	vm := r.pb
	var snaps []*acliv1.Snapshot
	var copies []volCopy
	refs := []*acliv1.EntityRef{vmRef(vm)}
	for _, n := range req.Names {
		sn := &acliv1.Snapshot{Uuid: uuid.NewString(), Name: n, VmUuid: vm.Uuid, VmName: vm.Name,
			CreateTime: timestamppb.Now(), PowerState: vm.PowerState, Vm: vmConfig(vm)}
		sn.Vm.Disks = nil
		for _, d := range vm.Disks {
			if !state.HasData(d) {
				continue
			}
			nd := proto.Clone(d).(*acliv1.Disk)
			nd.Uuid, nd.SourceVmdiskUuid, nd.Container = uuid.NewString(), d.Uuid, cmp.Or(d.Container, defaultContainer)
			sn.Vm.Disks = append(sn.Vm.Disks, nd)
			sn.SizeBytes += nd.SizeBytes
			copies = append(copies, volCopy{src: cloneSrc{container: nd.Container, vdisk: d.Uuid, size: d.SizeBytes,
				what: "vDisk " + diskName(d) + " of vm " + vm.Name, vm: vm}, container: nd.Container, dst: nd.Uuid, size: nd.SizeBytes})
		}
		snaps = append(snaps, sn)
		refs = append(refs, snapRef(sn))
	}
	if err := m.checkSnapCapacityLocked(snaps); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	t := m.newTaskLocked(acliv1.TaskOperation_kSnapshotCreate, refs)
	m.readLocked(t, vm.Uuid)
	m.mu.Unlock()
	return m.launch(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		if err := m.copyVolumes(ctx, copies); err != nil {
			return outcome{}, fmt.Errorf("snapshot vm %s: %w", vm.Name, err)
		}
		ws := make([]write, len(snaps))
		for i, sn := range snaps {
			ws[i] = write{key: snapKey(sn.Uuid), msg: sn, rev: 0}
		}
		return outcome{
			writes: ws,
			apply: func(rev int64) {
				for _, sn := range snaps {
					m.putSnapLocked(sn, rev)
				}
			},
			message: fmt.Sprintf("vm %s: %d snapshot(s) taken (%s), %d vDisk(s) each", vm.Name, len(snaps), strings.Join(req.Names, ", "), len(snaps[0].Vm.Disks)),
			undo:    m.undoCopies(ctx, copies),
		}, nil
	})
}

func (m *Manager) checkSnapCapacityLocked(snaps []*acliv1.Snapshot) error {
	add := map[string]int64{}
	for _, sn := range snaps {
		for _, d := range sn.Vm.Disks {
			add[d.Container] += d.SizeBytes
		}
	}
	for c, n := range add {
		if err := m.checkCapacityLocked(c, n, "snapshot"); err != nil {
			return err
		}
	}
	return nil
}

// DeleteSnapshot removes the record, then its vDisks.
func (s snapshotService) DeleteSnapshot(ctx context.Context, req *acliv1.DeleteSnapshotRequest) (*acliv1.Task, error) {
	m := s.m
	return deleteRecord(ctx, m, "snapshot", deletion[*acliv1.Snapshot]{
		op: acliv1.TaskOperation_kSnapshotDelete,
		find: func() (*acliv1.Snapshot, int64, error) {
			r, err := m.snapLocked("snapshot", req.Snapshot)
			if err != nil {
				return nil, 0, err
			}
			return r.pb, r.rev, nil
		},
		ref:     snapRef,
		key:     func(sn *acliv1.Snapshot) string { return snapKey(sn.Uuid) },
		forget:  func(sn *acliv1.Snapshot) { m.deleteSnapLocked(sn.Uuid) },
		volumes: func(sn *acliv1.Snapshot) []*acliv1.Disk { return sn.Vm.GetDisks() },
		message: func(sn *acliv1.Snapshot) string {
			return fmt.Sprintf("snapshot %s of vm %s deleted", sn.Name, sn.VmName)
		},
	})
}

// vmConfig is a VM's settings without its placement and run state.
func vmConfig(v *acliv1.Vm) *acliv1.Vm {
	c := proto.Clone(v).(*acliv1.Vm)
	c.PowerState, c.HostUuid, c.HostName, c.OriginalHostUuid, c.BusyTaskUuid = acliv1.PowerState_kOff, "", "", "", ""
	c.VolumeGroupUuids, c.CreateTime = nil, nil
	c.Disks = slices.DeleteFunc(c.Disks, func(d *acliv1.Disk) bool { return d.VolumeGroupUuid != "" })
	for _, d := range c.Disks {
		d.ServedByCvmIp, d.Path, d.VmdiskPath = "", "", ""
	}
	return c
}

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
		r, err := m.snapLocked("clone_from_snapshot", req.CloneFromSnapshot)
		if err == nil {
			err = m.checkWriterLocked("snapshot", r.pb.Name, r.pb.Uuid)
		}
		if err != nil {
			m.mu.Unlock()
			return nil, err
		}
		base, srcRef, lock, what = r.pb.Vm, snapRef(r.pb), r.pb.Uuid, "snapshot "+r.pb.Name
	}
	v := vmConfig(base)
	v.Uuid, v.Name, v.CreateTime = uuid.NewString(), req.Name, timestamppb.Now()
	var copies []volCopy
	add := map[string]int64{}
	for _, d := range v.Disks {
		src := d.Uuid
		d.Uuid, d.SourceVmdiskUuid, d.Container = uuid.NewString(), src, cmp.Or(d.Container, defaultContainer)
		if !state.HasData(d) {
			continue
		}
		add[d.Container] += d.SizeBytes
		copies = append(copies, volCopy{src: cloneSrc{container: d.Container, vdisk: src, size: d.SizeBytes,
			what: "vDisk " + diskName(d) + " of " + what, vm: running}, container: d.Container, dst: d.Uuid, size: d.SizeBytes})
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
		if err := m.copyVolumes(ctx, copies); err != nil {
			return outcome{}, fmt.Errorf("clone %s: %w", what, err)
		}
		var size int64
		for _, c := range copies {
			size += c.size
		}
		return outcome{
			writes:  []write{{key: vmKey(v.Uuid), msg: v, rev: 0}},
			apply:   func(rev int64) { m.putVmLocked(v, rev) },
			message: fmt.Sprintf("vm %s cloned from %s (%d vDisk(s), %s)", v.Name, what, len(copies), scheduler.Bytes(size)),
			undo:    m.undoCopies(ctx, copies),
		}, nil
	})
}
