package commands

import (
	"context"
	"strconv"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
	"google.golang.org/protobuf/proto"
)

var powerStates = []EnumValue{
	{Name: "kOn", Aliases: []string{"on"}, Value: int32(acliv1.PowerState_kOn)},
	{Name: "kOff", Aliases: []string{"off"}, Value: int32(acliv1.PowerState_kOff)},
	{Name: "kPaused", Aliases: []string{"paused"}, Value: int32(acliv1.PowerState_kPaused)},
}

var diskBuses = []EnumValue{{Name: "scsi"}, {Name: "ide"}, {Name: "sata"}, {Name: "pci"}}

var nicModels = []EnumValue{{Name: "virtio"}, {Name: "e1000"}, {Name: "rtl8139"}}

// Keys shared by vm.create and vm.update.
var (
	vmMemoryKey  = Key{Name: "memory", Type: TypeSize, Min: 1 << 20, Max: 16 << 40, Help: "memory of the VM", Example: "4G"}
	vmVcpusKey   = Key{Name: "num_vcpus", Type: TypeInt, Min: 1, Max: 512, Help: "number of vCPUs"}
	vmCoresKey   = Key{Name: "num_cores_per_vcpu", Type: TypeInt, Min: 1, Max: 128, Help: "cores per vCPU"}
	vmHAKey      = Key{Name: "ha_priority", Type: TypeInt, Min: -1000000, Max: 1000000, Help: "HA restart priority: higher restarts first, negative never"}
	vmAgentKey   = Key{Name: "agent_vm", Type: TypeBool, Help: "agent VM: tied to its host, shut down for maintenance, never migrated"}
	vmDescKey    = Key{Name: "description", Type: TypeString, Help: "free text", Example: `"web tier"`}
	vmPassKey    = Key{Name: "passthrough", Type: TypeBool, Help: "has a passthrough device (cannot live-migrate)"}
	vmManyArg    = Arg{Name: "vm", Kind: KindVM, Many: true, Help: "VM name or UUID"}
	vmOneArg     = Arg{Name: "vm", Kind: KindVM, Help: "VM name or UUID"}
	powerCommand = func(name, summary string, tr acliv1.PowerTransition, extra ...Key) *Command {
		return &Command{
			Name: name, Summary: summary, Args: []Arg{vmManyArg}, Keys: extra, Output: OutputTask,
			Examples: []string{name + " web01", name + " web*"},
			Run: func(ctx context.Context, r *Req) error {
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Vm.SetPowerState(ctx, &acliv1.SetPowerStateRequest{Vm: t.ID, Transition: tr, Host: r.String("host")})
				})
			},
		}
	}
)

func withDefault(k Key, def string) Key { k.Default = def; return k }

