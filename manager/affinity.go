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
	"github.com/acli-dev/acli/manager/state"
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

// ---- VM groups ----

func (m *Manager) putGroupLocked(g *acliv1.VmGroup, rev int64) {
	if old := m.ops.groups[g.Uuid]; old != nil {
		delete(m.ops.groupByName, old.pb.Name)
	}
	r := &groupRec{pb: g, rev: rev}
	m.ops.groups[g.Uuid] = r
	m.ops.groupByName[g.Name] = r
}

func (m *Manager) deleteGroupLocked(id string) {
	if r := m.ops.groups[id]; r != nil {
		delete(m.ops.groupByName, r.pb.Name)
		delete(m.ops.groups, id)
	}
}

func (m *Manager) groupLocked(ref string) (*groupRec, error) {
	if ref == "" {
		return nil, apierr.BadField("group", "group is required: give a VM group name or UUID")
	}
	if err := checkRef("group", ref); err != nil {
		return nil, err
	}
	if r := m.ops.groups[strings.ToLower(ref)]; r != nil {
		return r, nil
	}
	if r := m.ops.groupByName[ref]; r != nil {
		return r, nil
	}
	names := make([]string, 0, len(m.ops.groupByName))
	for n := range m.ops.groupByName {
		names = append(names, n)
	}
	return nil, apierr.NotFound("vm_group", ref, names)
}

// antiAffinityGroupsLocked maps each VM to its anti-affinity groups.
func (m *Manager) antiAffinityGroupsLocked() map[string][]string {
	out := map[string][]string{}
	for _, g := range m.ops.groups {
		if !g.pb.AntiAffinity {
			continue
		}
		for _, id := range g.pb.VmUuids {
			out[id] = append(out[id], g.pb.Uuid)
		}
	}
	for _, gs := range out {
		slices.Sort(gs)
	}
	return out
}

// placeWithRulesLocked places a VM that belongs to an anti-affinity group
// with the scheduler, which honours the group; other VMs (and a VM the
// scheduler cannot place) go to the placement function, whose must-rules
// are the same and whose refusals name each host's shortfall.
func (m *Manager) placeWithRulesLocked(v *acliv1.Vm) (*hostRec, bool) {
	groups := m.antiAffinityGroupsLocked()
	if len(groups[v.Uuid]) == 0 {
		return nil, false
	}
	p, err := scheduler.Place(m.snapshotLocked(), schedVM(v, groups[v.Uuid]), scheduler.Options{})
	if err != nil {
		return nil, false
	}
	return m.hosts[p.Host.UUID], true
}

func groupRef(g *acliv1.VmGroup) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kVmGroup, Uuid: g.Uuid, Name: g.Name}
}

// groupOut drops members that no longer exist.
func (m *Manager) groupOut(r *groupRec) *acliv1.VmGroup {
	g := proto.Clone(r.pb).(*acliv1.VmGroup)
	g.VmUuids = slices.DeleteFunc(g.VmUuids, func(id string) bool { return m.vms[id] == nil })
	return g
}

func (s vmService) ListVmGroups(ctx context.Context, _ *acliv1.ListVmGroupsRequest) (*acliv1.ListVmGroupsResponse, error) {
	m := s.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := &acliv1.ListVmGroupsResponse{}
	for _, r := range m.ops.groups {
		out.Groups = append(out.Groups, m.groupOut(r))
	}
	slices.SortFunc(out.Groups, func(a, b *acliv1.VmGroup) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (s vmService) CreateVmGroup(ctx context.Context, req *acliv1.CreateVmGroupRequest) (*acliv1.Task, error) {
	m := s.m
	if err := state.CheckName("vm_group", req.Name); err != nil {
		return nil, apierr.BadField("name", "%v", err)
	}
	g := &acliv1.VmGroup{Uuid: uuid.NewString(), Name: req.Name}
	m.mu.Lock()
	if other := m.ops.groupByName[g.Name]; other != nil {
		m.mu.Unlock()
		return nil, apierr.AlreadyExists("vm_group", g.Name, "vm group names are unique (uuid "+other.pb.Uuid+")")
	}
	lock := "vmgroup-name:" + g.Name
	if t := m.busy[lock]; t != nil {
		m.mu.Unlock()
		return nil, apierr.Busy("vm_group", g.Name, t.PB.Uuid, t.PB.Operation.String())
	}
	t := m.newTaskLocked(acliv1.TaskOperation_kVmGroupCreate, []*acliv1.EntityRef{groupRef(g)}, g.Uuid, lock)
	m.mu.Unlock()
	return m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: groupKey(g.Uuid), msg: g, rev: 0}},
			apply:   func(rev int64) { m.putGroupLocked(g, rev) },
			message: fmt.Sprintf("vm group %s created", g.Name),
		}, nil
	})
}

