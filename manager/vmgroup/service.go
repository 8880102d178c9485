package vmgroup

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
	"github.com/acli-dev/acli/manager/vm"
)

// Service is the VM group feature and VMs' host affinity behind
// manager/rpc's adapter. It reads the committed records through DB and
// changes them as tasks.
type Service struct {
	DB    *state.DB
	Tasks tasks.Starter
}

func checkRef(field, ref, what string) error {
	if ref == "" {
		return apierr.BadField(field, "%s is required: give %s", field, what)
	}
	return state.CheckRef(field, ref)
}

// find is the committed group ref names; not found names the nearest.
func find(tx *state.Tx, ref string) (*acliv1.VmGroup, error) {
	if err := checkRef("group", ref, "a VM group name or UUID"); err != nil {
		return nil, err
	}
	if g := tx.FindVmGroup(ref); g != nil {
		return g, nil
	}
	return nil, apierr.NotFound("vm_group", ref, tx.VmGroupNames())
}

func (s *Service) ListVmGroups(ctx context.Context, _ *acliv1.ListVmGroupsRequest) (*acliv1.ListVmGroupsResponse, error) {
	resp := &acliv1.ListVmGroupsResponse{}
	s.DB.View(func(tx *state.Tx) {
		for _, g := range tx.VmGroups() {
			resp.Groups = append(resp.Groups, Out(g, exists(tx)))
		}
	})
	slices.SortFunc(resp.Groups, func(a, b *acliv1.VmGroup) int { return strings.Compare(a.Name, b.Name) })
	return resp, nil
}

// CreateVmGroup gets a checked name (manager/rpc), claimed by the task
// until it ends.
func (s *Service) CreateVmGroup(ctx context.Context, req *acliv1.CreateVmGroupRequest) (*acliv1.Task, error) {
	g := &acliv1.VmGroup{Uuid: uuid.NewString(), Name: req.Name}
	var err error
	s.DB.View(func(tx *state.Tx) {
		if other := tx.FindVmGroup(g.Name); other != nil && other.Name == g.Name {
			err = apierr.AlreadyExists("vm_group", g.Name, "vm group names are unique (uuid "+other.Uuid+")")
		}
	})
	if err != nil {
		return nil, err
	}
	t, err := s.Tasks.Begin(ctx, "vm_group", acliv1.TaskOperation_kVmGroupCreate, []*acliv1.EntityRef{Ref(g)}, g.Uuid, "vmgroup-name:"+g.Name)
	if err != nil {
		return nil, err
	}
	var taken *acliv1.VmGroup
	s.DB.View(func(tx *state.Tx) { taken = tx.FindVmGroup(g.Name) })
	if taken != nil && taken.Name == g.Name {
		t.Drop()
		return nil, apierr.AlreadyExists("vm_group", g.Name, "vm group names are unique (uuid "+taken.Uuid+")")
	}
	return t.Commit(ctx, []state.Write{{Key: state.VmGroupKey(g.Uuid), Msg: g, Rev: 0}}, fmt.Sprintf("vm group %s created", g.Name))
}

// edit resolves a group, begins op holding it, lets change build the next
// record from the committed one (read once the task holds the group; nil
// deletes it) and commits that.
func (s *Service) edit(ctx context.Context, ref string, op acliv1.TaskOperation, change func(tx *state.Tx, cur *acliv1.VmGroup) (*acliv1.VmGroup, string, error)) (*acliv1.Task, error) {
	var cur *acliv1.VmGroup
	var err error
	s.DB.View(func(tx *state.Tx) { cur, err = find(tx, ref) })
	if err != nil {
		return nil, err
	}
	t, err := s.Tasks.Begin(ctx, "vm_group", op, []*acliv1.EntityRef{Ref(cur)}, cur.Uuid)
	if err != nil {
		return nil, err
	}
	var next *acliv1.VmGroup
	var msg string
	var rev int64
	s.DB.View(func(tx *state.Tx) {
		if cur = tx.VmGroup(cur.Uuid); cur == nil {
			err = apierr.NotFound("vm_group", ref, tx.VmGroupNames())
			return
		}
		rev = tx.Rev(state.VmGroupKey(cur.Uuid))
		next, msg, err = change(tx, cur)
	})
	if err != nil {
		t.Drop()
		return nil, err
	}
	w := state.Write{Key: state.VmGroupKey(cur.Uuid), Rev: rev}
	if next != nil {
		w.Msg = next
	}
	return t.Commit(ctx, []state.Write{w}, msg)
}

