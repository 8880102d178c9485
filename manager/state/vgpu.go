package state

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// vGPUs (acli's vm.gpu_assign of a profile, e.g. Nvidia_Tesla_M60-2Q):
// several running VMs share one physical GPU, each holding one mediated
// device of the profile. RuleDevice covers them too: a GPU passed through
// whole serves no vGPU and one serving vGPUs is not passed through; a GPU
// serves one profile at a time; a profile's count is never exceeded.

// gpuUse is what the placed VMs make of one physical GPU.
type gpuUse struct {
	whole *acliv1.Vm // holding it in passthrough
	vgpus []vgpuUse  // one per vGPU bound to it
}

type vgpuUse struct {
	vm      *acliv1.Vm
	profile string // group UUID
}

// profile is the group UUID of the profile the GPU serves ("" when none),
// and a VM using another one, if any.
func (u *gpuUse) profile() (string, *acliv1.Vm) {
	if u == nil || len(u.vgpus) == 0 {
		return "", nil
	}
	for _, o := range u.vgpus[1:] {
		if o.profile != u.vgpus[0].profile {
			return u.vgpus[0].profile, o.vm
		}
	}
	return u.vgpus[0].profile, nil
}

// gpuUses maps each GPU address on host to its use by the placed VMs other
// than skip, as the transaction would leave them.
func (tx *Tx) gpuUses(host, skip string) map[string]*gpuUse {
	out := map[string]*gpuUse{}
	use := func(addr string) *gpuUse {
		if out[addr] == nil {
			out[addr] = &gpuUse{}
		}
		return out[addr]
	}
	for _, v := range tx.VmsOn(host) {
		if v.Uuid == skip {
			continue
		}
		for _, d := range v.Devices {
			switch {
			case d.Address == "":
			case d.Kind == acliv1.DeviceKind_kVirtualGpu:
				u := use(d.Address)
				u.vgpus = append(u.vgpus, vgpuUse{v, d.GroupUuid})
			case d.Kind == acliv1.DeviceKind_kGpuPassthrough && use(d.Address).whole == nil:
				use(d.Address).whole = v
			}
		}
	}
	return out
}

// vgpuServing says whether the GPU at addr serves vGPUs to placed VMs.
func (tx *Tx) vgpuServing(host string) map[string]bool {
	out := map[string]bool{}
	for addr, u := range tx.gpuUses(host, "") {
		if len(u.vgpus) > 0 {
			out[addr] = true
		}
	}
	return out
}

// profileOf finds a profile by group UUID on a host's GPU.
func profileOf(d *acliv1.HostDevice, group string) *acliv1.VgpuProfile {
	i := slices.IndexFunc(d.VgpuProfiles, func(p *acliv1.VgpuProfile) bool { return p.GroupUuid == group })
	if i < 0 {
		return nil
	}
	return d.VgpuProfiles[i]
}

// mdevSpace names the mediated devices clusterd creates: one per VM and
// vGPU slot, the same at every power-on.
var mdevSpace = uuid.MustParse("8d0c4e52-31a4-4f6e-b5a1-6c2f0e9d7a13")

// bindVgpus binds v's vGPUs to GPUs of host: a GPU already serving the
// profile with room first (packing leaves whole GPUs for passthrough and
// other profiles), else an unused one, in address order. taken counts the
// GPUs the binding has used so far (passthrough: -1).
func (tx *Tx) bindVgpu(v *acliv1.Vm, h *acliv1.Host, i int, d *acliv1.VmDevice, uses map[string]*gpuUse, taken map[string]int) (*acliv1.VmDevice, error) {
	var best *acliv1.HostDevice
	bestLoad := -1
	gpus := slices.Clone(h.Devices)
	slices.SortFunc(gpus, func(a, b *acliv1.HostDevice) int { return strings.Compare(a.Address, b.Address) })
	for _, g := range gpus {
		p := profileOf(g, d.GroupUuid)
		if p == nil || taken[g.Address] < 0 {
			continue
		}
		u := uses[g.Address]
		load := taken[g.Address]
		if u != nil {
			if prof, _ := u.profile(); u.whole != nil || (prof != "" && prof != d.GroupUuid) {
				continue
			}
			load += len(u.vgpus)
		}
		if load < int(p.Count) && load > bestLoad {
			best, bestLoad = g, load
		}
	}
	if best == nil {
		return nil, fmt.Errorf("host %s has no GPU with room for a vGPU %s", label(h), d.Name)
	}
	taken[best.Address]++
	return &acliv1.VmDevice{Kind: d.Kind, GroupUuid: d.GroupUuid, Name: d.Name, Address: best.Address,
		MdevUuid: uuid.NewSHA1(mdevSpace, fmt.Appendf(nil, "%s/%d", v.Uuid, i)).String()}, nil
}

// checkVgpu is RuleDevice for one vGPU of v placed on h; uses are the GPU
// uses of every VM placed there, v included.
func checkVgpu(v *acliv1.Vm, h *acliv1.Host, d *acliv1.VmDevice, uses map[string]*gpuUse, add func(string, ...any)) {
	what := "vGPU " + d.Name
	i := slices.IndexFunc(h.Devices, func(x *acliv1.HostDevice) bool { return x.Address == d.Address })
	var p *acliv1.VgpuProfile
	if i >= 0 {
		p = profileOf(h.Devices[i], d.GroupUuid)
	}
	if p == nil {
		add("host %s has no GPU at %s offering %s for vm %s", label(h), d.Address, what, v.Name)
		return
	}
	if d.MdevUuid == "" {
		add("vm %s cannot run its %s without a mediated device UUID", v.Name, what)
	}
	u := uses[d.Address]
	if u == nil {
		u = &gpuUse{vgpus: []vgpuUse{{v, d.GroupUuid}}}
	}
	prof, other := u.profile()
	switch {
	case u.whole != nil:
		add("the GPU at %s on host %s is passed through to vm %s: it serves no %s (vm.off %s first)", d.Address, label(h), u.whole.Name, what, u.whole.Name)
	case other != nil || prof != d.GroupUuid:
		if other == nil || other == v {
			other = u.vgpus[0].vm
		}
		add("the GPU at %s on host %s serves another vGPU profile to vm %s: one profile per GPU at a time", d.Address, label(h), other.Name)
	case len(u.vgpus) > int(p.Count):
		add("the GPU at %s on host %s would serve %s to %d VMs; its most is %d (vm.off one first)", d.Address, label(h), d.Name, len(u.vgpus), p.Count)
	}
}

// vgpuHolders fills in each profile of h's GPUs the VMs holding a vGPU of
// it there.
func (tx *Tx) vgpuHolders(h *acliv1.Host, out []*acliv1.HostDevice) {
	uses := tx.gpuUses(h.Uuid, "")
	for i, d := range h.Devices {
		for _, p := range d.VgpuProfiles {
			c := &acliv1.VgpuProfile{Name: p.Name, TypeId: p.TypeId, Count: p.Count, GroupUuid: p.GroupUuid}
			if u := uses[d.Address]; u != nil {
				for _, o := range u.vgpus {
					if o.profile == p.GroupUuid {
						c.HeldByVmNames = append(c.HeldByVmNames, o.vm.Name)
					}
				}
			}
			slices.Sort(c.HeldByVmNames)
			out[i].VgpuProfiles = append(out[i].VgpuProfiles, c)
		}
	}
}
