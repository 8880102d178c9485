package commands

import (
	"encoding/json"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/render"
)

// host.get and vm.get print passthrough devices in acli's protobuf text
// and JSON: the host's with the VM holding each, the VM's with the
// address it holds while it runs.
func TestGoldenDeviceShapes(t *testing.T) {
	const group, vf = "6f1d6c0e-36a4-5b4e-9a39-2f4c3c2d9a10", "0b8e1a3c-58f4-5a6e-8d2b-7c1e9f0a4b21"
	h := &acliv1.Host{Uuid: "00000000-0000-4000-8000-000000000002", Name: "node-2", HypervisorIp: "127.20.0.22", MemoryBytes: 256 << 30,
		NodeState: acliv1.NodeState_AcropolisNormal, Schedulable: true, Connected: true, NumVms: 1,
		Devices: []*acliv1.HostDevice{
			{Address: "0000:3b:00.0", Kind: acliv1.DeviceKind_kGpuPassthrough, Vendor: "Nvidia", Model: "Tesla_M60", GroupUuid: group,
				HeldByVmUuid: "00000000-0000-4000-8000-00000000000a", HeldByVmName: "vdi01"},
			{Address: "0000:3c:00.0", Kind: acliv1.DeviceKind_kGpuPassthrough, Vendor: "Nvidia", Model: "Tesla_M60", GroupUuid: group},
			{Address: "0000:3d:00.0", Kind: acliv1.DeviceKind_kPcieDevice, Vendor: "Intel", Model: "X710_VF", GroupUuid: vf},
		}}
	v := &acliv1.Vm{Uuid: "00000000-0000-4000-8000-00000000000a", Name: "vdi01", NumVcpus: 4, NumCoresPerVcpu: 1, MemoryBytes: 8 << 30,
		PowerState: acliv1.PowerState_kOn, HostUuid: h.Uuid, HostName: h.Name,
		Devices: []*acliv1.VmDevice{
			{Kind: acliv1.DeviceKind_kGpuPassthrough, GroupUuid: group, Name: "Nvidia_Tesla_M60", Address: "0000:3b:00.0"},
			{Kind: acliv1.DeviceKind_kPcieDevice, GroupUuid: vf, Name: "Intel_X710_VF", Address: "0000:3d:00.0"},
		}}
	off := &acliv1.Vm{Uuid: "00000000-0000-4000-8000-00000000000b", Name: "vdi02", NumVcpus: 4, NumCoresPerVcpu: 1, MemoryBytes: 8 << 30,
		PowerState: acliv1.PowerState_kOff, Devices: []*acliv1.VmDevice{{Kind: acliv1.DeviceKind_kGpuPassthrough, GroupUuid: group, Name: "Nvidia_Tesla_M60", Address: "0000:3c:00.0"}}}
	ips := hostIPs{h.Uuid: h.HypervisorIp}
	for _, c := range []struct {
		name  string
		items []render.Named
	}{
		{"host.get", []render.Named{acliNamed(h, ips)}},
		{"vm.get", []render.Named{acliNamed(v, ips), acliNamed(off, ips)}},
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
	for _, b := range []*render.Block{hostBlock(h), vmBlock(v), vmBlock(off)} {
		if err := render.WriteBlock(&sb, b); err != nil {
			t.Fatal(err)
		}
	}
	golden(t, "devices/block.txt", sb.String())
}