func (s vmService) UpdateVmGroup(ctx context.Context, req *acliv1.UpdateVmGroupRequest) (*acliv1.Task, error) {
	m := s.m
	if len(req.AddVms) == 0 && len(req.RemoveVms) == 0 && req.AntiAffinity == nil {
		return nil, apierr.BadField("group", "nothing to update: give vms to add or remove, or anti_affinity=true|false")
	}
	m.mu.Lock()
	r, err := m.groupLocked(req.Group)
	if err == nil {
		err = m.checkBusyLocked("vm_group", r.pb.Name, r.pb.Uuid)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur, rev := r.pb, r.rev
	g := proto.Clone(cur).(*acliv1.VmGroup)
	g.VmUuids = slices.DeleteFunc(g.VmUuids, func(id string) bool { return m.vms[id] == nil })
	var changes []string
	for _, ref := range req.AddVms {
		v, err := m.vmLocked("vm", ref)
		if err != nil {
			m.mu.Unlock()
			return nil, err
		}
		if !slices.Contains(g.VmUuids, v.pb.Uuid) {
			g.VmUuids = append(g.VmUuids, v.pb.Uuid)
			changes = append(changes, "added "+v.pb.Name)
		}
	}
	for _, ref := range req.RemoveVms {
		v, err := m.vmLocked("vm", ref)
		if err != nil {
			m.mu.Unlock()
			return nil, err
		}
		i := slices.Index(g.VmUuids, v.pb.Uuid)
		if i < 0 {
			m.mu.Unlock()
			return nil, apierr.Precondition("NOT_MEMBER", "vm:"+v.pb.Name, "vm %s is not a member of vm group %s", v.pb.Name, cur.Name)
		}
		g.VmUuids = slices.Delete(g.VmUuids, i, i+1)
		changes = append(changes, "removed "+v.pb.Name)
	}
	if req.AntiAffinity != nil && *req.AntiAffinity != g.AntiAffinity {
		g.AntiAffinity = *req.AntiAffinity
		if g.AntiAffinity {
			changes = append(changes, "anti-affinity set")
		} else {
			changes = append(changes, "anti-affinity unset")
		}
	}
	t := m.newTaskLocked(acliv1.TaskOperation_kVmGroupUpdate, []*acliv1.EntityRef{groupRef(cur)}, cur.Uuid)
	m.mu.Unlock()
	msg := fmt.Sprintf("vm group %s unchanged", cur.Name)
	if len(changes) > 0 {
		msg = fmt.Sprintf("vm group %s: %s", cur.Name, strings.Join(changes, ", "))
	}
	return m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: groupKey(g.Uuid), msg: g, rev: rev}},
			apply:   func(rev int64) { m.putGroupLocked(g, rev) },
			message: msg,
		}, nil
	})
}

func (s vmService) DeleteVmGroup(ctx context.Context, req *acliv1.DeleteVmGroupRequest) (*acliv1.Task, error) {
	m := s.m
	m.mu.Lock()
	r, err := m.groupLocked(req.Group)
	if err == nil {
		err = m.checkBusyLocked("vm_group", r.pb.Name, r.pb.Uuid)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur, rev := r.pb, r.rev
	t := m.newTaskLocked(acliv1.TaskOperation_kVmGroupDelete, []*acliv1.EntityRef{groupRef(cur)}, cur.Uuid)
	m.mu.Unlock()
	return m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: groupKey(cur.Uuid), rev: rev}},
			apply:   func(int64) { m.deleteGroupLocked(cur.Uuid) },
			message: fmt.Sprintf("vm group %s deleted", cur.Name),
		}, nil
	})
}
