package commands

import (
	"context"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
	"google.golang.org/protobuf/proto"
)

// VM groups: named sets of VMs with an anti-affinity rule the scheduler
// honours when it can (a should-rule: members go to different hosts).

var (
	groupManyArg = Arg{Name: "group", Kind: KindVMGroup, Many: true, Help: "VM group name or UUID"}
	groupOneArg  = Arg{Name: "group", Kind: KindVMGroup, Help: "VM group name or UUID"}
	vmListKey    = Key{Name: "vm_list", Type: TypeList, Ref: KindVM, Required: true, Help: "VMs (names, UUIDs, globs)", Example: "web01,web02"}
)

func vmGroupCommands() []*Command {
	update := func(name, summary string, keys []Key, examples []string, req func(r *Req, group string, vms []string) *acliv1.UpdateVmGroupRequest) *Command {
		arg := groupManyArg
		if len(keys) > 0 {
			arg = groupOneArg
		}
		return &Command{
			Name: name, Summary: summary, Args: []Arg{arg}, Keys: keys, Output: OutputTask, Examples: examples,
			Run: func(ctx context.Context, r *Req) error {
				var vms []string
				if len(keys) > 0 {
					ts, err := r.expandList(ctx, "vm_list", KindVM)
					if err != nil {
						return err
					}
					for _, t := range ts {
						vms = append(vms, t.ID)
					}
				}
				r.Hooks = TaskHooks{Note: resultNote}
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Vm.UpdateVmGroup(ctx, req(r, t.ID, vms))
				})
			},
		}
	}
	return []*Command{
		{
			Name:     "vm_group.list",
			Summary:  "List VM groups",
			Args:     []Arg{{Name: "pattern", Kind: KindVMGroup, Many: true, Optional: true, Filter: true, Help: "only the VM groups these name (VM group name or UUID; globs, ranges and comma lists)"}},
			Output:   OutputTable,
			Examples: []string{"vm_group.list", "-o json vm_group.list"},
			Run:      runVMGroupList,
		},
		{
			Name:     "vm_group.get",
			Summary:  "Show VM groups in detail",
			Args:     []Arg{groupManyArg},
			Output:   OutputBlock,
			Examples: []string{"vm_group.get web-tier"},
			Run:      runVMGroupGet,
		},
		{
			Name:     "vm_group.list_vms",
			Summary:  "List the VMs of a VM group",
			Args:     []Arg{groupOneArg},
			Output:   OutputTable,
			Examples: []string{"vm_group.list_vms web-tier"},
			Run:      runVMGroupListVMs,
		},
		{
			Name:     "vm_group.create",
			Summary:  "Create VM groups (empty, without anti-affinity)",
			Args:     []Arg{{Name: "name", Kind: KindVMGroup, Many: true, Generate: true, Help: "names of the new groups"}},
			Output:   OutputTask,
			Examples: []string{"vm_group.create web-tier", "vm_group.create rack[1..4]"},
			Run: func(ctx context.Context, r *Req) error {
				r.Hooks = TaskHooks{Note: resultNote}
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Vm.CreateVmGroup(ctx, &acliv1.CreateVmGroupRequest{Name: t.ID})
				})
			},
		},
		{
			Name:        "vm_group.delete",
			Summary:     "Delete VM groups (their VMs stay)",
			Args:        []Arg{groupManyArg},
			Destructive: "Delete",
			Output:      OutputTask,
			Examples:    []string{"vm_group.delete web-tier", "-y vm_group.delete rack*"},
			Run: func(ctx context.Context, r *Req) error {
				r.Hooks = TaskHooks{Note: resultNote}
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Vm.DeleteVmGroup(ctx, &acliv1.DeleteVmGroupRequest{Group: t.ID})
				})
			},
		},
		update("vm_group.add_vms", "Add VMs to a VM group", []Key{vmListKey},
			[]string{"vm_group.add_vms web-tier vm_list=web01,web02", "vm_group.add_vms web-tier vm_list=web*"},
			func(_ *Req, group string, vms []string) *acliv1.UpdateVmGroupRequest {
				return &acliv1.UpdateVmGroupRequest{Group: group, AddVms: vms}
			}),
		update("vm_group.remove_vms", "Remove VMs from a VM group", []Key{vmListKey},
			[]string{"vm_group.remove_vms web-tier vm_list=web02"},
			func(_ *Req, group string, vms []string) *acliv1.UpdateVmGroupRequest {
				return &acliv1.UpdateVmGroupRequest{Group: group, RemoveVms: vms}
			}),
		update("vm_group.antiaffinity_set", "Keep the VMs of groups on different hosts when possible", nil,
			[]string{"vm_group.antiaffinity_set web-tier"},
			func(_ *Req, group string, _ []string) *acliv1.UpdateVmGroupRequest {
				return &acliv1.UpdateVmGroupRequest{Group: group, AntiAffinity: proto.Bool(true)}
			}),
		update("vm_group.antiaffinity_unset", "Drop the anti-affinity rule of groups", nil,
			[]string{"vm_group.antiaffinity_unset web-tier"},
			func(_ *Req, group string, _ []string) *acliv1.UpdateVmGroupRequest {
				return &acliv1.UpdateVmGroupRequest{Group: group, AntiAffinity: proto.Bool(false)}
			}),
	}
}