func vmCommands() []*Command {
	return append([]*Command{
		{
			Name:    "vm.list",
			Summary: "List VMs",
			Args:    []Arg{{Name: "pattern", Kind: KindVM, Many: true, Optional: true, Filter: true, Help: "only the VMs these name (VM name or UUID; globs, ranges and comma lists)"}},
			Keys: []Key{
				{Name: "host", Type: TypeRef, Ref: KindHost, Help: "only VMs on this host (name, UUID or IP)", Example: "127.20.0.21"},
				{Name: "power_state", Type: TypeEnum, Enum: powerStates, Help: "only VMs in this power state"},
			},
			Output:   OutputTable,
			Watch:    true,
			Examples: []string{"vm.list", "vm.list 'web*' power_state=on", "vm.list --watch", "-o json vm.list host=127.20.0.21"},
			Run:      runVMList,
		},
		{
			Name:     "vm.get",
			Summary:  "Show VMs in detail",
			Args:     []Arg{vmManyArg},
			Keys:     []Key{{Name: "include_vmdisk_paths", Type: TypeBool, Help: "show each vDisk's path in its container (for clone_from_adsf_file=)"}},
			Output:   OutputBlock,
			Examples: []string{"vm.get web01", "-o yaml vm.get web*", "vm.get web01 include_vmdisk_paths=1"},
			Run:      runVMGet,
		},
		{
			Name:        "vm.create",
			Summary:     "Create VMs (powered off)",
			Description: "Creates one VM per name; a range like web[01..20] creates twenty.",
			Args:        []Arg{{Name: "name", Kind: KindVM, Many: true, Generate: true, Help: "names of the new VMs"}},
			Keys: append([]Key{
				withDefault(vmMemoryKey, "2G"), // acli's defaults: 2 GiB, 1 vCPU
				withDefault(vmVcpusKey, "1"),
				withDefault(vmCoresKey, "1"),
				withDefault(vmHAKey, "0"),
				withDefault(vmAgentKey, "false"),
				vmDescKey,
				withDefault(vmPassKey, "false"),
				{Name: "uuid", Type: TypeString, Help: "explicit UUID (one VM only)"},
				vmAnnotationKey,
			}, vmSettingKeys...),
			Output:   OutputTask,
			Validate: validateAnnotation,
			Examples: []string{"vm.create web01 memory=4G num_vcpus=2", "vm.create web[01..03] memory=2G", "vm.create sap01 memory=8G num_vcpus=4 uefi_boot=true num_vnuma_nodes=2"},
			Run:      runVMCreate,
		},
		{
			Name:    "vm.update",
			Summary: "Change VM settings",
			Args:    []Arg{vmManyArg},
			Keys: append([]Key{
				{Name: "name", Type: TypeString, Help: "new name (one VM only)"},
				vmMemoryKey, vmVcpusKey, vmCoresKey, vmHAKey, vmAgentKey, vmDescKey, vmPassKey, vmAnnotationKey,
			}, vmSettingKeys...),
			Output: OutputTask,
			Validate: func(inv *Invocation) error {
				if err := validateAnnotation(inv); err != nil {
					return err
				}
				return validateUpdate(inv)
			},
			Examples: []string{"vm.update web01 memory=8G", "vm.update web* ha_priority=100", "vm.update web01 memory_overcommit=true"},
			Run:      runVMUpdate,
		},
		{
			Name:        "vm.delete",
			Summary:     "Delete powered-off VMs",
			Args:        []Arg{vmManyArg},
			Destructive: "Delete",
			Output:      OutputTask,
			Examples:    []string{"vm.delete web01", "-y vm.delete test*"},
			Run: func(ctx context.Context, r *Req) error {
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Vm.DeleteVm(ctx, &acliv1.DeleteVmRequest{Vm: t.ID})
				})
			},
		},
		powerCommand("vm.on", "Power VMs on", acliv1.PowerTransition_kPowerOn,
			Key{Name: "host", Type: TypeRef, Ref: KindHost, Help: "host to power on on (default: the scheduler chooses)", Example: "127.20.0.21"}),
		powerCommand("vm.off", "Power VMs off (hard)", acliv1.PowerTransition_kPowerOff),
		powerCommand("vm.shutdown", "Shut VMs down through ACPI", acliv1.PowerTransition_kShutdown),
		powerCommand("vm.reboot", "Reboot VMs through ACPI", acliv1.PowerTransition_kReboot),
		powerCommand("vm.reset", "Reset VMs (hard)", acliv1.PowerTransition_kReset),
		vmPowerCycle(),
		{
			Name:    "vm.disk_create",
			Summary: "Add a disk or CD-ROM to VMs",
			Args:    []Arg{vmManyArg},
			Keys: []Key{
				{Name: "create_size", Type: TypeSize, Min: 0, Max: 1 << 50, Help: "size of the new disk (required unless cdrom=true or clone_from_image=)", Example: "20G"},
				{Name: "clone_from_image", Type: TypeRef, Ref: KindImage, Help: "image whose data the disk starts with (create_size, when larger, grows it)", Example: "debian12"},
				{Name: "clone_from_vmdisk", Type: TypeString, Help: "vDisk UUID (of a VM, snapshot or volume group) whose data the disk starts with", Example: "0d5c3f5e-2b7a-4c55-9a43-3f0c2a9a8b11"},
				{Name: "clone_from_adsf_file", Type: TypeString, Help: "file in a container, /<container>/<path>, whose data the disk starts with", Example: "/default-container/vdisks/0d5c3f5e-2b7a-4c55-9a43-3f0c2a9a8b11"},
				{Name: "empty", Type: TypeBool, Help: "with cdrom=true: a CD-ROM with no medium (the default)"},
				{Name: "bus", Type: TypeEnum, Enum: diskBuses, Default: "scsi", Help: "device bus"},
				{Name: "container", Type: TypeString, Help: "storage container (default default-container)", Example: "default-container"},
				{Name: "cdrom", Type: TypeBool, Default: "false", Help: "add an empty CD-ROM"},
				{Name: "index", Type: TypeInt, Min: 0, Max: 255, Help: "device index (default: next free)"},
			},
			Output: OutputTask,
			Validate: func(inv *Invocation) error {
				n := 0
				for _, k := range []string{"clone_from_image", "clone_from_vmdisk", "clone_from_adsf_file"} {
					if inv.Values[k].Raw != "" {
						n++
					}
				}
				switch {
				case n > 1:
					return usageErrorf("vm.disk_create: give only one of clone_from_image=, clone_from_vmdisk= and clone_from_adsf_file=")
				case inv.Values["empty"].Bool && n > 0:
					return usageErrorf("vm.disk_create: empty=true makes a CD-ROM with no medium; drop it or the clone_from_ key")
				case inv.Values["empty"].Bool && !inv.Values["cdrom"].Bool:
					return usageErrorf("vm.disk_create: empty=true is for a CD-ROM; add cdrom=true")
				case !inv.Values["cdrom"].Bool && inv.Values["create_size"].Int <= 0 && n == 0:
					return usageErrorf("vm.disk_create: missing required key create_size=<size>, e.g. create_size=20G (or clone_from_image=, clone_from_vmdisk=, clone_from_adsf_file=, or cdrom=true)")
				}
				return nil
			},
			Examples: []string{"vm.disk_create web01 create_size=20G", "vm.disk_create web01 clone_from_image=debian12", "vm.disk_create web01 cdrom=true bus=ide"},
			Run:      runVMDiskCreate,
		},
		{
			Name:     "vm.disk_list",
			Summary:  "List a VM's disks",
			Args:     []Arg{vmOneArg},
			Output:   OutputTable,
			Examples: []string{"vm.disk_list web01"},
			Run:      runVMDiskList,
		},
		{
			Name:    "vm.disk_delete",
			Summary: "Remove a disk from a VM",
			Args:    []Arg{vmOneArg},
			Keys: []Key{
				{Name: "disk_addr", Type: TypeString, Required: true, Help: "bus.index of the disk", Example: "scsi.1"},
			},
			Destructive: "Delete a disk of",
			Output:      OutputTask,
			Validate: func(inv *Invocation) error {
				_, _, err := parseDiskAddr(inv.Values["disk_addr"].Raw)
				return err
			},
			Examples: []string{"vm.disk_delete web01 disk_addr=scsi.1"},
			Run:      runVMDiskDelete,
		},
		{
			Name:    "vm.nic_create",
			Summary: "Add a NIC to VMs",
			Args:    []Arg{vmManyArg},
			Keys: []Key{
				{Name: "network", Type: TypeRef, Ref: KindNetwork, Required: true, Help: "network name or UUID", Example: "vlan100"},
				{Name: "mac", Type: TypeString, Help: "MAC address (default generated)", Example: "50:6b:8d:00:00:01"},
				{Name: "ip", Type: TypeString, Help: "requested IP address", Example: "10.1.0.10"},
				{Name: "model", Type: TypeEnum, Enum: nicModels, Default: "virtio", Help: "device model"},
				vlanModeKey, trunkedKey, connectedKey,
			},
			Output:   OutputTask,
			Validate: validateTrunk,
			Examples: []string{"vm.nic_create web01 network=vlan100", "vm.nic_create web01 network=vlan100 vlan_mode=kTrunked trunked_networks=10,20,30"},
			Run:      runVMNicCreate,
		},
		{
			Name:     "vm.nic_list",
			Summary:  "List a VM's NICs",
			Args:     []Arg{vmOneArg},
			Output:   OutputTable,
			Examples: []string{"vm.nic_list web01"},
			Run:      runVMNicList,
		},
		{
			Name:    "vm.nic_delete",
			Summary: "Remove a NIC from a VM",
			Args:    []Arg{vmOneArg, macArg},
			Keys: []Key{
				macKey,
			},
			Destructive: "Delete a NIC of",
			Output:      OutputTask,
			Validate:    validateMAC,
			Examples:    []string{"vm.nic_delete web01 50:6b:8d:00:00:01", "vm.nic_delete web01 mac=50:6b:8d:00:00:01"},
			Run:         runVMNicDelete,
		},
	}, append(append(append(vmMigrateCommands(), vmStorageCommands()...), nicCommands()...), vmDeviceCommands()...)...)
}

