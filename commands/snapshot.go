package commands

import (
	"context"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
)

var diskAddrKey = Key{Name: "disk_addr", Type: TypeString, Required: true, Help: "bus.index of the disk", Example: "scsi.0"}

func validDiskAddr(inv *Invocation) error {
	_, _, err := parseDiskAddr(inv.Values["disk_addr"].Raw)
	return err
}

// vmStorageCommands are the VM commands about vDisk data: clones,
// snapshots, disk changes and the boot device.
func vmStorageCommands() []*Command {
	return []*Command{
		{
			Name:        "vm.clone",
			Summary:     "Create VMs from a VM or a snapshot, with copies of its disks",
			Description: "Creates one stopped VM per name (a range like web[01..10] creates ten) with the source's settings and a copy of each of its vDisks; NICs get new MAC addresses. A running source VM is paused while its disks are copied, so the copies are crash-consistent.",
			Args:        []Arg{{Name: "name", Kind: KindVM, Many: true, Generate: true, Help: "names of the new VMs"}},
			Keys: []Key{
				{Name: "clone_from_vm", Type: TypeRef, Ref: KindVM, Help: "VM to clone", Example: "base01"},
				{Name: "clone_from_snapshot", Type: TypeRef, Ref: KindSnapshot, Help: "snapshot to clone", Example: "before-upgrade"},
			},
			Output: OutputTask,
			Validate: func(inv *Invocation) error {
				if (inv.Values["clone_from_vm"].Raw == "") == (inv.Values["clone_from_snapshot"].Raw == "") {
					return usageErrorf("vm.clone: give one of clone_from_vm=<vm> or clone_from_snapshot=<snapshot>")
				}
				return nil
			},
			Examples: []string{"vm.clone web[01..10] clone_from_vm=base01", "vm.clone web01-restored clone_from_snapshot=before-upgrade"},
			Run: func(ctx context.Context, r *Req) error {
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Vm.CloneVm(ctx, &acliv1.CloneVmRequest{Name: t.ID, CloneFromVm: r.String("clone_from_vm"), CloneFromSnapshot: r.String("clone_from_snapshot")})
				})
			},
		},
		{
			Name:        "vm.snapshot_create",
			Summary:     "Take snapshots of VMs",
			Description: "Takes one snapshot per name of each VM: its settings and a copy of each of its vDisks, all taken while the VM is paused (crash-consistent).",
			Args:        []Arg{vmManyArg},
			Keys: []Key{
				{Name: "snapshot_name_list", Type: TypeList, Required: true, Help: "names of the new snapshots", Example: "before-upgrade"},
			},
			Output:   OutputTask,
			Examples: []string{"vm.snapshot_create web01 snapshot_name_list=before-upgrade", "vm.snapshot_create web* snapshot_name_list=daily"},
			Run: func(ctx context.Context, r *Req) error {
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Snapshot.CreateSnapshots(ctx, &acliv1.CreateSnapshotsRequest{Vm: t.ID, Names: r.List("snapshot_name_list")})
				})
			},
		},
		{
			Name:     "vm.snapshot_list",
			Summary:  "List a VM's snapshots",
			Args:     []Arg{vmOneArg},
			Output:   OutputTable,
			Examples: []string{"vm.snapshot_list web01"},
			Run: func(ctx context.Context, r *Req) error {
				return listSnapshots(ctx, r, r.Arg(0))
			},
		},
		{
			Name:     "vm.disk_get",
			Summary:  "Show one disk of a VM",
			Args:     []Arg{vmOneArg},
			Keys:     []Key{diskAddrKey},
			Output:   OutputBlock,
			Validate: validDiskAddr,
			Examples: []string{"vm.disk_get web01 disk_addr=scsi.0"},
			Run:      runVMDiskGet,
		},
		{
			Name:        "vm.disk_update",
			Summary:     "Grow a disk, or eject or insert a CD-ROM's medium",
			Description: "new_size= grows a disk (never shrinks it); empty=true ejects a CD-ROM's medium; clone_from_image= inserts an ISO image into a CD-ROM.",
			Args:        []Arg{vmOneArg},
			Keys: []Key{
				diskAddrKey,
				{Name: "new_size", Type: TypeSize, Min: 1, Max: 1 << 50, Help: "new size of the disk (larger than now)", Example: "40G"},
				{Name: "empty", Type: TypeBool, Help: "eject the CD-ROM's medium"},
				{Name: "clone_from_image", Type: TypeRef, Ref: KindImage, Help: "ISO image to insert into the CD-ROM", Example: "debian12-iso"},
			},
			Output: OutputTask,
			Validate: func(inv *Invocation) error {
				if err := validDiskAddr(inv); err != nil {
					return err
				}
				n := 0
				for _, k := range []string{"new_size", "empty", "clone_from_image"} {
					if inv.Set[k] {
						n++
					}
				}
				switch {
				case n == 0:
					return usageErrorf("vm.disk_update: nothing to change; give new_size=, empty=true or clone_from_image=")
				case n > 1:
					return usageErrorf("vm.disk_update: give only one of new_size=, empty=true and clone_from_image=")
				case inv.Set["empty"] && !inv.Values["empty"].Bool:
					return usageErrorf("vm.disk_update: empty=false changes nothing; insert a medium with clone_from_image=")
				}
				return nil
			},
			Examples: []string{"vm.disk_update web01 disk_addr=scsi.0 new_size=40G", "vm.disk_update web01 disk_addr=ide.0 empty=true", "vm.disk_update web01 disk_addr=ide.0 clone_from_image=debian12-iso"},
			Run: func(ctx context.Context, r *Req) error {
				bus, idx, err := parseDiskAddr(r.String("disk_addr"))
				if err != nil {
					return err
				}
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Vm.UpdateDisk(ctx, &acliv1.UpdateDiskRequest{Vm: t.ID, Bus: bus, Index: idx, SizeBytes: r.Int("new_size"),
						Empty: r.Bool("empty"), CloneFromImage: r.String("clone_from_image")})
				})
			},
		},
		{
			Name:     "vm.update_boot_device",
			Summary:  "Set the disk a VM boots from",
			Args:     []Arg{vmOneArg},
			Keys:     []Key{diskAddrKey},
			Output:   OutputTask,
			Validate: validDiskAddr,
			Examples: []string{"vm.update_boot_device web01 disk_addr=scsi.0"},
			Run: func(ctx context.Context, r *Req) error {
				bus, idx, err := parseDiskAddr(r.String("disk_addr"))
				if err != nil {
					return err
				}
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Vm.UpdateBootDevice(ctx, &acliv1.UpdateBootDeviceRequest{Vm: t.ID, Bus: bus, Index: idx})
				})
			},
		},
	}
}

