package state

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// RuleDevice: a running VM holds a device of each group it is assigned, on
// its own host, and no device is held by two VMs (passthrough gives the
// guest the whole device, as on AHV).
const RuleDevice = "DEVICE"

// DeviceWord is how messages name a kind of device.
func DeviceWord(k acliv1.DeviceKind) string {
	switch k {
	case acliv1.DeviceKind_kGpuPassthrough:
		return "GPU"
	case acliv1.DeviceKind_kVirtualGpu:
		return "vGPU"
	}
	return "PCIe device"
}

// DeviceName is a device group's name in acli's spelling: Vendor_Model.
func DeviceName(vendor, model string) string {
	if vendor == "" {
		return model
	}
	return vendor + "_" + model
}

// DeviceHolders maps each device address on host to the VM placed there
// that holds it, as the transaction would leave it.
func (tx *Tx) DeviceHolders(host string) map[string]*acliv1.Vm {
	out := map[string]*acliv1.Vm{}
	for _, v := range tx.VmsOn(host) {
		for _, d := range v.Devices {
			if d.Address != "" && d.Kind != acliv1.DeviceKind_kVirtualGpu && out[d.Address] == nil {
				out[d.Address] = v
			}
		}
	}
	return out
}

// FreeDevices are host's devices of group that no placed VM holds, in
// address order.
func (tx *Tx) FreeDevices(host, group string) []*acliv1.HostDevice {
	h := tx.Host(host)
	if h == nil {
		return nil
	}
	held, shared := tx.DeviceHolders(host), tx.vgpuServing(host)
	var out []*acliv1.HostDevice
	for _, d := range h.Devices {
		if d.GroupUuid == group && held[d.Address] == nil && !shared[d.Address] {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b *acliv1.HostDevice) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// BindDevices returns v with a free device of each of its groups on host
// bound (its addresses set), or says which group has none free there.
// Binding is a choice: the DEVICE rule at commit is what refuses a device
// another VM took meanwhile.
func (tx *Tx) BindDevices(v *acliv1.Vm, host string) ([]*acliv1.VmDevice, error) {
	if len(v.Devices) == 0 {
		return nil, nil
	}
	h := tx.Host(host)
	if h == nil {
		return nil, fmt.Errorf("host %s is unknown", host)
	}
	taken := map[string]int{} // vGPUs bound per GPU; -1 passed through
	uses := tx.gpuUses(host, v.Uuid)
	out := make([]*acliv1.VmDevice, len(v.Devices))
	for i, d := range v.Devices {
		if d.Kind == acliv1.DeviceKind_kVirtualGpu {
			nd, err := tx.bindVgpu(v, h, i, d, uses, taken)
			if err != nil {
				return nil, err
			}
			out[i] = nd
			continue
		}
		nd := &acliv1.VmDevice{Kind: d.Kind, GroupUuid: d.GroupUuid, Name: d.Name}
		for _, f := range tx.FreeDevices(host, d.GroupUuid) {
			if taken[f.Address] == 0 {
				nd.Address, taken[f.Address] = f.Address, -1
				break
			}
		}
		if nd.Address == "" {
			return nil, fmt.Errorf("host %s has no free %s %s", label(h), DeviceWord(d.Kind), d.Name)
		}
		out[i] = nd
	}
	return out, nil
}

// WithDevicesOn returns a copy of v with a free device of each of its
// groups on host bound (v itself when it has no devices), or says which
// group has none free there: what a VM starting on host (a power-on, an HA
// restart, an offline move) takes with it.
func (tx *Tx) WithDevicesOn(v *acliv1.Vm, host string) (*acliv1.Vm, error) {
	if len(v.Devices) == 0 {
		return v, nil
	}
	bound, err := tx.BindDevices(v, host)
	if err != nil {
		return nil, err
	}
	out := proto.Clone(v).(*acliv1.Vm)
	out.Devices = bound
	return out, nil
}

// checkDevices is RuleDevice for v placed on h.
func (tx *Tx) checkDevices(v *acliv1.Vm, h *acliv1.Host) []Violation {
	if len(v.Devices) == 0 {
		return nil
	}
	var vs []Violation
	add := func(format string, args ...any) {
		vs = append(vs, Violation{Rule: RuleDevice, Subject: "vm:" + v.Name, Description: fmt.Sprintf(format, args...)})
	}
	var held map[string]*acliv1.Vm
	seen := map[string]bool{}
	uses := tx.gpuUses(h.Uuid, "")
	for _, d := range v.Devices {
		what := DeviceWord(d.Kind) + " " + d.Name
		if d.Address == "" {
			add("vm %s cannot run without its %s bound to a device of host %s", v.Name, what, label(h))
			continue
		}
		if d.Kind == acliv1.DeviceKind_kVirtualGpu {
			if !seen[d.Address] {
				checkVgpu(v, h, d, uses, add)
			}
			seen[d.Address] = true
			continue
		}
		if u := uses[d.Address]; u != nil && len(u.vgpus) > 0 {
			add("the GPU at %s on host %s serves vGPUs: it cannot be passed through to vm %s too", d.Address, label(h), v.Name)
			continue
		}
		i := slices.IndexFunc(h.Devices, func(x *acliv1.HostDevice) bool { return x.Address == d.Address })
		if i < 0 || h.Devices[i].GroupUuid != d.GroupUuid {
			add("host %s has no %s at %s for vm %s", label(h), what, d.Address, v.Name)
			continue
		}
		if seen[d.Address] {
			add("vm %s holds the %s at %s twice", v.Name, what, d.Address)
			continue
		}
		seen[d.Address] = true
		if held == nil {
			held = tx.heldByOthers(h.Uuid, v.Uuid)
		}
		if o := held[d.Address]; o != nil {
			add("the %s at %s on host %s is held by vm %s (vm.off %s first)", what, d.Address, label(h), o.Name, o.Name)
		}
	}
	return vs
}

// heldByOthers maps device addresses on host to the placed VM other than
// self holding each.
func (tx *Tx) heldByOthers(host, self string) map[string]*acliv1.Vm {
	out := map[string]*acliv1.Vm{}
	for _, o := range tx.VmsOn(host) {
		if o.Uuid == self {
			continue
		}
		for _, d := range o.Devices {
			if d.Address != "" && d.Kind != acliv1.DeviceKind_kVirtualGpu {
				out[d.Address] = o
			}
		}
	}
	return out
}

// DevicesChanged reports whether the device groups assigned to a VM differ
// (bindings aside).
func DevicesChanged(prev, next *acliv1.Vm) bool {
	return !slices.EqualFunc(prev.GetDevices(), next.GetDevices(), func(a, b *acliv1.VmDevice) bool {
		return a.Kind == b.Kind && a.GroupUuid == b.GroupUuid
	})
}

// WithHolders returns copies of h's devices with the holder of each filled in.
func (tx *Tx) WithHolders(h *acliv1.Host) []*acliv1.HostDevice {
	held := tx.DeviceHolders(h.Uuid)
	out := make([]*acliv1.HostDevice, len(h.Devices))
	for i, d := range h.Devices {
		c := &acliv1.HostDevice{Address: d.Address, Kind: d.Kind, Vendor: d.Vendor, Model: d.Model, GroupUuid: d.GroupUuid}
		if v := held[d.Address]; v != nil {
			c.HeldByVmUuid, c.HeldByVmName = v.Uuid, v.Name
		}
		out[i] = c
	}
	tx.vgpuHolders(h, out)
	return out
}

// PassthroughDevices are the devices v holds whole (vGPUs, which share a
// GPU, aside): what placement and HA's guarantee count per device group.
func PassthroughDevices(v *acliv1.Vm) []*acliv1.VmDevice {
	var out []*acliv1.VmDevice
	for _, d := range v.GetDevices() {
		if d.Kind != acliv1.DeviceKind_kVirtualGpu {
			out = append(out, d)
		}
	}
	return out
}

// DevicesPin names the devices that keep v on its host ("" if none).
func DevicesPin(v *acliv1.Vm) string {
	if len(v.GetDevices()) == 0 {
		return ""
	}
	d := v.Devices[0]
	s := fmt.Sprintf("a passthrough %s %s", DeviceWord(d.Kind), d.Name)
	if d.Kind == acliv1.DeviceKind_kVirtualGpu {
		s = "a vGPU " + d.Name
	}
	if n := len(v.Devices); n > 1 {
		s += fmt.Sprintf(" (and %d more devices)", n-1)
	}
	return s
}
