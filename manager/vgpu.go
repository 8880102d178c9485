package manager

import (
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// vGPU profiles: vm.gpu_assign gpu=Nvidia_Tesla_M60-2Q names a profile
// rather than a GPU, and the VM gets a share of a GPU instead of all of it
// (mode=virtual says so explicitly; a GPU's own name with it is refused).

// gpuFamily: GPUs are assigned and deassigned by one command whether
// whole or shared.
func gpuFamily(k acliv1.DeviceKind) bool {
	return k == acliv1.DeviceKind_kGpuPassthrough || k == acliv1.DeviceKind_kVirtualGpu
}

// vgpuGroup resolves a vGPU profile name (any case, ':' for the first '_')
// or group UUID among the hosts' GPUs; ok is false when none matches. The
// most one host offers is the sum over its GPUs.
func (m *Manager) vgpuGroup(ref string) (g deviceGroup, ok bool) {
	want := strings.ToLower(strings.Replace(ref, ":", "_", 1))
	m.db.View(func(tx *state.Tx) {
		for _, h := range tx.Hosts() {
			n := 0
			for _, d := range h.Devices {
				for _, p := range d.VgpuProfiles {
					if strings.EqualFold(p.GroupUuid, ref) || strings.ToLower(p.Name) == want {
						g = deviceGroup{kind: acliv1.DeviceKind_kVirtualGpu, uuid: p.GroupUuid, name: p.Name}
						n += int(p.Count)
					}
				}
			}
			g.perHost = max(g.perHost, n)
		}
	})
	return g, g.uuid != ""
}

// vgpuNotFound is the error for mode=virtual with a name that is no
// profile: the nearest profiles by name.
func (m *Manager) vgpuNotFound(ref string) error {
	var names []string
	m.db.View(func(tx *state.Tx) {
		for _, h := range tx.Hosts() {
			for _, d := range h.Devices {
				for _, p := range d.VgpuProfiles {
					if !slices.Contains(names, p.Name) {
						names = append(names, p.Name)
					}
				}
			}
		}
	})
	if len(names) == 0 {
		return status.Errorf(codes.NotFound, "vgpu profile %q not found: no host's GPU offers vGPU profiles", ref)
	}
	slices.Sort(names)
	return apierr.NotFound("vgpu profile", ref, names)
}
