package state

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// DevicePool is one host's devices and the VMs holding them. Binding a
// VM's devices (placement, the scheduler's plans, HA's guarantee) and the
// DEVICE rule at commit judge a device by the same function (refuse), so a
// host placement chooses is one the commit accepts.
type DevicePool struct {
	host    *acliv1.Host
	devices []*acliv1.HostDevice // the host's, in address order
	holds   []holding            // in the order the VMs were placed
}

// holding is the devices one VM holds on the pool's host.
type holding struct {
	vm      *acliv1.Vm
	devices []*acliv1.VmDevice // bound
}

// DevicePool is host's pool as the transaction would leave it (an empty
// pool for an unknown host).
func (tx *Tx) DevicePool(host string) *DevicePool {
	h := tx.Host(host)
	if h == nil {
		return &DevicePool{host: &acliv1.Host{Uuid: host, Name: host}}
	}
	p := newPool(h)
	for _, v := range tx.VmsOn(host) {
		p.hold(v, v.Devices)
	}
	return p
}

func newPool(h *acliv1.Host) *DevicePool {
	p := &DevicePool{host: h, devices: slices.Clone(h.Devices)}
	slices.SortFunc(p.devices, func(a, b *acliv1.HostDevice) int { return strings.Compare(a.Address, b.Address) })
	return p
}

// hold records devs (bound) as v's on the pool's host.
func (p *DevicePool) hold(v *acliv1.Vm, devs []*acliv1.VmDevice) {
	if slices.ContainsFunc(devs, func(d *acliv1.VmDevice) bool { return d.Address != "" }) {
		p.holds = append(p.holds, holding{v, devs})
	}
}

// Clone is a copy whose bookings leave p as it is.
func (p *DevicePool) Clone() *DevicePool {
	c := *p
	c.holds = slices.Clone(p.holds)
	return &c
}

// Short says why the host cannot give v its devices beside those held
// ("" when it can), e.g. "no free GPU Nvidia_Tesla_M60".
func (p *DevicePool) Short(v *acliv1.Vm) string {
	if _, why := p.bind(v); why != "" {
		return why
	}
	return ""
}

// Book binds v's devices in the pool, as a VM placed on the host would
// hold them; it reports why it cannot.
func (p *DevicePool) Book(v *acliv1.Vm) string {
	bound, why := p.bind(v)
	if why == "" {
		p.Release(v.Uuid)
		p.hold(v, bound)
	}
	return why
}

// Release gives back the devices the VM of that UUID holds in the pool.
func (p *DevicePool) Release(vm string) {
	p.holds = slices.DeleteFunc(p.holds, func(h holding) bool { return h.vm.Uuid == vm })
}

// gpuUse is what the VMs of a pool make of one device.
type gpuUse struct {
	whole *acliv1.Vm // holding it in passthrough
	vgpus []vgpuUse  // one per vGPU bound to it
}

type vgpuUse struct {
	vm      *acliv1.Vm
	profile string // group UUID
}

// uses maps each device address to its use by the VMs of the pool other
// than skip.
func (p *DevicePool) uses(skip string) map[string]*gpuUse {
	out := map[string]*gpuUse{}
	for _, h := range p.holds {
		if h.vm.Uuid == skip {
			continue
		}
		for _, d := range h.devices {
			if d.Address == "" {
				continue
			}
			u := out[d.Address]
			if u == nil {
				u = &gpuUse{}
				out[d.Address] = u
			}
			if d.Kind == acliv1.DeviceKind_kVirtualGpu {
				u.vgpus = append(u.vgpus, vgpuUse{h.vm, d.GroupUuid})
			} else if u.whole == nil {
				u.whole = h.vm
			}
		}
	}
	return out
}

// device is the host's device at addr (nil if none).
func (p *DevicePool) device(addr string) *acliv1.HostDevice {
	i := slices.IndexFunc(p.devices, func(x *acliv1.HostDevice) bool { return x.Address == addr })
	if i < 0 {
		return nil
	}
	return p.devices[i]
}

// refuse is the DEVICE rule for one device: why v may not hold d (bound at
// d.Address) beside the other VMs' devices (others) and its own bound
// before d (mine); "" when it may.
func (p *DevicePool) refuse(v *acliv1.Vm, d *acliv1.VmDevice, others map[string]*gpuUse, mine []*acliv1.VmDevice) string {
	if d.Kind == acliv1.DeviceKind_kVirtualGpu {
		return p.refuseVgpu(v, d, others, mine)
	}
	h := label(p.host)
	what := DeviceWord(d.Kind) + " " + d.Name
	u := others[d.Address]
	if u != nil && len(u.vgpus) > 0 {
		return fmt.Sprintf("the GPU at %s on host %s serves vGPUs: it cannot be passed through to vm %s too", d.Address, h, v.Name)
	}
	if x := p.device(d.Address); x == nil || x.GroupUuid != d.GroupUuid {
		return fmt.Sprintf("host %s has no %s at %s for vm %s", h, what, d.Address, v.Name)
	}
	if slices.ContainsFunc(mine, func(e *acliv1.VmDevice) bool { return e.Address == d.Address }) {
		return fmt.Sprintf("vm %s holds the %s at %s twice", v.Name, what, d.Address)
	}
	if u != nil && u.whole != nil {
		return fmt.Sprintf("the %s at %s on host %s is held by vm %s (vm.off %s first)", what, d.Address, h, u.whole.Name, u.whole.Name)
	}
	return ""
}

