package state

import (
	"fmt"
	"slices"

	"github.com/google/uuid"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// vGPUs (acli's vm.gpu_assign of a profile, e.g. Nvidia_Tesla_M60-2Q):
// several running VMs share one physical GPU, each holding one mediated
// device of the profile. RuleDevice covers them too: a GPU passed through
// whole serves no vGPU and one serving vGPUs is not passed through; a GPU
// serves one profile at a time; a profile's count is never exceeded.

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

func mdevUUID(v *acliv1.Vm, slot int) string {
	return uuid.NewSHA1(mdevSpace, fmt.Appendf(nil, "%s/%d", v.Uuid, slot)).String()
}

// vgpusAt counts the vGPUs bound to the GPU at addr, the others' and mine.
func vgpusAt(addr string, others map[string]*gpuUse, mine []*acliv1.VmDevice) int {
	n := 0
	if u := others[addr]; u != nil {
		n = len(u.vgpus)
	}
	for _, e := range mine {
		if e.Address == addr && e.Kind == acliv1.DeviceKind_kVirtualGpu {
			n++
		}
	}
	return n
}

// refuseVgpu is refuse for a vGPU.
func (p *DevicePool) refuseVgpu(v *acliv1.Vm, d *acliv1.VmDevice, others map[string]*gpuUse, mine []*acliv1.VmDevice) string {
	h := label(p.host)
	var prof *acliv1.VgpuProfile
	if x := p.device(d.Address); x != nil {
		prof = profileOf(x, d.GroupUuid)
	}
	if prof == nil {
		return fmt.Sprintf("host %s has no GPU at %s offering vGPU %s for vm %s", h, d.Address, d.Name, v.Name)
	}
	u := others[d.Address]
	if u != nil && u.whole != nil {
		return fmt.Sprintf("the GPU at %s on host %s is passed through to vm %s: it serves no vGPU %s (vm.off %s first)", d.Address, h, u.whole.Name, d.Name, u.whole.Name)
	}
	for _, e := range mine {
		if e.Address != d.Address {
			continue
		}
		if e.Kind != acliv1.DeviceKind_kVirtualGpu {
			return fmt.Sprintf("vm %s holds the GPU at %s whole: it cannot hold a vGPU %s of it too", v.Name, d.Address, d.Name)
		}
		if e.GroupUuid != d.GroupUuid {
			return fmt.Sprintf("the GPU at %s on host %s serves another vGPU profile to vm %s: one profile per GPU at a time", d.Address, h, v.Name)
		}
	}
	if u != nil {
		for _, o := range u.vgpus {
			if o.profile != d.GroupUuid {
				return fmt.Sprintf("the GPU at %s on host %s serves another vGPU profile to vm %s: one profile per GPU at a time", d.Address, h, o.vm.Name)
			}
		}
	}
	if n := vgpusAt(d.Address, others, mine) + 1; n > int(prof.Count) {
		return fmt.Sprintf("the GPU at %s on host %s would serve %s to %d VMs; its most is %d (vm.off one first)", d.Address, h, d.Name, n, prof.Count)
	}
	return ""
}
