package commands

import (
	"context"
	"fmt"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
)

// Passthrough devices, as acli spells them: vm.gpu_assign gpu=<name> and
// vm.assign_pcie_device group_uuid=<uuid>. The VM must be off; it then
// powers on only where a device of the group is free, cannot live-migrate,
// and blocks live maintenance of its host unless shut down or moved
// offline (mode=cold).

var gpuModes = []EnumValue{
	{Name: "passthrough", Aliases: []string{"kPassthroughGraphics", "kPassthroughCompute"}, Value: int32(acliv1.DeviceKind_kGpuPassthrough)},
	{Name: "virtual", Aliases: []string{"kVirtual", "vgpu"}, Value: int32(acliv1.DeviceKind_kVirtualGpu)},
}

func vmDeviceCommands() []*Command {
	gpuKeys := []Key{
		{Name: "gpu", Type: TypeString, Required: true, Help: "the GPU's vendor and model as host.get lists it (Vendor_Model or Vendor:Model, any case), or one of its vGPU profiles (Nvidia_Tesla_M60-2Q)", Example: "Nvidia_Tesla_M60"},
		{Name: "mode", Type: TypeEnum, Enum: gpuModes, Help: "passthrough: the whole GPU; virtual: a share of one by a vGPU profile (default: virtual when gpu= names a profile)"},
	}
	pcieKeys := []Key{
		{Name: "group_uuid", Type: TypeString, Required: true, Help: "the device group (one vendor and model) as host.get lists it", Example: "<uuid>"},
	}
	assign := func(name, summary, desc string, kind acliv1.DeviceKind, key string, keys []Key, rpc func(acliv1.VmServiceClient) func(context.Context, *acliv1.AssignDeviceRequest) (*acliv1.Task, error), example string) *Command {
		return &Command{
			Name: name, Summary: summary, Description: desc,
			Args: []Arg{vmManyArg}, Keys: keys, Output: OutputTask,
			Examples: []string{example},
			Run: func(ctx context.Context, r *Req) error {
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					k := kind
					if kind == acliv1.DeviceKind_kGpuPassthrough && r.Has("mode") {
						k = acliv1.DeviceKind(r.Int("mode"))
					}
					return rpc(c.Vm)(ctx, &acliv1.AssignDeviceRequest{Vm: t.ID, Kind: k, Device: r.String(key)})
				})
			},
		}
	}
	gpu, pcie := acliv1.DeviceKind_kGpuPassthrough, acliv1.DeviceKind_kPcieDevice
	in := func(c acliv1.VmServiceClient) func(context.Context, *acliv1.AssignDeviceRequest) (*acliv1.Task, error) {
		return func(ctx context.Context, req *acliv1.AssignDeviceRequest) (*acliv1.Task, error) {
			return c.AssignDevice(ctx, req)
		}
	}
	out := func(c acliv1.VmServiceClient) func(context.Context, *acliv1.AssignDeviceRequest) (*acliv1.Task, error) {
		return func(ctx context.Context, req *acliv1.AssignDeviceRequest) (*acliv1.Task, error) {
			return c.DeassignDevice(ctx, req)
		}
	}
	return []*Command{
		assign("vm.gpu_assign", "Give powered-off VMs a passthrough GPU or a vGPU",
			"Each VM gets one more GPU of the model, or a vGPU of the profile (gpu=Nvidia_Tesla_M60-2Q: several VMs share one GPU, up to the profile's count, one profile per GPU, never beside a GPU passed through whole); it powers on only on a host with room, holds it while it runs, cannot live-migrate, and blocks live maintenance of its host unless shut down (non_migratable_vm_action=acpi_shutdown or mode=power_off) or moved offline to a host with room (mode=cold).",
			gpu, "gpu", gpuKeys, in, "vm.gpu_assign vdi01 gpu=Nvidia_Tesla_M60"),
		assign("vm.gpu_deassign", "Take a passthrough GPU from powered-off VMs", "Removes one GPU of the model from each VM.",
			gpu, "gpu", gpuKeys, out, "vm.gpu_deassign vdi01 gpu=Nvidia_Tesla_M60"),
		assign("vm.assign_pcie_device", "Give powered-off VMs a passthrough PCIe device",
			"Each VM gets one more device of the group; as with GPUs, it powers on only where one is free and is pinned to its host while it runs.",
			pcie, "group_uuid", pcieKeys, in, "vm.assign_pcie_device nfv01 group_uuid=<uuid>"),
		assign("vm.deassign_pcie_device", "Take a passthrough PCIe device from powered-off VMs", "Removes one device of the group from each VM.",
			pcie, "group_uuid", pcieKeys, out, "vm.deassign_pcie_device nfv01 group_uuid=<uuid>"),
	}
}

