package sim

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
)

// DeviceSpec is a host's passthrough devices of one vendor and model:
//
//	host_list:
//	  - name: gpu1
//	    devices:
//	      - {kind: gpu, vendor: Nvidia, model: Tesla_M60, count: 2}
//	      - {kind: pcie, vendor: Intel, model: X710_VF, count: 4}
type DeviceSpec struct {
	Kind   string `yaml:"kind"` // gpu or pcie
	Vendor string `yaml:"vendor"`
	Model  string `yaml:"model"`
	Count  int    `yaml:"count"` // default 1
	// Profiles (GPUs only) are the vGPU profiles each GPU can be split
	// into: {name: 2Q, count: 4} is Nvidia_Tesla_M60-2Q, four VMs per GPU.
	Profiles []ProfileSpec `yaml:"profiles"`
}

// ProfileSpec is one vGPU profile of a GPU model.
type ProfileSpec struct {
	Name  string `yaml:"name"`  // suffix, e.g. 2Q
	Count int    `yaml:"count"` // VMs per GPU, 1 to 64
	Type  string `yaml:"type"`  // mediated device type (default sim-<name>)
}

var deviceWord = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// DeviceGroup is the group UUID of a kind, vendor and model.
func DeviceGroup(kind acliv1.DeviceKind, vendor, model string) string {
	return driver.DeviceGroup(kind, vendor, model)
}

// hostDevices checks a host's device specs and spells out its devices, at
// PCI addresses 0000:3b:00.0, 0000:3c:00.0, ... in the order given.
func hostDevices(host string, specs []DeviceSpec) ([]*acliv1.HostDevice, error) {
	var out []*acliv1.HostDevice
	for _, s := range specs {
		var kind acliv1.DeviceKind
		switch strings.ToLower(s.Kind) {
		case "gpu":
			kind = acliv1.DeviceKind_kGpuPassthrough
		case "pcie":
			kind = acliv1.DeviceKind_kPcieDevice
		default:
			return nil, fmt.Errorf("sim config: host %s: device kind %q is unknown; use gpu or pcie", host, s.Kind)
		}
		if !deviceWord.MatchString(s.Vendor) || !deviceWord.MatchString(s.Model) {
			return nil, fmt.Errorf("sim config: host %s: device vendor %q and model %q must be words of letters, digits, '.', '_' or '-', e.g. vendor: Nvidia, model: Tesla_M60", host, s.Vendor, s.Model)
		}
		n := s.Count
		if n == 0 {
			n = 1
		}
		if n < 0 || len(out)+n > 64 {
			return nil, fmt.Errorf("sim config: host %s: device count %d is out of range; a host has 1 to 64 devices", host, s.Count)
		}
		profiles, err := vgpuProfiles(host, kind, s)
		if err != nil {
			return nil, err
		}
		for range n {
			out = append(out, &acliv1.HostDevice{
				Address: fmt.Sprintf("0000:%02x:00.0", 0x3b+len(out)), Kind: kind,
				Vendor: s.Vendor, Model: s.Model, GroupUuid: DeviceGroup(kind, s.Vendor, s.Model),
				VgpuProfiles: cloneProfiles(profiles),
			})
		}
	}
	return out, nil
}

// vgpuProfiles checks and spells out a GPU model's vGPU profiles.
func vgpuProfiles(host string, kind acliv1.DeviceKind, s DeviceSpec) ([]*acliv1.VgpuProfile, error) {
	if len(s.Profiles) > 0 && kind != acliv1.DeviceKind_kGpuPassthrough {
		return nil, fmt.Errorf("sim config: host %s: %s_%s is not a GPU: only GPUs have vGPU profiles", host, s.Vendor, s.Model)
	}
	var out []*acliv1.VgpuProfile
	for _, p := range s.Profiles {
		if !deviceWord.MatchString(p.Name) {
			return nil, fmt.Errorf("sim config: host %s: vGPU profile name %q must be a word of letters, digits, '.', '_' or '-', e.g. 2Q", host, p.Name)
		}
		if p.Count < 1 || p.Count > 64 {
			return nil, fmt.Errorf("sim config: host %s: vGPU profile %s count %d is out of range; a GPU serves 1 to 64 VMs", host, p.Name, p.Count)
		}
		typ := p.Type
		if typ == "" {
			typ = "sim-" + p.Name
		}
		vp := driver.VgpuProfile(s.Vendor, s.Model, p.Name, typ, p.Count)
		if slices.ContainsFunc(out, func(o *acliv1.VgpuProfile) bool { return strings.EqualFold(o.Name, vp.Name) }) {
			return nil, fmt.Errorf("sim config: host %s: vGPU profile %s is listed twice", host, vp.Name)
		}
		out = append(out, vp)
	}
	return out, nil
}