// members resolves the VMs an edit names.
func (s *Service) members(refs []string) ([]Member, error) {
	out := make([]Member, 0, len(refs))
	var err error
	s.DB.View(func(tx *state.Tx) {
		for _, ref := range refs {
			var v *acliv1.Vm
			if v, err = vm.Resolve(tx, "vm", ref); err != nil {
				return
			}
			out = append(out, Member{UUID: v.Uuid, Name: v.Name})
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Service) UpdateVmGroup(ctx context.Context, req *acliv1.UpdateVmGroupRequest) (*acliv1.Task, error) {
	add, err := s.members(req.AddVms)
	if err != nil {
		return nil, err
	}
	remove, err := s.members(req.RemoveVms)
	if err != nil {
		return nil, err
	}
	return s.edit(ctx, req.Group, acliv1.TaskOperation_kVmGroupUpdate, func(tx *state.Tx, cur *acliv1.VmGroup) (*acliv1.VmGroup, string, error) {
		return Edit(Out(cur, exists(tx)), add, remove, req.AntiAffinity)
	})
}

func (s *Service) DeleteVmGroup(ctx context.Context, req *acliv1.DeleteVmGroupRequest) (*acliv1.Task, error) {
	return s.edit(ctx, req.Group, acliv1.TaskOperation_kVmGroupDelete, func(_ *state.Tx, cur *acliv1.VmGroup) (*acliv1.VmGroup, string, error) {
		return nil, fmt.Sprintf("vm group %s deleted", cur.Name), nil
	})
}

func hostLabel(h *acliv1.Host) string { return fmt.Sprintf("%s (%s)", h.Name, h.HypervisorIp) }

// SetAffinity sets or (with no hosts) clears a VM's host affinity. A
// running VM must already be on one of the hosts.
func (s *Service) SetAffinity(ctx context.Context, req *acliv1.SetAffinityRequest) (*acliv1.Task, error) {
	return vm.Edit(ctx, s.Tasks, s.DB, req.Vm, acliv1.TaskOperation_kVmSetAffinity, func(cur *acliv1.Vm) (next *acliv1.Vm, msg string, err error) {
		s.DB.View(func(tx *state.Tx) { next, msg, err = affinity(tx, cur, req.Hosts) })
		return next, msg, err
	})
}

// affinity is cur with its host affinity set to the hosts refs name, in
// host list order so the record does not depend on how they were typed.
func affinity(tx *state.Tx, cur *acliv1.Vm, refs []string) (*acliv1.Vm, string, error) {
	want := map[string]bool{}
	for _, ref := range refs {
		for _, part := range strings.Split(ref, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			h, err := tx.FindHost("host_list", part)
			if err != nil {
				return nil, "", err
			}
			want[h.Uuid] = true
		}
	}
	v := proto.Clone(cur).(*acliv1.Vm)
	v.HostAffinity = nil
	var hosts []*acliv1.Host
	for _, h := range tx.Hosts() {
		if want[h.Uuid] {
			hosts = append(hosts, h)
			v.HostAffinity = append(v.HostAffinity, h.Uuid)
		}
	}
	if len(hosts) == 0 {
		return v, fmt.Sprintf("vm %s host affinity cleared", cur.Name), nil
	}
	if state.Placed(cur) && !slices.Contains(v.HostAffinity, cur.HostUuid) {
		return nil, "", apierr.Precondition("AFFINITY", "vm:"+cur.Name,
			"vm %s runs on %s, outside the new host affinity; migrate it first (vm.migrate %s host=%s)",
			cur.Name, hostLabel(tx.Host(cur.HostUuid)), cur.Name, hosts[0].Name)
	}
	labels := make([]string, len(hosts))
	for i, h := range hosts {
		labels[i] = hostLabel(h)
	}
	return v, fmt.Sprintf("vm %s host affinity set to %s", cur.Name, strings.Join(labels, ", ")), nil
}