func runVMList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	read := func(ctx context.Context) ([]*acliv1.Vm, error) {
		resp, err := c.Vm.ListVms(ctx, &acliv1.ListVmsRequest{Host: r.String("host"), PowerState: acliv1.PowerState(r.Int("power_state"))})
		return resp.GetVms(), err
	}
	if r.Globals.Watch {
		all := func(ctx context.Context) ([]*acliv1.Vm, error) {
			resp, err := c.Vm.ListVms(ctx, &acliv1.ListVmsRequest{})
			return resp.GetVms(), err
		}
		return watchList(ctx, r, c, read, all, vmTable)
	}
	vms, err := read(ctx)
	if err != nil {
		return err
	}
	vms = filterRows(r, vms)
	return r.Print(render.Doc{Data: vms, Table: vmTable(vms)})
}

func runVMGet(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	return getEach(ctx, r, r.Targets(0), func(ctx context.Context, id string) (*acliv1.Vm, error) {
		return c.Vm.GetVm(ctx, &acliv1.GetVmRequest{Vm: id, IncludeVmdiskPaths: r.Bool("include_vmdisk_paths")})
	}, vmBlock)
}

func runVMCreate(ctx context.Context, r *Req) error {
	targets := r.Targets(0)
	if r.Has("uuid") && len(targets) > 1 {
		return usageErrorf("vm.create: uuid= names one VM, but %d names were given", len(targets))
	}
	return r.EachTask(ctx, targets, func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		req := &acliv1.CreateVmRequest{
			Name:            t.ID,
			MemoryBytes:     r.Int("memory"),
			NumVcpus:        r.Int32("num_vcpus"),
			NumCoresPerVcpu: r.Int32("num_cores_per_vcpu"),
			HaPriority:      r.Int32("ha_priority"),
			AgentVm:         r.Bool("agent_vm"),
			Description:     r.String("description"),
			Passthrough:     r.Bool("passthrough"),
			Uuid:            r.String("uuid"),
		}
		settingsCreate(r, req)
		return c.Vm.CreateVm(ctx, req)
	})
}

