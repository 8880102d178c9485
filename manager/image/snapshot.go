package image

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
	"github.com/acli-dev/acli/manager/tasks"
	vms "github.com/acli-dev/acli/manager/vm"
)

// Snapshots: a VM's settings and a copy of each of its vDisks, all taken
// while the VM is paused (crash-consistent). A snapshot's vDisks are
// volumes of their own; VMs cloned from it copy them, so deleting the
// snapshot later never strands a clone.

// SnapshotRef is a snapshot's entity reference.
func SnapshotRef(s *acliv1.Snapshot) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kSnapshot, Uuid: s.Uuid, Name: s.Name}
}

// snapshotLock is held by a task taking a VM's snapshot of a name, so two
// cannot take one name at once.
func snapshotLock(vm, name string) string { return "snapshot-name:" + vm + "/" + name }

// VmConfig is a VM's settings without its placement and run state: what a
// snapshot keeps and a clone starts from.
func VmConfig(v *acliv1.Vm) *acliv1.Vm {
	c := proto.Clone(v).(*acliv1.Vm)
	c.PowerState, c.HostUuid, c.HostName, c.OriginalHostUuid, c.BusyTaskUuid = acliv1.PowerState_kOff, "", "", "", ""
	c.VolumeGroupUuids, c.CreateTime = nil, nil
	c.Disks = slices.DeleteFunc(c.Disks, func(d *acliv1.Disk) bool { return d.VolumeGroupUuid != "" })
	for _, d := range c.Disks {
		d.ServedByCvmIp, d.Path, d.VmdiskPath = "", "", ""
	}
	return c
}