// simDirtyRateCommand is sim.set_dirty_rate.
func simDirtyRateCommand() *Command {
	return &Command{
		Name: "sim.set_dirty_rate", Summary: "Set how fast a simulated guest dirties its memory",
		Description: "The VM's next live migrations copy against this rate: a busy guest (hundreds of MiB/s) fails to converge on a slow link, an idle one (dirty_rate_mbps=0, the sim's idle rate) converges. Works only when clusterd runs the sim driver (otherwise exit 5).",
		Args:        []Arg{vmOneArg},
		Keys:        []Key{{Name: "dirty_rate_mbps", Type: TypeInt, Required: true, Min: 0, Max: 1 << 20, Help: "MiB/s the guest dirties (0: idle)", Example: "400"}},
		Output:      OutputText,
		Examples:    []string{"sim.set_dirty_rate db01 dirty_rate_mbps=400", "sim.set_dirty_rate db01 dirty_rate_mbps=0"},
		Run: func(ctx context.Context, r *Req) error {
			c, err := r.Client(ctx)
			if err != nil {
				return err
			}
			resp, err := c.Sim.SetDirtyRate(ctx, &acliv1.SimDirtyRateRequest{Vm: r.Arg(0), DirtyRateMbps: r.Int("dirty_rate_mbps")})
			if err != nil {
				return simErr(r.Cmd.Name, err)
			}
			line := fmt.Sprintf("VM %s: dirty rate %d MiB/s.", resp.GetVm().GetName(), resp.GetDirtyRateMbps())
			return r.Print(render.Doc{Data: resp, Text: line})
		},
	}
}

// vmDeviceList is a VM's devices of kind as vm.get prints them (the
// address only while the VM runs and holds it).
func vmDeviceList(v *acliv1.Vm, kind acliv1.DeviceKind) []any {
	var out []any
	running := v.GetPowerState() == acliv1.PowerState_kOn || v.GetPowerState() == acliv1.PowerState_kPaused
	for _, d := range v.GetDevices() {
		vgpu := d.GetKind() == acliv1.DeviceKind_kVirtualGpu
		if d.GetKind() != kind && !(vgpu && kind == acliv1.DeviceKind_kGpuPassthrough) {
			continue // vGPUs are listed with the GPUs, as acli's gpu_list has both
		}
		m := &render.Msg{}
		if running {
			m.SetNonEmpty("address", d.GetAddress())
		}
		m.Set("group_uuid", d.GetGroupUuid())
		if running && vgpu {
			m.SetNonEmpty("mdev_uuid", d.GetMdevUuid())
		}
		switch {
		case vgpu:
			m.Set("mode", render.Enum("kVirtual"))
		case kind == acliv1.DeviceKind_kGpuPassthrough:
			m.Set("mode", render.Enum("kPassthroughGraphics"))
		}
		m.Set("name", d.GetName())
		out = append(out, m)
	}
	return out
}

