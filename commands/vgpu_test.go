package commands

import (
	"encoding/json"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/render"
)

// host.get lists each GPU's vGPU profiles with how many more VMs each
// takes and the VMs holding one; vm.get lists a vGPU in gpu_list with
// mode kVirtual and, while it runs, its GPU and mediated device.
func TestGoldenVgpuShapes(t *testing.T) {
	const gpu, p2q, p8q = "6f1d6c0e-36a4-5b4e-9a39-2f4c3c2d9a10", "8f3d9c9c-a8fe-58da-b142-e71dccae1bd9", "9723615a-187e-5da5-9729-db4309b4a342"
	h := &acliv1.Host{Uuid: "00000000-0000-4000-8000-000000000002", Name: "node-2", HypervisorIp: "127.20.0.22", MemoryBytes: 256 << 30,
		NodeState: acliv1.NodeState_AcropolisNormal, Schedulable: true, Connected: true, NumVms: 2,
		Devices: []*acliv1.HostDevice{
			{Address: "0000:3b:00.0", Kind: acliv1.DeviceKind_kGpuPassthrough, Vendor: "Nvidia", Model: "Tesla_M60", GroupUuid: gpu,
				VgpuProfiles: []*acliv1.VgpuProfile{
					{Name: "Nvidia_Tesla_M60-2Q", TypeId: "nvidia-18", Count: 4, GroupUuid: p2q, HeldByVmNames: []string{"vdi03", "vdi04"}},
					{Name: "Nvidia_Tesla_M60-8Q", TypeId: "nvidia-22", Count: 1, GroupUuid: p8q},
				}},
		}}
	on := &acliv1.Vm{Uuid: "00000000-0000-4000-8000-00000000000c", Name: "vdi03", NumVcpus: 2, NumCoresPerVcpu: 1, MemoryBytes: 4 << 30,
		PowerState: acliv1.PowerState_kOn, HostUuid: h.Uuid, HostName: h.Name,
		Devices: []*acliv1.VmDevice{{Kind: acliv1.DeviceKind_kVirtualGpu, GroupUuid: p2q, Name: "Nvidia_Tesla_M60-2Q", Address: "0000:3b:00.0",
			MdevUuid: "4b20d080-1b54-4048-85b3-a6a62d165c01"}}}
	off := &acliv1.Vm{Uuid: "00000000-0000-4000-8000-00000000000d", Name: "vdi05", NumVcpus: 2, NumCoresPerVcpu: 1, MemoryBytes: 4 << 30,
		PowerState: acliv1.PowerState_kOff, Devices: []*acliv1.VmDevice{{Kind: acliv1.DeviceKind_kVirtualGpu, GroupUuid: p8q, Name: "Nvidia_Tesla_M60-8Q"}}}
	ips := hostIPs{h.Uuid: h.HypervisorIp}
	for _, c := range []struct {
		name  string
		items []render.Named
	}{
		{"vgpu-host.get", []render.Named{acliNamed(h, ips)}},
		{"vgpu-vm.get", []render.Named{acliNamed(on, ips), acliNamed(off, ips)}},
	} {
		var sb strings.Builder
		if err := render.WriteProtoText(&sb, c.items); err != nil {
			t.Fatal(err)
		}
		j, err := json.Marshal(render.Keyed(c.items))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "devices/"+c.name+".txt", sb.String()+string(j)+"\n")
	}
	var sb strings.Builder
	for _, b := range []*render.Block{hostBlock(h), vmBlock(on), vmBlock(off)} {
		if err := render.WriteBlock(&sb, b); err != nil {
			t.Fatal(err)
		}
	}
	golden(t, "devices/vgpu-block.txt", sb.String())
}
