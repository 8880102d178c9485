package commands

import (
	"context"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/api/iqn"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
	"google.golang.org/protobuf/proto"
)

// kindIQN names iSCSI initiators in help; they are not listed entities.
const kindIQN Kind = "iqn"

// iqnForm is the expected spelling of an iSCSI name, for errors.
const iqnForm = "iqn.YYYY-MM.reversed.domain[:id] or eui.<16 hex digits>"

var (
	vgManyArg = Arg{Name: "vg", Kind: KindVG, Many: true, Help: "volume group name or UUID"}
	vgOneArg  = Arg{Name: "vg", Kind: KindVG, Help: "volume group name or UUID"}
	vgLBKey   = Key{Name: "load_balance_vm_attachments", Type: TypeBool,
		Help: "spread the sessions of attached VMs across CVMs instead of using the CVM on each VM's host"}
	vgDescKey     = Key{Name: "description", Type: TypeString, Help: "free text", Example: `"db logs"`}
	initiatorArg  = Arg{Name: "initiator", Kind: kindIQN, Optional: true, Help: "initiator IQN (or initiator_name=)"}
	initiatorKey  = Key{Name: "initiator_name", Type: TypeString, Help: "initiator IQN (or the second argument)", Example: "iqn.1994-05.com.redhat:client1"}
	initiatorDesc = "The initiator is an iSCSI name: " + iqnForm + ", e.g. iqn.1994-05.com.redhat:client1. It may be given as the second argument or as initiator_name=."
)

