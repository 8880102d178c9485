package storage

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/api/iqn"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/iscsi"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
	vms "github.com/acli-dev/acli/manager/vm"
)

// Service is the volume group feature behind manager/rpc's adapter. Every
// mutation is a quick task (begun through Tasks) whose VG change and the
// sessions it starts or ends commit in one transaction.
type Service struct {
	*Sessions
	Tasks   tasks.Starter
	Volumes Volumes
}

func (v *Service) ListVolumeGroups(ctx context.Context, _ *acliv1.ListVolumeGroupsRequest) (*acliv1.ListVolumeGroupsResponse, error) {
	out := &acliv1.ListVolumeGroupsResponse{}
	v.DB.View(func(tx *state.Tx) {
		vgs := byName(tx.VolumeGroups())
		sessions := v.current(tx, vgs)
		out.VolumeGroups = make([]*acliv1.VolumeGroup, len(vgs))
		for i, vg := range vgs {
			out.VolumeGroups[i] = vgOut(tx, vg, sessions[vg.Uuid])
		}
	})
	return out, nil
}

func (v *Service) GetVolumeGroup(ctx context.Context, req *acliv1.GetVolumeGroupRequest) (*acliv1.VolumeGroup, error) {
	var out *acliv1.VolumeGroup
	var err error
	v.DB.View(func(tx *state.Tx) {
		var vg *acliv1.VolumeGroup
		if vg, err = Find(tx, "volume_group", req.VolumeGroup); err == nil {
			out = vgOut(tx, vg, v.current(tx, []*acliv1.VolumeGroup{vg})[vg.Uuid])
		}
	})
	return out, err
}