func (s *Service) ListSnapshots(ctx context.Context, req *acliv1.ListSnapshotsRequest) (*acliv1.ListSnapshotsResponse, error) {
	out := &acliv1.ListSnapshotsResponse{}
	var err error
	s.DB.View(func(tx *state.Tx) {
		vm := ""
		if req.Vm != "" {
			var v *acliv1.Vm
			if v, err = vms.Resolve(tx, "vm", req.Vm); err != nil {
				return
			}
			vm = v.Uuid
		}
		for _, sn := range tx.Snapshots() {
			if vm == "" || sn.VmUuid == vm {
				out.Snapshots = append(out.Snapshots, sn)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out.Snapshots, func(a, b *acliv1.Snapshot) int {
		return cmp.Or(a.CreateTime.AsTime().Compare(b.CreateTime.AsTime()), strings.Compare(a.Name, b.Name), strings.Compare(a.Uuid, b.Uuid))
	})
	return out, nil
}

func (s *Service) GetSnapshot(ctx context.Context, req *acliv1.GetSnapshotRequest) (sn *acliv1.Snapshot, err error) {
	s.DB.View(func(tx *state.Tx) { sn, err = FindSnapshot(tx, "snapshot", req.Snapshot) })
	return sn, err
}

// CreateSnapshots copies the VM's vDisks once per name, all while the VM
// is paused, and records the snapshots with the VM's settings.
func (s *Service) CreateSnapshots(ctx context.Context, req *acliv1.CreateSnapshotsRequest) (*acliv1.Task, error) {
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
	var vm *acliv1.Vm
	var snaps []*acliv1.Snapshot
	var copies []storage.Copy
	t, err := s.Tasks.Begin(ctx, func(h Held) (Start, error) {
		var err error
		var taken *acliv1.Snapshot
		s.DB.View(func(tx *state.Tx) {
			if vm, err = vms.Resolve(tx, "vm", req.Vm); err != nil {
				return
			}
			for _, n := range req.Names {
				for _, o := range tx.SnapshotsNamed(n) {
					if o.VmUuid == vm.Uuid {
						taken = o
						return
					}
				}
			}
		})
		if err != nil {
			return Start{}, err
		}
		if t := h.Changing(vm.Uuid); t != nil {
			return Start{}, busy("vm", vm.Name, t)
		}
		if taken != nil {
			return Start{}, apierr.AlreadyExists("snapshot", taken.Name, "vm "+vm.Name+" has a snapshot of this name (uuid "+taken.Uuid+")")
		}
		snaps, copies = plan(vm, req.Names)
		if err := s.fitsAll(copies, "snapshot"); err != nil {
			return Start{}, err
		}
		start := Start{Op: acliv1.TaskOperation_kSnapshotCreate, Refs: []*acliv1.EntityRef{state.VmRef(vm)}, Reads: []string{vm.Uuid}}
		for _, sn := range snaps {
			if t := h.Changing(snapshotLock(vm.Uuid, sn.Name)); t != nil {
				return Start{}, busy("snapshot", sn.Name, t)
			}
			start.Refs = append(start.Refs, SnapshotRef(sn))
			start.Locks = append(start.Locks, snapshotLock(vm.Uuid, sn.Name))
		}
		return start, nil
	})
	if err != nil {
		return nil, err
	}
	return s.Tasks.Launch(ctx, t, func(ctx context.Context, t *tasks.Task) (Outcome, error) {
		if err := s.Volumes.Copy(ctx, copies); err != nil {
			return Outcome{}, fmt.Errorf("snapshot vm %s: %w", vm.Name, err)
		}
		ws := make([]state.Write, len(snaps))
		for i, sn := range snaps {
			ws[i] = state.Write{Key: state.SnapshotKey(sn.Uuid), Msg: sn, Rev: 0}
		}
		return Outcome{
			Writes:  ws,
			Message: fmt.Sprintf("vm %s: %d snapshot(s) taken (%s), %d vDisk(s) each", vm.Name, len(snaps), strings.Join(req.Names, ", "), len(snaps[0].Vm.Disks)),
			Undo:    s.undoCopies(ctx, copies),
		}, nil
	})
}

// plan is the snapshots of vm, one per name, and the copies of its vDisks
// they hold (CD-ROMs without a medium and volume group disks have none).
func plan(vm *acliv1.Vm, names []string) ([]*acliv1.Snapshot, []storage.Copy) {
	var snaps []*acliv1.Snapshot
	var copies []storage.Copy
	for _, n := range names {
		sn := &acliv1.Snapshot{Uuid: uuid.NewString(), Name: n, VmUuid: vm.Uuid, VmName: vm.Name,
			CreateTime: timestamppb.Now(), PowerState: vm.PowerState, Vm: VmConfig(vm)}
		sn.Vm.Disks = nil
		for _, d := range vm.Disks {
			if !state.HasData(d) {
				continue
			}
			nd := proto.Clone(d).(*acliv1.Disk)
			nd.Uuid, nd.SourceVmdiskUuid, nd.Container = uuid.NewString(), d.Uuid, cmp.Or(d.Container, state.DefaultContainer)
			sn.Vm.Disks = append(sn.Vm.Disks, nd)
			sn.SizeBytes += nd.SizeBytes
			copies = append(copies, storage.Copy{Src: storage.Source{Container: nd.Container, Vdisk: d.Uuid, Size: nd.SizeBytes,
				What: fmt.Sprintf("vDisk %s.%d of vm %s", d.Bus, d.Index, vm.Name), Vm: vm}, Container: nd.Container, Dst: nd.Uuid, Size: nd.SizeBytes})
		}
		snaps = append(snaps, sn)
	}
	return snaps, copies
}

// fitsAll is Volumes.Fits for the copies, per container.
func (s *Service) fitsAll(copies []storage.Copy, what string) error {
	add := map[string]int64{}
	for _, c := range copies {
		add[c.Container] += c.Size
	}
	for _, c := range slices.Sorted(maps.Keys(add)) {
		if err := s.Volumes.Fits(c, add[c], what); err != nil {
			return err
		}
	}
	return nil
}

// DeleteSnapshot removes the record, then its vDisks.
func (s *Service) DeleteSnapshot(ctx context.Context, req *acliv1.DeleteSnapshotRequest) (*acliv1.Task, error) {
	return deleteRecord(ctx, s, req.Snapshot, deletion[*acliv1.Snapshot]{
		op:      acliv1.TaskOperation_kSnapshotDelete,
		kind:    "snapshot",
		find:    func(tx *state.Tx, ref string) (*acliv1.Snapshot, error) { return FindSnapshot(tx, "snapshot", ref) },
		ref:     SnapshotRef,
		key:     func(sn *acliv1.Snapshot) string { return state.SnapshotKey(sn.Uuid) },
		volumes: func(sn *acliv1.Snapshot) []*acliv1.Disk { return sn.Vm.GetDisks() },
		message: func(sn *acliv1.Snapshot) string {
			return fmt.Sprintf("snapshot %s of vm %s deleted", sn.Name, sn.VmName)
		},
	})
}