func runVMUpdate(ctx context.Context, r *Req) error {
	targets := r.Targets(0)
	if r.Has("name") && len(targets) > 1 {
		return usageErrorf("vm.update: name= renames one VM, but %d VMs were given", len(targets))
	}
	req := func(id string) *acliv1.UpdateVmRequest {
		u := &acliv1.UpdateVmRequest{Vm: id}
		if r.Has("name") {
			u.Name = proto.String(r.String("name"))
		}
		if r.Has("num_vcpus") {
			u.NumVcpus = proto.Int32(r.Int32("num_vcpus"))
		}
		if r.Has("num_cores_per_vcpu") {
			u.NumCoresPerVcpu = proto.Int32(r.Int32("num_cores_per_vcpu"))
		}
		if r.Has("memory") {
			u.MemoryBytes = proto.Int64(r.Int("memory"))
		}
		if r.Has("ha_priority") {
			u.HaPriority = proto.Int32(r.Int32("ha_priority"))
		}
		if r.Has("agent_vm") {
			u.AgentVm = proto.Bool(r.Bool("agent_vm"))
		}
		if r.Has("description") {
			u.Description = proto.String(r.String("description"))
		}
		if r.Has("passthrough") {
			u.Passthrough = proto.Bool(r.Bool("passthrough"))
		}
		settingsUpdate(r, u)
		return u
	}
	return r.EachTask(ctx, targets, func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		return c.Vm.UpdateVm(ctx, req(t.ID))
	})
}