func (v *Service) ListSessions(ctx context.Context, req *acliv1.ListSessionsRequest) (*acliv1.ListSessionsResponse, error) {
	out := &acliv1.ListSessionsResponse{}
	var err error
	v.DB.View(func(tx *state.Tx) {
		vgs := byName(tx.VolumeGroups())
		if req.VolumeGroup != "" {
			var vg *acliv1.VolumeGroup
			if vg, err = Find(tx, "volume_group", req.VolumeGroup); err != nil {
				return
			}
			vgs = []*acliv1.VolumeGroup{vg}
		}
		sessions := v.current(tx, vgs)
		for _, vg := range vgs {
			out.Sessions = append(out.Sessions, v.served(tx, sessions[vg.Uuid])...)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (v *Service) CreateVolumeGroup(ctx context.Context, req *acliv1.CreateVolumeGroupRequest) (*acliv1.Task, error) {
	vg := &acliv1.VolumeGroup{
		Uuid: uuid.NewString(), Name: req.Name, Description: req.Description,
		LoadBalanceVmAttachments: req.GetLoadBalanceVmAttachments(),
	}
	var bad []apierr.Field
	if err := state.CheckName("volume group", vg.Name); err != nil {
		bad = append(bad, apierr.Field{Field: "name", Description: err.Error()})
	}
	prefix, err := TargetPrefix(req.IscsiTargetPrefix, vg.Name)
	if err != nil {
		bad = append(bad, apierr.Field{Field: "iscsi_target_prefix", Description: err.Error()})
	}
	if len(bad) > 0 {
		return nil, apierr.InvalidArgument(bad...)
	}
	vg.IscsiTargetPrefix = prefix
	vg.IscsiTarget = iscsi.TargetDomain + ":" + prefix + "-" + vg.Uuid[:8]
	v.mu.Lock()
	defer v.mu.Unlock()
	var plan *Plan
	v.DB.View(func(tx *state.Tx) {
		if err = nameFree(tx, vg.Name); err == nil {
			plan = v.plan(tx, overrideOf(vg.Uuid, vg), v.Now())
		}
	})
	if err != nil {
		return nil, err
	}
	return v.run(ctx, acliv1.TaskOperation_kVgCreate, []*acliv1.EntityRef{VgRef(vg)}, []string{vg.Uuid}, plan, vg.Uuid,
		fmt.Sprintf("volume group %s created (target %s)", vg.Name, vg.IscsiTarget))
}

// nameFree refuses a VG name another VG has.
func nameFree(tx *state.Tx, name string) error {
	for _, o := range tx.VolumeGroups() {
		if o.Name == name {
			return apierr.AlreadyExists("volume group", name, "volume group names are unique (uuid "+o.Uuid+")")
		}
	}
	return nil
}

// TargetPrefix validates an iSCSI target prefix, or derives one from the
// VG name when none is given.
func TargetPrefix(prefix, name string) (string, error) {
	if prefix == "" {
		p := strings.Trim(strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
				return r
			case r >= 'A' && r <= 'Z':
				return r + 'a' - 'A'
			}
			return '-'
		}, name), "-.")
		if p == "" {
			p = "vg"
		}
		return p, nil
	}
	low := strings.ToLower(prefix)
	if err := iqn.ValidateName(iscsi.TargetDomain + ":" + low); err != nil || strings.ContainsRune(low, ':') {
		fixed, _ := TargetPrefix("", prefix)
		return "", fmt.Errorf("iscsi_target_prefix %q may hold only a-z, 0-9, '-' and '.' (did you mean %q?)", prefix, fixed)
	}
	return low, nil
}

func (v *Service) UpdateVolumeGroup(ctx context.Context, req *acliv1.UpdateVolumeGroupRequest) (*acliv1.Task, error) {
	if req.Name == nil && req.LoadBalanceVmAttachments == nil && req.Description == nil {
		return nil, apierr.BadField("name", "nothing to update: give name=, load_balance_vm_attachments= or description=")
	}
	if req.Name != nil {
		if err := state.CheckName("volume group", *req.Name); err != nil {
			return nil, apierr.BadField("name", "%v", err)
		}
	}
	return v.edit(ctx, req.VolumeGroup, acliv1.TaskOperation_kVgUpdate, func(tx *state.Tx, cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error) {
		next := proto.Clone(cur).(*acliv1.VolumeGroup)
		var what []string
		if req.Name != nil && *req.Name != cur.Name {
			if err := nameFree(tx, *req.Name); err != nil {
				return nil, "", err
			}
			next.Name = *req.Name
			what = append(what, "renamed to "+next.Name)
		}
		if req.LoadBalanceVmAttachments != nil {
			next.LoadBalanceVmAttachments = *req.LoadBalanceVmAttachments
			what = append(what, "load_balance_vm_attachments="+strconv.FormatBool(next.LoadBalanceVmAttachments))
		}
		if req.Description != nil {
			next.Description = *req.Description
			what = append(what, "description set")
		}
		return next, fmt.Sprintf("volume group %s updated: %s", cur.Name, strings.Join(what, ", ")), nil
	})
}

func (v *Service) DeleteVolumeGroup(ctx context.Context, req *acliv1.DeleteVolumeGroupRequest) (*acliv1.Task, error) {
	var gone []*acliv1.VgDisk
	task, err := v.edit(ctx, req.VolumeGroup, acliv1.TaskOperation_kVgDelete, func(tx *state.Tx, cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error) {
		var vs []apierr.Violation
		for _, ini := range cur.ExternalInitiators {
			vs = append(vs, apierr.Violation{Type: "ATTACHED", Subject: "initiator:" + ini,
				Description: "attached to initiator " + ini + " (detach: vg.detach_external " + cur.Name + " " + ini + ")"})
		}
		for _, id := range cur.VmUuids {
			if vm := tx.Vm(id); vm != nil {
				vs = append(vs, apierr.Violation{Type: "ATTACHED", Subject: "vm:" + vm.Name,
					Description: "attached to vm " + vm.Name + " (detach: vg.detach_from_vm " + cur.Name + " " + vm.Name + ")"})
			}
		}
		if len(vs) > 0 {
			return nil, "", apierr.FailedPrecondition(fmt.Sprintf("volume group %s is attached; detach it first", cur.Name), vs...)
		}
		gone = cur.Disks
		return nil, fmt.Sprintf("volume group %s deleted", cur.Name), nil
	})
	if err == nil {
		v.Volumes.Remove(ctx, vgDisks(gone))
	}
	return task, err
}

func (v *Service) CreateVgDisk(ctx context.Context, req *acliv1.CreateVgDiskRequest) (*acliv1.Task, error) {
	if req.CloneFromVmdisk != "" {
		return v.createDiskClone(ctx, req) // clone.go
	}
	if req.SizeBytes <= 0 {
		return nil, apierr.BadField("size_bytes", "vDisk size %d must be greater than 0, e.g. create_size=100G", req.SizeBytes)
	}
	container := cmp.Or(req.Container, state.DefaultContainer)
	return v.edit(ctx, req.VolumeGroup, acliv1.TaskOperation_kVgDiskCreate, func(_ *state.Tx, cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error) {
		d := &acliv1.VgDisk{Uuid: uuid.NewString(), SizeBytes: req.SizeBytes, Container: container}
		next := withDisk(cur, d)
		return next, fmt.Sprintf("volume group %s disk %d created (%s in %s)", cur.Name, d.Index, scheduler.Bytes(req.SizeBytes), container), nil
	})
}

// withDisk is cur with d added at the lowest free index (set on d).
func withDisk(cur *acliv1.VolumeGroup, d *acliv1.VgDisk) *acliv1.VolumeGroup {
	d.Index = 0
	for slices.ContainsFunc(cur.Disks, func(o *acliv1.VgDisk) bool { return o.Index == d.Index }) {
		d.Index++
	}
	next := proto.Clone(cur).(*acliv1.VolumeGroup)
	next.Disks = append(next.Disks, d)
	slices.SortFunc(next.Disks, func(a, b *acliv1.VgDisk) int { return cmp.Compare(a.Index, b.Index) })
	return next
}

func (v *Service) DeleteVgDisk(ctx context.Context, req *acliv1.DeleteVgDiskRequest) (*acliv1.Task, error) {
	if req.Index < 0 {
		return nil, apierr.BadField("index", "disk index %d must not be negative", req.Index)
	}
	var gone []*acliv1.VgDisk
	task, err := v.edit(ctx, req.VolumeGroup, acliv1.TaskOperation_kVgDiskDelete, func(_ *state.Tx, cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error) {
		i := slices.IndexFunc(cur.Disks, func(d *acliv1.VgDisk) bool { return d.Index == req.Index })
		if i < 0 {
			have := make([]string, len(cur.Disks))
			for j, d := range cur.Disks {
				have[j] = strconv.Itoa(int(d.Index))
			}
			return nil, "", apierr.NotFound("vg disk", strconv.Itoa(int(req.Index)), have)
		}
		gone = cur.Disks[i : i+1]
		next := proto.Clone(cur).(*acliv1.VolumeGroup)
		next.Disks = slices.Delete(next.Disks, i, i+1)
		return next, fmt.Sprintf("volume group %s disk %d deleted", cur.Name, req.Index), nil
	})
	if err == nil {
		v.Volumes.Remove(ctx, vgDisks(gone))
	}
	return task, err
}

func (v *Service) AttachExternal(ctx context.Context, req *acliv1.AttachExternalRequest) (*acliv1.Task, error) {
	ini, err := iqn.NormalizeName(req.InitiatorName)
	if err != nil {
		return nil, apierr.BadField("initiator_name", "%v", err)
	}
	return v.edit(ctx, req.VolumeGroup, acliv1.TaskOperation_kVgAttachExternal, func(tx *state.Tx, cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error) {
		if slices.Contains(cur.ExternalInitiators, ini) {
			return nil, "", apierr.AlreadyExists("initiator", ini, "it is already attached to volume group "+cur.Name)
		}
		if err := servable(tx); err != nil {
			return nil, "", err
		}
		next := proto.Clone(cur).(*acliv1.VolumeGroup)
		next.ExternalInitiators = append(next.ExternalInitiators, ini)
		slices.Sort(next.ExternalInitiators)
		return next, fmt.Sprintf("volume group %s attached to initiator %s via %s:%d", cur.Name, ini, tx.Cluster().GetIscsiDataServicesIp(), iscsi.PortExternal), nil
	})
}

func (v *Service) DetachExternal(ctx context.Context, req *acliv1.AttachExternalRequest) (*acliv1.Task, error) {
	ini, err := iqn.NormalizeName(req.InitiatorName)
	if err != nil {
		return nil, apierr.BadField("initiator_name", "%v", err)
	}
	return v.edit(ctx, req.VolumeGroup, acliv1.TaskOperation_kVgDetachExternal, func(_ *state.Tx, cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error) {
		i := slices.Index(cur.ExternalInitiators, ini)
		if i < 0 {
			return nil, "", apierr.NotFound("initiator", ini, cur.ExternalInitiators)
		}
		next := proto.Clone(cur).(*acliv1.VolumeGroup)
		next.ExternalInitiators = slices.Delete(next.ExternalInitiators, i, i+1)
		return next, fmt.Sprintf("volume group %s detached from initiator %s", cur.Name, ini), nil
	})
}

func (v *Service) AttachToVm(ctx context.Context, req *acliv1.AttachToVmRequest) (*acliv1.Task, error) {
	return v.vmAttach(ctx, req, true)
}

func (v *Service) DetachFromVm(ctx context.Context, req *acliv1.AttachToVmRequest) (*acliv1.Task, error) {
	return v.vmAttach(ctx, req, false)
}

func (v *Service) vmAttach(ctx context.Context, req *acliv1.AttachToVmRequest, attach bool) (*acliv1.Task, error) {
	op := acliv1.TaskOperation_kVgDetachFromVm
	if attach {
		op = acliv1.TaskOperation_kVgAttachToVm
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var cur *acliv1.VolumeGroup
	var vm *acliv1.Vm
	var err error
	v.DB.View(func(tx *state.Tx) {
		if cur, err = Find(tx, "volume_group", req.VolumeGroup); err == nil {
			vm, err = vms.Resolve(tx, "vm", req.Vm)
		}
	})
	if err != nil {
		return nil, err
	}
	var plan *Plan
	var msg string
	v.DB.View(func(tx *state.Tx) {
		if cur = tx.VolumeGroup(cur.Uuid); cur == nil {
			err = apierr.NotFound("volume group", req.VolumeGroup, nil)
			return
		}
		i := slices.Index(cur.VmUuids, vm.Uuid)
		switch {
		case attach && i >= 0:
			err = apierr.AlreadyExists("attachment", cur.Name+"/"+vm.Name, "volume group "+cur.Name+" is already attached to vm "+vm.Name)
		case attach:
			err = servable(tx)
		case i < 0:
			names := make([]string, 0, len(cur.VmUuids))
			for _, id := range cur.VmUuids {
				if o := tx.Vm(id); o != nil {
					names = append(names, o.Name)
				}
			}
			err = apierr.NotFound("attached vm", req.Vm, names)
		}
		if err != nil {
			return
		}
		next := proto.Clone(cur).(*acliv1.VolumeGroup)
		msg = fmt.Sprintf("volume group %s detached from vm %s", cur.Name, vm.Name)
		if attach {
			next.VmUuids = append(next.VmUuids, vm.Uuid)
			msg = fmt.Sprintf("volume group %s attached to vm %s", cur.Name, vm.Name)
			if !state.Placed(tx.Vm(vm.Uuid)) {
				msg += " (sessions start when it powers on)"
			}
		} else {
			next.VmUuids = slices.Delete(next.VmUuids, i, i+1)
		}
		plan = v.plan(tx, overrideOf(cur.Uuid, next), v.Now())
	})
	if err != nil {
		return nil, err
	}
	return v.run(ctx, op, []*acliv1.EntityRef{VgRef(cur), state.VmRef(vm)}, []string{cur.Uuid, vm.Uuid}, plan, cur.Uuid, msg)
}

// servable refuses an attachment when the cluster has no CVM at all
// (sessions need one, even to wait on while it is down).
func servable(tx *state.Tx) error {
	if len(CVMs(tx)) == 0 {
		return apierr.Precondition("NO_CVM", "cluster", "the cluster has no CVM to serve iSCSI sessions")
	}
	return nil
}

// edit runs a change of one VG as a task. change reads the committed
// state and returns the new record (nil deletes the VG) and the task
// message.
func (v *Service) edit(ctx context.Context, ref string, op acliv1.TaskOperation, change func(tx *state.Tx, cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error)) (*acliv1.Task, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var cur *acliv1.VolumeGroup
	var plan *Plan
	var msg string
	var err error
	v.DB.View(func(tx *state.Tx) {
		if cur, err = Find(tx, "volume_group", ref); err != nil {
			return
		}
		var next *acliv1.VolumeGroup
		if next, msg, err = change(tx, cur); err == nil {
			plan = v.plan(tx, overrideOf(cur.Uuid, next), v.Now())
		}
	})
	if err != nil {
		return nil, err
	}
	return v.run(ctx, op, []*acliv1.EntityRef{VgRef(cur)}, []string{cur.Uuid}, plan, cur.Uuid, msg)
}

// overrideOf is a one-VG override for plan; next nil deletes.
func overrideOf(id string, next *acliv1.VolumeGroup) map[string]*acliv1.VolumeGroup {
	return map[string]*acliv1.VolumeGroup{id: next}
}

// run commits a plan with its task (called holding Sessions.mu) and
// publishes its events. The task is refused while another holds one of
// locks; the rules are checked at its commit.
func (v *Service) run(ctx context.Context, op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks []string, plan *Plan, vg, msg string) (*acliv1.Task, error) {
	q, err := v.Tasks.Begin(ctx, "volume group", op, refs, locks...)
	if err != nil {
		return nil, err
	}
	return v.commitPlan(ctx, q, plan, vg, msg)
}

// commitPlan commits a plan with task q's end (called holding
// Sessions.mu) and publishes its events.
func (v *Service) commitPlan(ctx context.Context, q tasks.Quick, plan *Plan, vg, msg string) (*acliv1.Task, error) {
	task, err := q.Commit(ctx, plan.Writes, msg+sessionSummary(plan, vg))
	if err == nil {
		v.settle(plan)
		v.publish(plan, task.Uuid)
	}
	return task, err
}

// sessionSummary tells how many sessions a VG has after a plan and which
// CVMs serve them, e.g. "; 3 sessions on 127.20.0.31, 127.20.0.32, 127.20.0.33".
func sessionSummary(plan *Plan, id string) string {
	for _, vg := range plan.Changed {
		if vg.Uuid != id || len(vg.Sessions) == 0 {
			continue
		}
		var ips []string
		down := 0
		for _, x := range vg.Sessions {
			if !slices.Contains(ips, x.CvmIp) {
				ips = append(ips, x.CvmIp)
			}
			if x.State != acliv1.IscsiSessionState_kSessionActive {
				down++
			}
		}
		slices.Sort(ips)
		out := fmt.Sprintf("; %d sessions on %s", len(vg.Sessions), strings.Join(ips, ", "))
		if down > 0 {
			out += fmt.Sprintf(" (%d down: no cvm is up)", down)
		}
		return out
	}
	return ""
}

// Find resolves a VG by UUID or name.
func Find(tx *state.Tx, field, ref string) (*acliv1.VolumeGroup, error) {
	if ref == "" {
		return nil, apierr.BadField(field, "%s is required: give a volume group name or UUID", field)
	}
	if len(ref) > state.MaxNameBytes {
		return nil, apierr.BadField(field, "%s is %d bytes long; no name or UUID is longer than %d", field, len(ref), state.MaxNameBytes)
	}
	if vg := tx.VolumeGroup(strings.ToLower(ref)); vg != nil {
		return vg, nil
	}
	vgs := tx.VolumeGroups()
	names := make([]string, 0, len(vgs))
	for _, vg := range vgs {
		if vg.Name == ref {
			return vg, nil
		}
		names = append(names, vg.Name)
	}
	return nil, apierr.NotFound("volume group", ref, names)
}

// vgDisks are a VG's vDisks as disks whose volumes to remove.
func vgDisks(disks []*acliv1.VgDisk) []*acliv1.Disk {
	ds := make([]*acliv1.Disk, len(disks))
	for i, d := range disks {
		ds[i] = &acliv1.Disk{Uuid: d.Uuid, Container: d.Container, SizeBytes: d.SizeBytes}
	}
	return ds
}
