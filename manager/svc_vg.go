package manager

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
)

// volumeGroupService serves VolumeGroupService. Every mutation is a quick
// task whose VG change and the sessions it starts or ends commit in one
// transaction (runVgTaskLocked).
// volumeGroupService is the volume group feature behind manager/rpc's adapter.
type volumeGroupService struct {
	m *Manager
}

func (s volumeGroupService) ListVolumeGroups(ctx context.Context, _ *acliv1.ListVolumeGroupsRequest) (*acliv1.ListVolumeGroupsResponse, error) {
	m := s.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	recs := m.vgListLocked()
	sessions := m.sessionsLocked(recs)
	out := &acliv1.ListVolumeGroupsResponse{VolumeGroups: make([]*acliv1.VolumeGroup, len(recs))}
	for i, r := range recs {
		out.VolumeGroups[i] = m.vgOutLocked(r, sessions[r.pb.Uuid])
	}
	return out, nil
}

func (s volumeGroupService) GetVolumeGroup(ctx context.Context, req *acliv1.GetVolumeGroupRequest) (*acliv1.VolumeGroup, error) {
	m := s.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, err := m.vgLocked("volume_group", req.VolumeGroup)
	if err != nil {
		return nil, err
	}
	return m.vgOutLocked(r, m.sessionsLocked([]*vgRec{r})[r.pb.Uuid]), nil
}

func (s volumeGroupService) ListSessions(ctx context.Context, req *acliv1.ListSessionsRequest) (*acliv1.ListSessionsResponse, error) {
	m := s.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	recs := m.vgListLocked()
	if req.VolumeGroup != "" {
		r, err := m.vgLocked("volume_group", req.VolumeGroup)
		if err != nil {
			return nil, err
		}
		recs = []*vgRec{r}
	}
	sessions := m.sessionsLocked(recs)
	out := &acliv1.ListSessionsResponse{}
	for _, r := range recs {
		out.Sessions = append(out.Sessions, m.servedLocked(sessions[r.pb.Uuid])...)
	}
	return out, nil
}

func (s volumeGroupService) CreateVolumeGroup(ctx context.Context, req *acliv1.CreateVolumeGroupRequest) (*acliv1.Task, error) {
	m := s.m
	vg := &acliv1.VolumeGroup{
		Uuid: uuid.NewString(), Name: req.Name, Description: req.Description,
		LoadBalanceVmAttachments: req.GetLoadBalanceVmAttachments(),
	}
	var bad []apierr.Field
	if err := state.CheckName("volume group", vg.Name); err != nil {
		bad = append(bad, apierr.Field{Field: "name", Description: err.Error()})
	}
	prefix, err := targetPrefix(req.IscsiTargetPrefix, vg.Name)
	if err != nil {
		bad = append(bad, apierr.Field{Field: "iscsi_target_prefix", Description: err.Error()})
	}
	if len(bad) > 0 {
		return nil, apierr.InvalidArgument(bad...)
	}
	vg.IscsiTargetPrefix = prefix
	vg.IscsiTarget = iscsi.TargetDomain + ":" + prefix + "-" + vg.Uuid[:8]
	m.vgs.mu.Lock()
	defer m.vgs.mu.Unlock()
	m.mu.Lock()
	if other := m.vgs.byName[vg.Name]; other != nil {
		m.mu.Unlock()
		return nil, apierr.AlreadyExists("volume group", vg.Name, "volume group names are unique (uuid "+other.pb.Uuid+")")
	}
	return m.runVgTaskLocked(ctx, acliv1.TaskOperation_kVgCreate, []*acliv1.EntityRef{vgRef(vg)}, []string{vg.Uuid},
		overrideOf(vg.Uuid, vg), fmt.Sprintf("volume group %s created (target %s)", vg.Name, vg.IscsiTarget))
}

// targetPrefix validates an iSCSI target prefix, or derives one from the
// VG name when none is given.
func targetPrefix(prefix, name string) (string, error) {
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
		fixed, _ := targetPrefix("", prefix)
		return "", fmt.Errorf("iscsi_target_prefix %q may hold only a-z, 0-9, '-' and '.' (did you mean %q?)", prefix, fixed)
	}
	return low, nil
}