func snapshotCommands() []*Command {
	snapArg := Arg{Name: "snapshot", Kind: KindSnapshot, Many: true, Help: "snapshot name or UUID"}
	return []*Command{
		{
			Name:     "snapshot.list",
			Summary:  "List snapshots",
			Keys:     []Key{{Name: "vm", Type: TypeRef, Ref: KindVM, Help: "only snapshots of this VM", Example: "web01"}},
			Output:   OutputTable,
			Examples: []string{"snapshot.list", "snapshot.list vm=web01"},
			Run: func(ctx context.Context, r *Req) error {
				return listSnapshots(ctx, r, r.String("vm"))
			},
		},
		{
			Name:     "snapshot.get",
			Summary:  "Show snapshots in detail",
			Args:     []Arg{snapArg},
			Output:   OutputBlock,
			Examples: []string{"snapshot.get before-upgrade"},
			Run: func(ctx context.Context, r *Req) error {
				c, err := r.Client(ctx)
				if err != nil {
					return err
				}
				return getEach(ctx, r, r.Targets(0), func(ctx context.Context, id string) (*acliv1.Snapshot, error) {
					return c.Snapshot.GetSnapshot(ctx, &acliv1.GetSnapshotRequest{Snapshot: id})
				}, snapshotBlock)
			},
		},
		{
			Name:        "snapshot.delete",
			Summary:     "Delete snapshots (VMs cloned from them keep their own copies)",
			Args:        []Arg{snapArg},
			Destructive: "Delete",
			Output:      OutputTask,
			Examples:    []string{"snapshot.delete before-upgrade", "-y snapshot.delete daily*"},
			Run: func(ctx context.Context, r *Req) error {
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Snapshot.DeleteSnapshot(ctx, &acliv1.DeleteSnapshotRequest{Snapshot: t.ID})
				})
			},
		},
	}
}