// validateUpdate refuses an update that changes nothing, naming every key
// that would change something.
func validateUpdate(inv *Invocation) error {
	var keys []string
	for _, k := range inv.Cmd.Keys {
		if k.Name == "wait" {
			continue
		}
		if inv.Set[k.Name] {
			return nil
		}
		keys = append(keys, k.Name+"=")
	}
	return usageErrorf("%s: nothing to change; give at least one of %s", inv.Cmd.Name, strings.Join(keys, ", "))
}

func runVMDiskCreate(ctx context.Context, r *Req) error {
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		req := &acliv1.CreateDiskRequest{Vm: t.ID, Bus: r.String("bus"), SizeBytes: r.Int("create_size"),
			Container: r.String("container"), Cdrom: r.Bool("cdrom"), CloneFromImage: r.String("clone_from_image"),
			CloneFromVmdisk: r.String("clone_from_vmdisk"), CloneFromAdsfFile: r.String("clone_from_adsf_file")}
		if r.Has("index") {
			req.Index = proto.Int32(r.Int32("index"))
		}
		return c.Vm.CreateDisk(ctx, req)
	})
}

func runVMDiskList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	vm, err := c.Vm.GetVm(ctx, &acliv1.GetVmRequest{Vm: r.Arg(0)})
	if err != nil {
		return err
	}
	return r.Print(render.Doc{Data: vm.GetDisks(), Table: diskTable(vm.GetDisks())})
}

// parseDiskAddr reads "scsi.1".
func parseDiskAddr(s string) (string, int32, error) {
	bus, idx, ok := strings.Cut(s, ".")
	n, err := strconv.ParseInt(idx, 10, 32)
	if !ok || err != nil || n < 0 {
		return "", 0, usageErrorf("disk_addr=%q is not bus.index, e.g. disk_addr=scsi.1", s)
	}
	for _, b := range diskBuses {
		if b.Name == strings.ToLower(bus) {
			return b.Name, int32(n), nil
		}
	}
	return "", 0, usageErrorf("disk_addr=%q: unknown bus %q (valid: scsi, ide, sata, pci)", s, bus)
}

func runVMDiskDelete(ctx context.Context, r *Req) error {
	bus, idx, err := parseDiskAddr(r.String("disk_addr"))
	if err != nil {
		return err
	}
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		return c.Vm.DeleteDisk(ctx, &acliv1.DeleteDiskRequest{Vm: t.ID, Bus: bus, Index: idx})
	})
}

func runVMNicCreate(ctx context.Context, r *Req) error {
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		req := &acliv1.CreateNicRequest{Vm: t.ID, Network: r.String("network"),
			Mac: r.String("mac"), Ip: r.String("ip"), Model: r.String("model"),
			VlanMode: acliv1.NetworkMode(r.Int("vlan_mode")), TrunkedNetworks: trunkOf(r.Inv)}
		if r.Has("connected") {
			req.Connected = proto.Bool(r.Bool("connected"))
		}
		return c.Vm.CreateNic(ctx, req)
	})
}

func runVMNicList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	vm, err := c.Vm.GetVm(ctx, &acliv1.GetVmRequest{Vm: r.Arg(0)})
	if err != nil {
		return err
	}
	return r.Print(render.Doc{Data: vm.GetNics(), Table: nicTable(vm.GetNics())})
}

func runVMNicDelete(ctx context.Context, r *Req) error {
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		return c.Vm.DeleteNic(ctx, &acliv1.DeleteNicRequest{Vm: t.ID, Mac: macOf(r.Inv)})
	})
}