func (s volumeGroupService) UpdateVolumeGroup(ctx context.Context, req *acliv1.UpdateVolumeGroupRequest) (*acliv1.Task, error) {
	if req.Name == nil && req.LoadBalanceVmAttachments == nil && req.Description == nil {
		return nil, apierr.BadField("name", "nothing to update: give name=, load_balance_vm_attachments= or description=")
	}
	if req.Name != nil {
		if err := state.CheckName("volume group", *req.Name); err != nil {
			return nil, apierr.BadField("name", "%v", err)
		}
	}
	m := s.m
	return m.editVg(ctx, req.VolumeGroup, acliv1.TaskOperation_kVgUpdate, func(cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error) {
		next := proto.Clone(cur).(*acliv1.VolumeGroup)
		var what []string
		if req.Name != nil && *req.Name != cur.Name {
			if other := m.vgs.byName[*req.Name]; other != nil {
				return nil, "", apierr.AlreadyExists("volume group", *req.Name, "volume group names are unique (uuid "+other.pb.Uuid+")")
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

func (s volumeGroupService) DeleteVolumeGroup(ctx context.Context, req *acliv1.DeleteVolumeGroupRequest) (*acliv1.Task, error) {
	m := s.m
	var gone []*acliv1.VgDisk
	task, err := m.editVg(ctx, req.VolumeGroup, acliv1.TaskOperation_kVgDelete, func(cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error) {
		var vs []apierr.Violation
		for _, ini := range cur.ExternalInitiators {
			vs = append(vs, apierr.Violation{Type: "ATTACHED", Subject: "initiator:" + ini,
				Description: "attached to initiator " + ini + " (detach: vg.detach_external " + cur.Name + " " + ini + ")"})
		}
		for _, id := range cur.VmUuids {
			if v := m.vms[id]; v != nil {
				vs = append(vs, apierr.Violation{Type: "ATTACHED", Subject: "vm:" + v.pb.Name,
					Description: "attached to vm " + v.pb.Name + " (detach: vg.detach_from_vm " + cur.Name + " " + v.pb.Name + ")"})
			}
		}
		if len(vs) > 0 {
			return nil, "", apierr.FailedPrecondition(fmt.Sprintf("volume group %s is attached; detach it first", cur.Name), vs...)
		}
		gone = cur.Disks
		return nil, fmt.Sprintf("volume group %s deleted", cur.Name), nil
	})
	if err == nil {
		m.removeVgVolumes(ctx, gone) // vg_clone.go
	}
	return task, err
}

func (s volumeGroupService) CreateVgDisk(ctx context.Context, req *acliv1.CreateVgDiskRequest) (*acliv1.Task, error) {
	if req.CloneFromVmdisk != "" {
		return s.m.createVgDiskClone(ctx, req) // vg_clone.go
	}
	if req.SizeBytes <= 0 {
		return nil, apierr.BadField("size_bytes", "vDisk size %d must be greater than 0, e.g. create_size=100G", req.SizeBytes)
	}
	container := cmp.Or(req.Container, "default-container")
	return s.m.editVg(ctx, req.VolumeGroup, acliv1.TaskOperation_kVgDiskCreate, func(cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error) {
		idx := int32(0)
		for slices.ContainsFunc(cur.Disks, func(d *acliv1.VgDisk) bool { return d.Index == idx }) {
			idx++
		}
		next := proto.Clone(cur).(*acliv1.VolumeGroup)
		next.Disks = append(next.Disks, &acliv1.VgDisk{Index: idx, Uuid: uuid.NewString(), SizeBytes: req.SizeBytes, Container: container})
		slices.SortFunc(next.Disks, func(a, b *acliv1.VgDisk) int { return cmp.Compare(a.Index, b.Index) })
		return next, fmt.Sprintf("volume group %s disk %d created (%s in %s)", cur.Name, idx, scheduler.Bytes(req.SizeBytes), container), nil
	})
}

func (s volumeGroupService) DeleteVgDisk(ctx context.Context, req *acliv1.DeleteVgDiskRequest) (*acliv1.Task, error) {
	if req.Index < 0 {
		return nil, apierr.BadField("index", "disk index %d must not be negative", req.Index)
	}
	var gone []*acliv1.VgDisk
	task, err := s.m.editVg(ctx, req.VolumeGroup, acliv1.TaskOperation_kVgDiskDelete, func(cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error) {
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
		s.m.removeVgVolumes(ctx, gone) // vg_clone.go
	}
	return task, err
}

func (s volumeGroupService) AttachExternal(ctx context.Context, req *acliv1.AttachExternalRequest) (*acliv1.Task, error) {
	ini, err := iqn.NormalizeName(req.InitiatorName)
	if err != nil {
		return nil, apierr.BadField("initiator_name", "%v", err)
	}
	m := s.m
	return m.editVg(ctx, req.VolumeGroup, acliv1.TaskOperation_kVgAttachExternal, func(cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error) {
		if slices.Contains(cur.ExternalInitiators, ini) {
			return nil, "", apierr.AlreadyExists("initiator", ini, "it is already attached to volume group "+cur.Name)
		}
		if err := m.servableLocked(); err != nil {
			return nil, "", err
		}
		next := proto.Clone(cur).(*acliv1.VolumeGroup)
		next.ExternalInitiators = append(next.ExternalInitiators, ini)
		slices.Sort(next.ExternalInitiators)
		return next, fmt.Sprintf("volume group %s attached to initiator %s via %s:%d", cur.Name, ini, m.clusterRecord().GetIscsiDataServicesIp(), iscsi.PortExternal), nil
	})
}

func (s volumeGroupService) DetachExternal(ctx context.Context, req *acliv1.AttachExternalRequest) (*acliv1.Task, error) {
	ini, err := iqn.NormalizeName(req.InitiatorName)
	if err != nil {
		return nil, apierr.BadField("initiator_name", "%v", err)
	}
	return s.m.editVg(ctx, req.VolumeGroup, acliv1.TaskOperation_kVgDetachExternal, func(cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error) {
		i := slices.Index(cur.ExternalInitiators, ini)
		if i < 0 {
			return nil, "", apierr.NotFound("initiator", ini, cur.ExternalInitiators)
		}
		next := proto.Clone(cur).(*acliv1.VolumeGroup)
		next.ExternalInitiators = slices.Delete(next.ExternalInitiators, i, i+1)
		return next, fmt.Sprintf("volume group %s detached from initiator %s", cur.Name, ini), nil
	})
}

func (s volumeGroupService) AttachToVm(ctx context.Context, req *acliv1.AttachToVmRequest) (*acliv1.Task, error) {
	return s.m.vmAttach(ctx, req, true)
}

func (s volumeGroupService) DetachFromVm(ctx context.Context, req *acliv1.AttachToVmRequest) (*acliv1.Task, error) {
	return s.m.vmAttach(ctx, req, false)
}

func (m *Manager) vmAttach(ctx context.Context, req *acliv1.AttachToVmRequest, attach bool) (*acliv1.Task, error) {
	op := acliv1.TaskOperation_kVgDetachFromVm
	if attach {
		op = acliv1.TaskOperation_kVgAttachToVm
	}
	m.vgs.mu.Lock()
	defer m.vgs.mu.Unlock()
	m.mu.Lock()
	r, err := m.vgLocked("volume_group", req.VolumeGroup)
	var v *vmRec
	if err == nil {
		v, err = m.vmLocked("vm", req.Vm)
	}
	if err == nil {
		err = m.checkBusyLocked("volume group", r.pb.Name, r.pb.Uuid)
	}
	if err == nil {
		err = m.checkBusyLocked("vm", v.pb.Name, v.pb.Uuid)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur := r.pb
	i := slices.Index(cur.VmUuids, v.pb.Uuid)
	switch {
	case attach && i >= 0:
		err = apierr.AlreadyExists("attachment", cur.Name+"/"+v.pb.Name, "volume group "+cur.Name+" is already attached to vm "+v.pb.Name)
	case attach:
		err = m.servableLocked()
	case i < 0:
		names := make([]string, 0, len(cur.VmUuids))
		for _, id := range cur.VmUuids {
			if o := m.vms[id]; o != nil {
				names = append(names, o.pb.Name)
			}
		}
		err = apierr.NotFound("attached vm", req.Vm, names)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	next := proto.Clone(cur).(*acliv1.VolumeGroup)
	msg := fmt.Sprintf("volume group %s detached from vm %s", cur.Name, v.pb.Name)
	if attach {
		next.VmUuids = append(next.VmUuids, v.pb.Uuid)
		msg = fmt.Sprintf("volume group %s attached to vm %s", cur.Name, v.pb.Name)
		if !placed(v.pb) {
			msg += " (sessions start when it powers on)"
		}
	} else {
		next.VmUuids = slices.Delete(next.VmUuids, i, i+1)
	}
	return m.runVgTaskLocked(ctx, op, []*acliv1.EntityRef{vgRef(cur), vmRef(v.pb)}, []string{cur.Uuid, v.pb.Uuid}, overrideOf(cur.Uuid, next), msg)
}

// servableLocked refuses an attachment when the cluster has no CVM at all
// (sessions need one, even to wait on while it is down).
func (m *Manager) servableLocked() error {
	if len(m.cvmsLocked()) == 0 {
		return apierr.Precondition("NO_CVM", "cluster", "the cluster has no CVM to serve iSCSI sessions")
	}
	return nil
}

// editVg runs a change of one VG as a task. change runs under Manager.mu
// and returns the new record (nil deletes the VG) and the task message.
func (m *Manager) editVg(ctx context.Context, ref string, op acliv1.TaskOperation, change func(cur *acliv1.VolumeGroup) (*acliv1.VolumeGroup, string, error)) (*acliv1.Task, error) {
	m.vgs.mu.Lock()
	defer m.vgs.mu.Unlock()
	m.mu.Lock()
	r, err := m.vgLocked("volume_group", ref)
	if err == nil {
		err = m.checkBusyLocked("volume group", r.pb.Name, r.pb.Uuid)
	}
	var next *acliv1.VolumeGroup
	var msg string
	if err == nil {
		next, msg, err = change(r.pb)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	return m.runVgTaskLocked(ctx, op, []*acliv1.EntityRef{vgRef(r.pb)}, []string{r.pb.Uuid}, overrideOf(r.pb.Uuid, next), msg)
}

// overrideOf is a one-VG override for planLocked; next nil deletes.
func overrideOf(id string, next *acliv1.VolumeGroup) map[string]*acliv1.VolumeGroup {
	return map[string]*acliv1.VolumeGroup{id: next}
}

// runVgTaskLocked plans sessions with the VGs changed as override says and
// commits the plan with the task. It is called holding vgState.mu and
// Manager.mu, after the busy checks, and releases Manager.mu.
func (m *Manager) runVgTaskLocked(ctx context.Context, op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks []string, override map[string]*acliv1.VolumeGroup, msg string) (*acliv1.Task, error) {
	plan := m.planLocked(override, timeNow())
	ws := m.planWritesLocked(plan)
	for id, next := range override {
		if next != nil {
			msg += sessionSummary(plan, id)
		}
	}
	t := m.newTaskLocked(op, refs, locks...)
	m.mu.Unlock()
	task, err := m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) {
		return outcome{writes: ws, apply: func(rev int64) { m.applyPlanLocked(plan, rev) }, message: msg}, nil
	})
	if err == nil {
		m.publishPlan(plan, task.Uuid)
	}
	return task, err
}

// sessionSummary tells how many sessions a VG has after a plan and which
// CVMs serve them, e.g. "; 3 sessions on 127.20.0.31, 127.20.0.32, 127.20.0.33".
func sessionSummary(plan *vgPlan, id string) string {
	for _, vg := range plan.changed {
		if vg.Uuid != id || len(vg.Sessions) == 0 {
			continue
		}
		var ips []string
		down := 0
		for _, s := range vg.Sessions {
			if !slices.Contains(ips, s.CvmIp) {
				ips = append(ips, s.CvmIp)
			}
			if s.State != acliv1.IscsiSessionState_kSessionActive {
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

// vgLocked resolves a VG by UUID or name.
func (m *Manager) vgLocked(field, ref string) (*vgRec, error) {
	if ref == "" {
		return nil, apierr.BadField(field, "%s is required: give a volume group name or UUID", field)
	}
	if err := checkRef(field, ref); err != nil {
		return nil, err
	}
	if r := m.vgs.byUUID[strings.ToLower(ref)]; r != nil {
		return r, nil
	}
	if r := m.vgs.byName[ref]; r != nil {
		return r, nil
	}
	names := make([]string, 0, len(m.vgs.byName))
	for n := range m.vgs.byName {
		names = append(names, n)
	}
	return nil, apierr.NotFound("volume group", ref, names)
}

// vgListLocked lists the VGs by name.
func (m *Manager) vgListLocked() []*vgRec {
	out := make([]*vgRec, 0, len(m.vgs.byUUID))
	for _, r := range m.vgs.byUUID {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *vgRec) int { return strings.Compare(a.pb.Name, b.pb.Name) })
	return out
}