func vgCommands() []*Command {
	return []*Command{
		{
			Name:     "vg.list",
			Summary:  "List volume groups",
			Args:     []Arg{{Name: "pattern", Kind: KindVG, Many: true, Optional: true, Filter: true, Help: "only the volume groups these name (volume group name or UUID; globs, ranges and comma lists)"}},
			Output:   OutputTable,
			Examples: []string{"vg.list", "-o json vg.list"},
			Run:      runVGList,
		},
		{
			Name:     "vg.get",
			Summary:  "Show volume groups in detail, with their iSCSI sessions",
			Args:     []Arg{vgManyArg},
			Output:   OutputBlock,
			Examples: []string{"vg.get data", "-o yaml vg.get 'db*'"},
			Run:      runVGGet,
		},
		{
			Name:        "vg.create",
			Summary:     "Create volume groups",
			Description: "Creates one volume group per name (a range like data[1..3] creates three); add vDisks with vg.disk_create. Its iSCSI target is iqn.2010-06.dev.acli:<prefix>-<id>, the prefix being the name unless iscsi_target_prefix= says otherwise.",
			Args:        []Arg{{Name: "vg", Kind: KindVG, Many: true, Generate: true, Help: "names of the new volume groups"}},
			Keys: []Key{
				withDefault(vgLBKey, "false"),
				{Name: "iscsi_target_prefix", Type: TypeString, Help: "prefix of the iSCSI target name (a-z, 0-9, '-', '.')", Example: "oradata"},
				vgDescKey,
			},
			Output:   OutputTask,
			Examples: []string{"vg.create data", "vg.create oradata iscsi_target_prefix=ora load_balance_vm_attachments=true"},
			Run:      runVGCreate,
		},
		{
			Name:    "vg.update",
			Summary: "Change volume group settings",
			Args:    []Arg{vgManyArg},
			Keys: []Key{
				{Name: "name", Type: TypeString, Help: "new name (one volume group only; the iSCSI target stays)"},
				vgLBKey, vgDescKey,
			},
			Output:   OutputTask,
			Validate: validateUpdate,
			Examples: []string{"vg.update data description=\"db logs\"", "vg.update data name=data2"},
			Run:      runVGUpdate,
		},
		{
			Name:        "vg.delete",
			Summary:     "Delete detached volume groups",
			Description: "Refused while the volume group is attached: the error names each attachment and the vg.detach_external or vg.detach_from_vm command that ends it.",
			Args:        []Arg{vgManyArg},
			Destructive: "Delete",
			Output:      OutputTask,
			Examples:    []string{"vg.delete data", "-y vg.delete 'scratch*'"},
			Run: func(ctx context.Context, r *Req) error {
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.VolumeGroup.DeleteVolumeGroup(ctx, &acliv1.DeleteVolumeGroupRequest{VolumeGroup: t.ID})
				})
			},
		},
		{
			Name:        "vg.clone",
			Summary:     "Create volume groups with copies of another's vDisks",
			Description: "Creates one volume group per name with a copy of each vDisk of the source; attachments are not copied.",
			Args:        []Arg{{Name: "name", Kind: KindVG, Many: true, Generate: true, Help: "names of the new volume groups"}},
			Keys: []Key{
				{Name: "clone_from_vg", Type: TypeRef, Ref: KindVG, Required: true, Help: "volume group to clone", Example: "data"},
			},
			Output:   OutputTask,
			Examples: []string{"vg.clone data-copy clone_from_vg=data", "vg.clone data[1..3] clone_from_vg=data"},
			Run: func(ctx context.Context, r *Req) error {
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.VolumeGroup.CloneVolumeGroup(ctx, &acliv1.CloneVolumeGroupRequest{Name: t.ID, CloneFromVg: r.String("clone_from_vg")})
				})
			},
		},
		{
			Name:        "vg.disk_create",
			Summary:     "Add a vDisk to volume groups",
			Description: "Attached initiators and VMs get a session for the new vDisk at once.",
			Args:        []Arg{vgManyArg},
			Keys: []Key{
				{Name: "create_size", Type: TypeSize, Min: 0, Max: 1 << 50, Help: "size of the new vDisk (required unless clone_from_vmdisk=; larger than the source grows the copy)", Example: "100G"},
				{Name: "clone_from_vmdisk", Type: TypeString, Help: "vDisk UUID (of a VM, snapshot or volume group) whose data the vDisk starts with", Example: "0d5c3f5e-2b7a-4c55-9a43-3f0c2a9a8b11"},
				{Name: "container", Type: TypeString, Help: "storage container (default default-container)", Example: "default-container"},
			},
			Output: OutputTask,
			Validate: func(inv *Invocation) error {
				if !inv.Set["create_size"] && inv.Values["clone_from_vmdisk"].Raw == "" {
					return usageErrorf("vg.disk_create: missing required key create_size=<size>, e.g. create_size=100G (or clone_from_vmdisk=<vdisk-uuid>)")
				}
				if inv.Set["create_size"] && inv.Values["create_size"].Int <= 0 {
					return usageErrorf("vg.disk_create: create_size=%s: a vDisk needs a positive size, e.g. create_size=100G", inv.Values["create_size"].Raw)
				}
				return nil
			},
			Examples: []string{"vg.disk_create data create_size=100G", "vg.disk_create data create_size=1T container=ssd", "vg.disk_create data clone_from_vmdisk=0d5c3f5e-2b7a-4c55-9a43-3f0c2a9a8b11"},
			Run:      runVGDiskCreate,
		},
		{
			Name:     "vg.disk_list",
			Summary:  "List a volume group's vDisks",
			Args:     []Arg{vgOneArg},
			Output:   OutputTable,
			Examples: []string{"vg.disk_list data"},
			Run:      runVGDiskList,
		},
		{
			Name:        "vg.disk_delete",
			Summary:     "Remove a vDisk from a volume group",
			Description: "Its sessions end; the other vDisks keep their indexes.",
			Args:        []Arg{vgOneArg},
			Keys: []Key{
				{Name: "index", Type: TypeInt, Required: true, Min: 0, Max: 1 << 20, Help: "index of the vDisk (see vg.disk_list)", Example: "1"},
			},
			Destructive: "Delete a vDisk of",
			Output:      OutputTask,
			Examples:    []string{"vg.disk_delete data index=1"},
			Run:         runVGDiskDelete,
		},
		{
			Name:        "vg.attach_external",
			Summary:     "Attach an external iSCSI initiator to a volume group",
			Description: "The initiator logs in through the cluster's iSCSI data services IP (port 3205) and gets one session per vDisk, spread across the CVMs. " + initiatorDesc,
			Args:        []Arg{vgOneArg, initiatorArg},
			Keys:        []Key{initiatorKey},
			Output:      OutputTask,
			Validate:    validateInitiator,
			Examples:    []string{"vg.attach_external data iqn.1994-05.com.redhat:client1", "vg.attach_external data initiator_name=eui.02004567A425678D"},
			Run:         runVGAttachExternal(true),
		},
		{
			Name:        "vg.detach_external",
			Summary:     "Detach an external iSCSI initiator from a volume group",
			Description: "Its sessions end. " + initiatorDesc,
			Args:        []Arg{vgOneArg, initiatorArg},
			Keys:        []Key{initiatorKey},
			Output:      OutputTask,
			Validate:    validateInitiator,
			Examples:    []string{"vg.detach_external data iqn.1994-05.com.redhat:client1"},
			Run:         runVGAttachExternal(false),
		},
		{
			Name:        "vg.attach_to_vm",
			Summary:     "Attach a volume group to VMs",
			Description: "A running VM gets one session per vDisk on the host-local redirector path (port 3261), served by the CVM on its host (or spread when load_balance_vm_attachments is set); a stopped VM gets them when it powers on.",
			Args:        []Arg{vgOneArg, {Name: "vm", Kind: KindVM, Many: true, Help: "VM name or UUID"}},
			Output:      OutputTask,
			Examples:    []string{"vg.attach_to_vm data db01", "vg.attach_to_vm shared 'rac*'"},
			Run:         runVGAttachToVM(true),
		},
		{
			Name:        "vg.detach_from_vm",
			Summary:     "Detach a volume group from VMs",
			Description: "The VMs' sessions to the volume group end.",
			Args:        []Arg{vgOneArg, {Name: "vm", Kind: KindVM, Many: true, Help: "VM name or UUID"}},
			Output:      OutputTask,
			Examples:    []string{"vg.detach_from_vm data db01"},
			Run:         runVGAttachToVM(false),
		},
		{
			Name:    "vg.list_sessions",
			Summary: "List iSCSI sessions and the CVM serving each",
			Description: "One session per attached (initiator, vDisk). Port 3205 is the data services portal external initiators use, " +
				"3261 the host-local redirector path of VMs. While a CVM is down its sessions are served by another CVM (CVM IP) " +
				"and return to their Preferred CVM when it recovers; State is kSessionDown only when no CVM is up.",
			Args:     []Arg{{Name: "vg", Kind: KindVG, Optional: true, Help: "only this volume group (default: all)"}},
			Output:   OutputTable,
			Examples: []string{"vg.list_sessions", "vg.list_sessions data", "-o json vg.list_sessions data"},
			Run:      runVGListSessions,
		},
	}
}

