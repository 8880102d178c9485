package image

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/network"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
	"github.com/acli-dev/acli/manager/tasks"
	vms "github.com/acli-dev/acli/manager/vm"
)

// CloneVm creates a stopped VM with the settings of a VM or snapshot and a
// copy of each of its vDisks (a running source is paused while they are
// copied). Its NICs get MAC addresses of their own, and those on a managed
// network the next free addresses of its pools, each held by the task
// until its end commits them.
func (s *Service) CloneVm(ctx context.Context, req *acliv1.CloneVmRequest) (*acliv1.Task, error) {
	if err := state.CheckName("vm", req.Name); err != nil {
		return nil, apierr.BadField("name", "%v", err)
	}
	if (req.CloneFromVm == "") == (req.CloneFromSnapshot == "") {
		return nil, apierr.BadField("clone_from_vm", "give one of clone_from_vm=<vm> or clone_from_snapshot=<snapshot>")
	}
	var v *acliv1.Vm
	var copies []storage.Copy
	var what string
	t, err := s.Tasks.Begin(ctx, func(h Held) (Start, error) {
		var src clonedFrom
		var err error
		s.DB.View(func(tx *state.Tx) { src, err = cloneSource(tx, req) })
		if err != nil {
			return Start{}, err
		}
		if t := h.Changing(src.ref.Uuid); t != nil {
			return Start{}, busy(src.kind, src.ref.Name, t)
		}
		what = src.kind + " " + src.ref.Name
		v = VmConfig(src.base)
		v.Uuid, v.Name, v.CreateTime = uuid.NewString(), req.Name, timestamppb.Now()
		copies = cloneDisks(v, what, src.running)
		if err := s.fitsAll(copies, "clone of "+what); err != nil {
			return Start{}, err
		}
		start := Start{Op: acliv1.TaskOperation_kVmClone, Refs: []*acliv1.EntityRef{state.VmRef(v), src.ref},
			Locks: []string{v.Uuid}, Reads: []string{src.ref.Uuid}}
		s.DB.View(func(tx *state.Tx) { err = cloneNics(tx, h, v, &start) })
		return start, err
	})
	if err != nil {
		return nil, err
	}
	return s.Tasks.Launch(ctx, t, func(ctx context.Context, t *tasks.Task) (Outcome, error) {
		if err := s.Volumes.Copy(ctx, copies); err != nil {
			return Outcome{}, fmt.Errorf("clone %s: %w", what, err)
		}
		var size int64
		for _, c := range copies {
			size += c.Size
		}
		return Outcome{
			Writes:  []state.Write{{Key: state.VmKey(v.Uuid), Msg: v, Rev: 0}},
			Message: fmt.Sprintf("vm %s cloned from %s (%d vDisk(s), %s)", v.Name, what, len(copies), scheduler.Bytes(size)),
			Undo:    s.undoCopies(ctx, copies),
		}, nil
	})
}

// clonedFrom is what a clone copies: the VM (running, when its copies
// must pause it) or the snapshot.
type clonedFrom struct {
	kind    string
	ref     *acliv1.EntityRef
	base    *acliv1.Vm
	running *acliv1.Vm
}

func cloneSource(tx *state.Tx, req *acliv1.CloneVmRequest) (clonedFrom, error) {
	if req.CloneFromVm != "" {
		v, err := vms.Resolve(tx, "clone_from_vm", req.CloneFromVm)
		if err != nil {
			return clonedFrom{}, err
		}
		return clonedFrom{kind: "vm", ref: state.VmRef(v), base: v, running: v}, nil
	}
	sn, err := FindSnapshot(tx, "clone_from_snapshot", req.CloneFromSnapshot)
	if err != nil {
		return clonedFrom{}, err
	}
	return clonedFrom{kind: "snapshot", ref: SnapshotRef(sn), base: sn.Vm}, nil
}

// cloneDisks gives v's disks UUIDs of their own and returns the copies of
// those holding data.
func cloneDisks(v *acliv1.Vm, what string, running *acliv1.Vm) []storage.Copy {
	var copies []storage.Copy
	for _, d := range v.Disks {
		src := d.Uuid
		d.Uuid, d.SourceVmdiskUuid, d.Container = uuid.NewString(), src, cmp.Or(d.Container, state.DefaultContainer)
		if !state.HasData(d) {
			continue
		}
		copies = append(copies, storage.Copy{Src: storage.Source{Container: d.Container, Vdisk: src, Size: d.SizeBytes,
			What: "vDisk " + vms.DiskName(d) + " of " + what, Vm: running}, Container: d.Container, Dst: d.Uuid, Size: d.SizeBytes})
	}
	return copies
}

// cloneNics gives v's NICs MACs no NIC has and no task claims, and
// addresses of their own (network.CloneAddrs), each claimed by start: two
// NICs of the clone never share one.
func cloneNics(tx *state.Tx, h Held, v *acliv1.Vm, start *Start) error {
	mine := map[string]bool{}
	for _, n := range v.Nics {
		n.Mac = network.NewMAC(func(mac string) bool {
			return mine["mac:"+mac] || tx.VmByMAC(mac) != nil || h.Changing("mac:"+mac) != nil
		})
		mine["mac:"+n.Mac] = true
		start.Locks = append(start.Locks, "mac:"+n.Mac)
	}
	return network.CloneAddrs(tx, v, func(net string, a netip.Addr) string {
		lock := network.AddrLock(net, a)
		if mine[lock] {
			return v.Name
		}
		if o := h.Changing(lock); o != nil {
			return "being created by task " + o.Uuid
		}
		mine[lock] = true
		start.Locks = append(start.Locks, lock)
		return ""
	})
}