// hostDeviceList is a host's passthrough devices as host.get prints them.
func hostDeviceList(h *acliv1.Host) []any {
	var out []any
	for _, d := range h.GetDevices() {
		m := &render.Msg{}
		m.Set("address", d.GetAddress())
		m.Set("group_uuid", d.GetGroupUuid())
		m.SetNonEmpty("held_by_vm_name", d.GetHeldByVmName())
		m.SetNonEmpty("held_by_vm_uuid", d.GetHeldByVmUuid())
		m.Set("kind", render.Enum(d.GetKind().String()))
		m.Set("model", d.GetModel())
		m.Set("vendor", d.GetVendor())
		var profiles []any
		inUse := vgpusInUse(d)
		for _, p := range d.GetVgpuProfiles() {
			pm := &render.Msg{}
			// A GPU serves one profile at a time and none while passed through.
			free := int64(p.GetCount()) - int64(len(p.GetHeldByVmNames()))
			if d.GetHeldByVmName() != "" || (inUse > 0 && len(p.GetHeldByVmNames()) == 0) {
				free = 0
			}
			pm.Set("assignable", free)
			pm.Set("group_uuid", p.GetGroupUuid())
			var held []any
			for _, n := range p.GetHeldByVmNames() {
				held = append(held, n)
			}
			pm.Set("held_by_vm_name", held)
			pm.Set("max_instances", int64(p.GetCount()))
			pm.Set("name", p.GetName())
			pm.Set("type_id", p.GetTypeId())
			profiles = append(profiles, pm)
		}
		if profiles != nil {
			m.Set("vgpu_profile_list", profiles)
		}
		out = append(out, m)
	}
	return out
}

// hostDevicesBlock adds a host's passthrough devices to its readable block.
func hostDevicesBlock(b *render.Block, h *acliv1.Host) {
	if len(h.GetDevices()) == 0 {
		return
	}
	sec := b.Section("Passthrough devices")
	for _, d := range h.GetDevices() {
		who := "free"
		if d.GetHeldByVmName() != "" {
			who = "held by " + d.GetHeldByVmName()
		} else if n := vgpusInUse(d); n > 0 {
			who = fmt.Sprintf("serving %d vGPUs", n)
		}
		sec.Add(d.GetAddress(), fmt.Sprintf("%s %s_%s, %s", deviceKindWord(d.GetKind()), d.GetVendor(), d.GetModel(), who))
		for _, p := range d.GetVgpuProfiles() {
			used := "free"
			if n := p.GetHeldByVmNames(); len(n) > 0 {
				used = "held by " + strings.Join(n, ", ")
			} else if d.GetHeldByVmName() != "" || vgpusInUse(d) > 0 {
				used = "unavailable while the GPU serves another use"
			}
			sec.Add("  vGPU "+p.GetName(), fmt.Sprintf("%d per GPU, %s", p.GetCount(), used))
		}
	}
}

// vmDevicesBlock adds a VM's passthrough devices to its readable block.
func vmDevicesBlock(b *render.Block, v *acliv1.Vm) {
	if len(v.GetDevices()) == 0 {
		return
	}
	sec := b.Section("Passthrough devices")
	running := v.GetPowerState() == acliv1.PowerState_kOn || v.GetPowerState() == acliv1.PowerState_kPaused
	for _, d := range v.GetDevices() {
		at := "bound at power-on"
		if running && d.GetAddress() != "" {
			at = "at " + d.GetAddress()
		}
		sec.Add(deviceKindWord(d.GetKind())+" "+d.GetName(), at)
	}
}

// vgpusInUse counts the vGPUs a GPU serves.
func vgpusInUse(d *acliv1.HostDevice) int {
	n := 0
	for _, p := range d.GetVgpuProfiles() {
		n += len(p.GetHeldByVmNames())
	}
	return n
}

func deviceKindWord(k acliv1.DeviceKind) string {
	switch k {
	case acliv1.DeviceKind_kGpuPassthrough:
		return "GPU"
	case acliv1.DeviceKind_kVirtualGpu:
		return "vGPU"
	}
	return "PCIe device"
}
