package manager

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/vmgroup"
)

// Host affinity (a must-rule: the VM runs only on the listed hosts) and VM
// groups, whose anti-affinity is a should-rule: the scheduler keeps members
// on different hosts when it can.

// SetAffinity sets or (with no hosts) clears a VM's host affinity. A
// running VM must already be on one of the hosts.
func (s vmService) SetAffinity(ctx context.Context, req *acliv1.SetAffinityRequest) (*acliv1.Task, error) {
	m := s.m
	return m.editVm(ctx, req.Vm, acliv1.TaskOperation_kVmSetAffinity, func(cur *acliv1.Vm, _ *taskRec) (*acliv1.Vm, string, error) {
		var hosts []*hostRec
		for _, ref := range req.Hosts {
			for _, part := range strings.Split(ref, ",") {
				if part = strings.TrimSpace(part); part == "" {
					continue
				}
				h, err := m.hostLocked("host_list", part)
				if err != nil {
					return nil, "", err
				}
				if !slices.Contains(hosts, h) {
					hosts = append(hosts, h)
				}
			}
		}
		// Host list order, so the record does not depend on how it was typed.
		slices.SortFunc(hosts, func(a, b *hostRec) int {
			return slices.Index(m.hostList, a) - slices.Index(m.hostList, b)
		})
		v := proto.Clone(cur).(*acliv1.Vm)
		v.HostAffinity = nil
		labels := make([]string, len(hosts))
		for i, h := range hosts {
			v.HostAffinity = append(v.HostAffinity, h.pb.Uuid)
			labels[i] = hostLabel(h.pb)
		}
		if len(hosts) == 0 {
			return v, fmt.Sprintf("vm %s host affinity cleared", cur.Name), nil
		}
		if placed(cur) && !slices.Contains(v.HostAffinity, cur.HostUuid) {
			return nil, "", apierr.Precondition("AFFINITY", "vm:"+cur.Name,
				"vm %s runs on %s, outside the new host affinity; migrate it first (vm.migrate %s host=%s)",
				cur.Name, hostLabel(m.hosts[cur.HostUuid].pb), cur.Name, hosts[0].pb.Name)
		}
		return v, fmt.Sprintf("vm %s host affinity set to %s", cur.Name, strings.Join(labels, ", ")), nil
	})
}

// ---- VM groups (manager/vmgroup) ----

// vmGroupService is the VM group feature behind manager/rpc's adapter.
type vmGroupService struct {
	m *Manager
}

func (m *Manager) groupLocked(ref string) (*vmgroup.Rec, error) {
	if ref == "" {
		return nil, apierr.BadField("group", "group is required: give a VM group name or UUID")
	}
	if err := checkRef("group", ref); err != nil {
		return nil, err
	}
	return m.ops.groups.Lookup(ref)
}

func (m *Manager) vmExistsLocked(id string) bool { return m.vms[id] != nil }

// membersLocked resolves the VMs an edit names.
func (m *Manager) membersLocked(refs []string) ([]vmgroup.Member, error) {
	out := make([]vmgroup.Member, 0, len(refs))
	for _, ref := range refs {
		v, err := m.vmLocked("vm", ref)
		if err != nil {
			return nil, err
		}
		out = append(out, vmgroup.Member{UUID: v.pb.Uuid, Name: v.pb.Name})
	}
	return out, nil
}

// placeWithRulesLocked places a VM that belongs to an anti-affinity group
// with the scheduler, which honours the group; other VMs (and a VM the
// scheduler cannot place) go to the placement function, whose must-rules
// are the same and whose refusals name each host's shortfall.
func (m *Manager) placeWithRulesLocked(v *acliv1.Vm) (*hostRec, bool) {
	groups := m.antiAffinityLocked()
	if len(groups[v.Uuid]) == 0 {
		return nil, false
	}
	p, err := scheduler.Place(m.snapshotLocked(), schedVM(v, groups[v.Uuid]), scheduler.Options{})
	if err != nil {
		return nil, false
	}
	return m.hosts[p.Host.UUID], true
}