func runVGList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.VolumeGroup.ListVolumeGroups(ctx, &acliv1.ListVolumeGroupsRequest{})
	if err != nil {
		return err
	}
	vgs := filterRows(r, resp.GetVolumeGroups())
	return r.Print(render.Doc{Data: vgs, Table: vgTable(vgs)})
}

func runVGGet(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	var vmNames map[string]string // loaded once, when a VG has VMs
	var namesErr error
	return getEach(ctx, r, r.Targets(0), func(ctx context.Context, id string) (*acliv1.VolumeGroup, error) {
		g, err := c.VolumeGroup.GetVolumeGroup(ctx, &acliv1.GetVolumeGroupRequest{VolumeGroup: id})
		if err == nil && len(g.GetVmUuids()) > 0 && vmNames == nil && namesErr == nil {
			vmNames, namesErr = listVMNames(ctx, c)
		}
		return g, err
	}, func(g *acliv1.VolumeGroup) *render.Block { return vgBlock(g, vmNames) })
}

// listVMNames maps VM UUIDs to names.
func listVMNames(ctx context.Context, c *client.Client) (map[string]string, error) {
	resp, err := c.Vm.ListVms(ctx, &acliv1.ListVmsRequest{})
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(resp.GetVms()))
	for _, v := range resp.GetVms() {
		out[v.GetUuid()] = v.GetName()
	}
	return out, nil
}

func runVGCreate(ctx context.Context, r *Req) error {
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		req := &acliv1.CreateVolumeGroupRequest{Name: t.ID, IscsiTargetPrefix: r.String("iscsi_target_prefix"), Description: r.String("description")}
		if r.Has("load_balance_vm_attachments") {
			req.LoadBalanceVmAttachments = proto.Bool(r.Bool("load_balance_vm_attachments"))
		}
		return c.VolumeGroup.CreateVolumeGroup(ctx, req)
	})
}