func listSnapshots(ctx context.Context, r *Req, vm string) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Snapshot.ListSnapshots(ctx, &acliv1.ListSnapshotsRequest{Vm: vm})
	if err != nil {
		return err
	}
	return r.Print(render.Doc{Data: resp.GetSnapshots(), Table: snapshotTable(resp.GetSnapshots())})
}

func runVMDiskGet(ctx context.Context, r *Req) error {
	bus, idx, err := parseDiskAddr(r.String("disk_addr"))
	if err != nil {
		return err
	}
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	vm, err := c.Vm.GetVm(ctx, &acliv1.GetVmRequest{Vm: r.Arg(0), IncludeVmdiskPaths: true})
	if err != nil {
		return err
	}
	var have []string
	for _, d := range vm.GetDisks() {
		if d.GetBus() == bus && d.GetIndex() == idx {
			return r.Print(render.Doc{Data: d, Block: diskBlock(d)})
		}
		have = append(have, diskAddr(d))
	}
	if len(have) == 0 {
		have = []string{"none"}
	}
	return client.Errorf(client.ExitNotFound, "vm %s has no disk %s.%d (disks: %s)", vm.GetName(), bus, idx, strings.Join(have, ", "))
}

func snapshotTable(ss []*acliv1.Snapshot) *render.TableData {
	t := &render.TableData{Headers: []string{"Snapshot name", "Snapshot UUID", "VM name", "VM UUID", "Created", "vDisks", "Size"}}
	for _, s := range ss {
		t.Rows = append(t.Rows, []string{s.GetName(), s.GetUuid(), s.GetVmName(), s.GetVmUuid(), ts(s.GetCreateTime()),
			i32(int32(len(s.GetVm().GetDisks()))), FormatSize(s.GetSizeBytes())})
	}
	return t
}

func snapshotBlock(s *acliv1.Snapshot) *render.Block {
	b := &render.Block{}
	b.Add("Name", s.GetName()).
		Add("UUID", s.GetUuid()).
		Add("VM", s.GetVmName()).
		Add("VM UUID", s.GetVmUuid()).
		Add("Created", ts(s.GetCreateTime())).
		Add("VM power state then", enumText(s.GetPowerState().String(), s.GetPowerState() == 0)).
		Add("Size", FormatSize(s.GetSizeBytes())).
		Add("vCPUs", i32(s.GetVm().GetNumVcpus())).
		Add("Memory", FormatSize(s.GetVm().GetMemoryBytes()))
	disks := b.Section("Disks")
	for _, d := range s.GetVm().GetDisks() {
		disks.Section(diskAddr(d)).Add("UUID", d.GetUuid()).Add("Size", FormatSize(d.GetSizeBytes())).
			Add("Container", d.GetContainer()).Add("Copy of vmdisk", d.GetSourceVmdiskUuid())
	}
	return b
}

func diskBlock(d *acliv1.Disk) *render.Block {
	b := &render.Block{}
	b.Add("Address", diskAddr(d)).
		Add("UUID", d.GetUuid()).
		Add("Size", FormatSize(d.GetSizeBytes())).
		Add("Container", d.GetContainer()).
		Add("CD-ROM", yesNo(d.GetCdrom()))
	if d.GetCdrom() && d.GetSizeBytes() == 0 {
		b.Add("Medium", "none")
	}
	if d.GetVolumeGroupUuid() != "" {
		b.Add("Volume group", d.GetVolumeGroupUuid())
	}
	if d.GetSourceImageUuid() != "" {
		b.Add("Source image", d.GetSourceImageUuid())
	}
	if d.GetSourceVmdiskUuid() != "" {
		b.Add("Source vmdisk", d.GetSourceVmdiskUuid())
	}
	if d.GetVmdiskPath() != "" {
		b.Add("vmdisk path", d.GetVmdiskPath())
	}
	if d.GetServedByCvmIp() != "" {
		b.Add("Served by CVM", d.GetServedByCvmIp()+" ("+d.GetPath()+")")
	}
	return b
}