func (s vmGroupService) ListVmGroups(ctx context.Context, _ *acliv1.ListVmGroupsRequest) (*acliv1.ListVmGroupsResponse, error) {
	m := s.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	return &acliv1.ListVmGroupsResponse{Groups: m.ops.groups.List(m.vmExistsLocked)}, nil
}

func (s vmGroupService) CreateVmGroup(ctx context.Context, req *acliv1.CreateVmGroupRequest) (*acliv1.Task, error) {
	m := s.m
	g := &acliv1.VmGroup{Uuid: uuid.NewString(), Name: req.Name}
	m.mu.Lock()
	if other := m.ops.groups.Named(g.Name); other != nil {
		m.mu.Unlock()
		return nil, apierr.AlreadyExists("vm_group", g.Name, "vm group names are unique (uuid "+other.PB.Uuid+")")
	}
	lock := "vmgroup-name:" + g.Name
	if t := m.busy[lock]; t != nil {
		m.mu.Unlock()
		return nil, apierr.Busy("vm_group", g.Name, t.PB.Uuid, t.PB.Operation.String())
	}
	t := m.newTaskLocked(acliv1.TaskOperation_kVmGroupCreate, []*acliv1.EntityRef{vmgroup.Ref(g)}, g.Uuid, lock)
	m.mu.Unlock()
	return m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: vmgroup.Key(g.Uuid), msg: g, rev: 0}},
			apply:   func(rev int64) { m.ops.groups.Put(g, rev) },
			message: fmt.Sprintf("vm group %s created", g.Name),
		}, nil
	})
}

func (s vmGroupService) UpdateVmGroup(ctx context.Context, req *acliv1.UpdateVmGroupRequest) (*acliv1.Task, error) {
	m := s.m
	m.mu.Lock()
	r, err := m.groupLocked(req.Group)
	if err == nil {
		err = m.checkBusyLocked("vm_group", r.PB.Name, r.PB.Uuid)
	}
	var add, remove []vmgroup.Member
	if err == nil {
		add, err = m.membersLocked(req.AddVms)
	}
	if err == nil {
		remove, err = m.membersLocked(req.RemoveVms)
	}
	var g *acliv1.VmGroup
	var msg string
	if err == nil {
		g, msg, err = vmgroup.Edit(vmgroup.Out(r.PB, m.vmExistsLocked), add, remove, req.AntiAffinity)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur, rev := r.PB, r.Rev
	t := m.newTaskLocked(acliv1.TaskOperation_kVmGroupUpdate, []*acliv1.EntityRef{vmgroup.Ref(cur)}, cur.Uuid)
	m.mu.Unlock()
	return m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: vmgroup.Key(g.Uuid), msg: g, rev: rev}},
			apply:   func(rev int64) { m.ops.groups.Put(g, rev) },
			message: msg,
		}, nil
	})
}

func (s vmGroupService) DeleteVmGroup(ctx context.Context, req *acliv1.DeleteVmGroupRequest) (*acliv1.Task, error) {
	m := s.m
	m.mu.Lock()
	r, err := m.groupLocked(req.Group)
	if err == nil {
		err = m.checkBusyLocked("vm_group", r.PB.Name, r.PB.Uuid)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur, rev := r.PB, r.Rev
	t := m.newTaskLocked(acliv1.TaskOperation_kVmGroupDelete, []*acliv1.EntityRef{vmgroup.Ref(cur)}, cur.Uuid)
	m.mu.Unlock()
	return m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: vmgroup.Key(cur.Uuid), rev: rev}},
			apply:   func(int64) { m.ops.groups.Delete(cur.Uuid) },
			message: fmt.Sprintf("vm group %s deleted", cur.Name),
		}, nil
	})
}