// expandList resolves a list key of entity names the way positionals are:
// globs and ranges against the live entities, plain names as given.
func (r *Req) expandList(ctx context.Context, key string, kind Kind) ([]Target, error) {
	return Expand(r.List(key), kind, func() ([]Entity, error) {
		c, err := r.Client(ctx)
		if err != nil {
			return nil, err
		}
		es, err := ListEntities(ctx, c, kind)
		return es, client.Wrap(err)
	})
}

// vmsByUUID lists every VM once, to name group members.
func vmsByUUID(ctx context.Context, c *client.Client) (map[string]*acliv1.Vm, error) {
	resp, err := c.Vm.ListVms(ctx, &acliv1.ListVmsRequest{})
	if err != nil {
		return nil, err
	}
	out := make(map[string]*acliv1.Vm, len(resp.GetVms()))
	for _, v := range resp.GetVms() {
		out[v.GetUuid()] = v
	}
	return out, nil
}

func memberNames(g *acliv1.VmGroup, vms map[string]*acliv1.Vm) []string {
	names := make([]string, 0, len(g.GetVmUuids()))
	for _, id := range g.GetVmUuids() {
		if v := vms[id]; v != nil {
			names = append(names, v.GetName())
		} else {
			names = append(names, id)
		}
	}
	return names
}

func runVMGroupList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Vm.ListVmGroups(ctx, &acliv1.ListVmGroupsRequest{})
	if err != nil {
		return err
	}
	groups := filterRows(r, resp.GetGroups())
	vms := map[string]*acliv1.Vm{}
	if len(groups) > 0 {
		if vms, err = vmsByUUID(ctx, c); err != nil {
			return err
		}
	}
	t := &render.TableData{Headers: []string{"VM group name", "VM group UUID", "Anti-affinity", "VMs", "Members"}}
	for _, g := range groups {
		t.Rows = append(t.Rows, []string{g.GetName(), g.GetUuid(), yesNo(g.GetAntiAffinity()), itoa(len(g.GetVmUuids())), strings.Join(memberNames(g, vms), ",")})
	}
	return r.Print(render.Doc{Data: groups, Table: t})
}

// findGroup resolves a group by name or UUID from the list (the API has no
// GetVmGroup); a miss is a not-found error with the nearest name.
func findGroup(ctx context.Context, c *client.Client, ref string) (*acliv1.VmGroup, error) {
	resp, err := c.Vm.ListVmGroups(ctx, &acliv1.ListVmGroupsRequest{})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, g := range resp.GetGroups() {
		if g.GetName() == ref || strings.EqualFold(g.GetUuid(), ref) {
			return g, nil
		}
		names = append(names, g.GetName())
	}
	hint := ""
	if best := nearest(ref, names); len(best) > 0 {
		hint = "; did you mean " + quoteJoin(best) + "?"
	}
	ce := client.Errorf(client.ExitNotFound, "VM group %q not found%s", ref, hint)
	ce.Missing = []string{ref} // acli prints "Unknown name: <ref>"
	return nil, ce
}

func runVMGroupGet(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	vms, err := vmsByUUID(ctx, c)
	if err != nil {
		return err
	}
	return getEach(ctx, r, r.Targets(0), func(ctx context.Context, id string) (*acliv1.VmGroup, error) {
		return findGroup(ctx, c, id)
	}, func(g *acliv1.VmGroup) *render.Block {
		b := &render.Block{}
		b.Add("Name", g.GetName()).
			Add("UUID", g.GetUuid()).
			Add("Anti-affinity", yesNo(g.GetAntiAffinity()))
		members := b.Section("VMs")
		for _, id := range g.GetVmUuids() {
			name, where := id, ""
			if v := vms[id]; v != nil {
				name, where = v.GetName(), v.GetHostName()
				if where == "" {
					where = "(no host)"
				}
			}
			members.Add(name, where)
		}
		return b
	})
}

func runVMGroupListVMs(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	g, err := findGroup(ctx, c, r.Arg(0))
	if err != nil {
		return err
	}
	vms, err := vmsByUUID(ctx, c)
	if err != nil {
		return err
	}
	members := make([]*acliv1.Vm, 0, len(g.GetVmUuids()))
	for _, id := range g.GetVmUuids() {
		if v := vms[id]; v != nil {
			members = append(members, v)
		}
	}
	return r.Print(render.Doc{Data: members, Table: vmTable(members)})
}