// bind chooses a device for each of v's beside the other VMs' ones, or
// says which it finds none for: passthrough takes the first device of the
// group refuse allows, in address order; a vGPU the GPU refuse allows
// that serves the most of its profile already (packing leaves whole GPUs
// for passthrough and other profiles).
func (p *DevicePool) bind(v *acliv1.Vm) ([]*acliv1.VmDevice, string) {
	if len(v.Devices) == 0 {
		return nil, ""
	}
	others := p.uses(v.Uuid)
	out := make([]*acliv1.VmDevice, 0, len(v.Devices))
	for i, d := range v.Devices {
		var best *acliv1.VmDevice
		bestLoad := -1
		for _, x := range p.devices {
			if vgpu := d.Kind == acliv1.DeviceKind_kVirtualGpu; vgpu && profileOf(x, d.GroupUuid) == nil || !vgpu && x.GroupUuid != d.GroupUuid {
				continue
			}
			c := &acliv1.VmDevice{Kind: d.Kind, GroupUuid: d.GroupUuid, Name: d.Name, Address: x.Address}
			if p.refuse(v, c, others, out) != "" {
				continue
			}
			if d.Kind != acliv1.DeviceKind_kVirtualGpu {
				best = c
				break
			}
			if load := vgpusAt(x.Address, others, out); load > bestLoad {
				best, bestLoad = c, load
			}
		}
		if best == nil {
			if d.Kind == acliv1.DeviceKind_kVirtualGpu {
				return nil, "no GPU with room for a vGPU " + d.Name
			}
			return nil, fmt.Sprintf("no free %s %s", DeviceWord(d.Kind), d.Name)
		}
		if d.Kind == acliv1.DeviceKind_kVirtualGpu {
			best.MdevUuid = mdevUUID(v, i)
		}
		out = append(out, best)
	}
	return out, ""
}

// check is the DEVICE rule for v's bound devices on the pool's host.
func (p *DevicePool) check(v *acliv1.Vm) []string {
	var out []string
	others := p.uses(v.Uuid)
	for i, d := range v.Devices {
		if d.Address == "" {
			out = append(out, fmt.Sprintf("vm %s cannot run without its %s %s bound to a device of host %s", v.Name, DeviceWord(d.Kind), d.Name, label(p.host)))
			continue
		}
		if d.Kind == acliv1.DeviceKind_kVirtualGpu && d.MdevUuid == "" {
			out = append(out, fmt.Sprintf("vm %s cannot run its vGPU %s without a mediated device UUID", v.Name, d.Name))
		}
		if why := p.refuse(v, d, others, v.Devices[:i]); why != "" {
			out = append(out, why)
		}
	}
	return out
}

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

// BindDevices returns v's devices bound to free ones of host (their
// addresses set), or says which it finds none for. Binding is a choice:
// the DEVICE rule at commit is what refuses a device another VM took
// meanwhile.
func (tx *Tx) BindDevices(v *acliv1.Vm, host string) ([]*acliv1.VmDevice, error) {
	if len(v.Devices) == 0 {
		return nil, nil
	}
	h := tx.Host(host)
	if h == nil {
		return nil, fmt.Errorf("host %s is unknown", host)
	}
	bound, why := tx.DevicePool(host).bind(v)
	if why != "" {
		return nil, fmt.Errorf("host %s has %s", label(h), why)
	}
	return bound, nil
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
	for _, why := range tx.DevicePool(h.Uuid).check(v) {
		vs = append(vs, Violation{Rule: RuleDevice, Subject: "vm:" + v.Name, Description: why})
	}
	return vs
}

// DevicesChanged reports whether the device groups assigned to a VM differ
// (bindings aside).
func DevicesChanged(prev, next *acliv1.Vm) bool {
	return !slices.EqualFunc(prev.GetDevices(), next.GetDevices(), func(a, b *acliv1.VmDevice) bool {
		return a.Kind == b.Kind && a.GroupUuid == b.GroupUuid
	})
}

// WithHolders returns copies of h's devices with the holders of each
// filled in: the VM holding it whole, the VMs holding a vGPU of each of
// its profiles.
func (tx *Tx) WithHolders(h *acliv1.Host) []*acliv1.HostDevice {
	uses := tx.DevicePool(h.Uuid).uses("")
	out := make([]*acliv1.HostDevice, len(h.Devices))
	for i, d := range h.Devices {
		c := &acliv1.HostDevice{Address: d.Address, Kind: d.Kind, Vendor: d.Vendor, Model: d.Model, GroupUuid: d.GroupUuid}
		u := uses[d.Address]
		if u != nil && u.whole != nil {
			c.HeldByVmUuid, c.HeldByVmName = u.whole.Uuid, u.whole.Name
		}
		for _, p := range d.VgpuProfiles {
			cp := &acliv1.VgpuProfile{Name: p.Name, TypeId: p.TypeId, Count: p.Count, GroupUuid: p.GroupUuid}
			if u != nil {
				for _, o := range u.vgpus {
					if o.profile == p.GroupUuid {
						cp.HeldByVmNames = append(cp.HeldByVmNames, o.vm.Name)
					}
				}
			}
			slices.Sort(cp.HeldByVmNames)
			c.VgpuProfiles = append(c.VgpuProfiles, cp)
		}
		out[i] = c
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