func cloneProfiles(ps []*acliv1.VgpuProfile) []*acliv1.VgpuProfile {
	out := make([]*acliv1.VgpuProfile, len(ps))
	for i, p := range ps {
		out[i] = proto.Clone(p).(*acliv1.VgpuProfile)
	}
	return out
}

// SetDirtyRate sets how fast the simulated guest of vm dirties its
// memory, in MiB/s, for its next live migrations (0: back to the VM's own
// dirty_rate_mbps, else idle), and returns the rate now in effect.
func (d *Driver) SetDirtyRate(vm *acliv1.Vm, mbps int64) (int64, error) {
	if mbps < 0 {
		return 0, fmt.Errorf("dirty rate %d MiB/s must not be negative", mbps)
	}
	d.mu.Lock()
	if d.dirty == nil {
		d.dirty = map[string]int64{}
	}
	if mbps == 0 {
		delete(d.dirty, vm.Uuid)
	} else {
		d.dirty[vm.Uuid] = mbps
	}
	d.mu.Unlock()
	return d.dirtyRate(vm), nil
}

// dirtyRate is the MiB/s vm's guest dirties: set by SetDirtyRate, else the
// VM's own, else an idle guest's.
func (d *Driver) dirtyRate(vm *acliv1.Vm) int64 {
	d.mu.Lock()
	r := d.dirty[vm.Uuid]
	d.mu.Unlock()
	switch {
	case r > 0:
		return r
	case vm.DirtyRateMbps > 0:
		return vm.DirtyRateMbps
	}
	return d.cfg.IdleDirtyRateMBps
}

// heldKey is what a running guest holds of a device: the whole device at
// its address, or one mediated device of a GPU.
func heldKey(dv *acliv1.VmDevice) string {
	if dv.Kind == acliv1.DeviceKind_kVirtualGpu {
		return "mdev:" + dv.Address + "/" + dv.MdevUuid
	}
	return dv.Address
}

// devicesFree says why vm cannot be given its bound devices on the host
// (as QEMU refuses a device it cannot open, or the GPU refuses one more
// mediated device), nil when it can; d.mu held.
func (sh *host) devicesFree(h *acliv1.Host, vm *acliv1.Vm) error {
	running := func(o string) bool { return o != "" && o != vm.Uuid && sh.domains[o] }
	for _, dv := range vm.Devices {
		i := slices.IndexFunc(h.Devices, func(x *acliv1.HostDevice) bool { return x.Address == dv.Address })
		if i < 0 {
			return fmt.Errorf("host %s has no device at %q for vm %s", sh.name, dv.Address, vm.Name)
		}
		if o := sh.held[dv.Address]; running(o) {
			return fmt.Errorf("device %s of host %s is in use by another guest", dv.Address, sh.name)
		}
		if dv.Kind != acliv1.DeviceKind_kVirtualGpu {
			for k, o := range sh.held {
				if strings.HasPrefix(k, "mdev:"+dv.Address+"/") && running(o) {
					return fmt.Errorf("GPU %s of host %s serves vGPUs to other guests", dv.Address, sh.name)
				}
			}
			continue
		}
		pi := slices.IndexFunc(h.Devices[i].VgpuProfiles, func(p *acliv1.VgpuProfile) bool { return p.GroupUuid == dv.GroupUuid })
		if pi < 0 || dv.MdevUuid == "" {
			return fmt.Errorf("GPU %s of host %s has no mediated device type for vGPU %s", dv.Address, sh.name, dv.Name)
		}
		if o := sh.held[heldKey(dv)]; running(o) {
			return fmt.Errorf("mediated device %s of host %s is in use by another guest", dv.MdevUuid, sh.name)
		}
		n := 0
		for k, o := range sh.held {
			if strings.HasPrefix(k, "mdev:"+dv.Address+"/") && running(o) {
				n++
			}
		}
		if p := h.Devices[i].VgpuProfiles[pi]; n >= int(p.Count) {
			return fmt.Errorf("GPU %s of host %s has no room for another %s: %d of %d in use", dv.Address, sh.name, p.Name, n, p.Count)
		}
	}
	return nil
}