func runVGUpdate(ctx context.Context, r *Req) error {
	targets := r.Targets(0)
	if r.Has("name") && len(targets) > 1 {
		return usageErrorf("vg.update: name= renames one volume group, but %d were given", len(targets))
	}
	return r.EachTask(ctx, targets, func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		req := &acliv1.UpdateVolumeGroupRequest{VolumeGroup: t.ID}
		if r.Has("name") {
			req.Name = proto.String(r.String("name"))
		}
		if r.Has("load_balance_vm_attachments") {
			req.LoadBalanceVmAttachments = proto.Bool(r.Bool("load_balance_vm_attachments"))
		}
		if r.Has("description") {
			req.Description = proto.String(r.String("description"))
		}
		return c.VolumeGroup.UpdateVolumeGroup(ctx, req)
	})
}

func runVGDiskCreate(ctx context.Context, r *Req) error {
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		return c.VolumeGroup.CreateVgDisk(ctx, &acliv1.CreateVgDiskRequest{VolumeGroup: t.ID, SizeBytes: r.Int("create_size"),
			Container: r.String("container"), CloneFromVmdisk: r.String("clone_from_vmdisk")})
	})
}

func runVGDiskList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	g, err := c.VolumeGroup.GetVolumeGroup(ctx, &acliv1.GetVolumeGroupRequest{VolumeGroup: r.Arg(0)})
	if err != nil {
		return err
	}
	return r.Print(render.Doc{Data: g.GetDisks(), Table: vgDiskTable(g)})
}

func runVGDiskDelete(ctx context.Context, r *Req) error {
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		return c.VolumeGroup.DeleteVgDisk(ctx, &acliv1.DeleteVgDiskRequest{VolumeGroup: t.ID, Index: r.Int32("index")})
	})
}

// initiatorOf is the initiator of vg.attach_external/detach_external, from
// the second argument or initiator_name=, in canonical form.
func initiatorOf(inv *Invocation) (string, error) {
	var pos string
	if len(inv.Args) > 1 && len(inv.Args[1]) > 0 {
		pos = inv.Args[1][0]
	}
	key := inv.Values["initiator_name"].Raw
	switch {
	case pos == "" && !inv.Set["initiator_name"]:
		return "", usageErrorf("%s: missing initiator: give its IQN as the second argument or initiator_name=, e.g. %s data iqn.1994-05.com.redhat:client1", inv.Cmd.Name, inv.Cmd.Name)
	case pos != "" && inv.Set["initiator_name"] && !strings.EqualFold(pos, key):
		return "", usageErrorf("%s: two initiators given (%s and initiator_name=%s); give one", inv.Cmd.Name, pos, key)
	}
	name := pos
	if name == "" {
		name = key
	}
	norm, err := iqn.NormalizeName(name)
	if err != nil {
		return "", usageErrorf("%s: bad initiator name: %v; expected %s", inv.Cmd.Name, err, iqnForm)
	}
	return norm, nil
}

func validateInitiator(inv *Invocation) error {
	_, err := initiatorOf(inv)
	return err
}

func runVGAttachExternal(attach bool) RunFunc {
	return func(ctx context.Context, r *Req) error {
		ini, err := initiatorOf(r.Inv)
		if err != nil {
			return err
		}
		return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
			req := &acliv1.AttachExternalRequest{VolumeGroup: t.ID, InitiatorName: ini}
			if attach {
				return c.VolumeGroup.AttachExternal(ctx, req)
			}
			return c.VolumeGroup.DetachExternal(ctx, req)
		})
	}
}

func runVGAttachToVM(attach bool) RunFunc {
	return func(ctx context.Context, r *Req) error {
		vg := r.Arg(0)
		return r.EachTask(ctx, r.Targets(1), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
			req := &acliv1.AttachToVmRequest{VolumeGroup: vg, Vm: t.ID}
			if attach {
				return c.VolumeGroup.AttachToVm(ctx, req)
			}
			return c.VolumeGroup.DetachFromVm(ctx, req)
		})
	}
}

func runVGListSessions(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.VolumeGroup.ListSessions(ctx, &acliv1.ListSessionsRequest{VolumeGroup: r.Arg(0)})
	if err != nil {
		return err
	}
	return r.Print(render.Doc{Data: resp.GetSessions(), Table: sessionTable(resp.GetSessions())})
}
