package libvirt

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// A VM holding a GPU and a PCIe device becomes managed PCI hostdevs
// (golden file), read back to the same addresses; a device off while the
// VM is off is not passed through.
func TestDomainXMLHostdevs(t *testing.T) {
	vm := &acliv1.Vm{Uuid: "0b5e2bf4-7d7e-4f3c-9a55-2b3c1b6f9e10", Name: "vdi01", NumVcpus: 1, MemoryBytes: 96 << 20,
		Devices: []*acliv1.VmDevice{
			{Kind: acliv1.DeviceKind_kGpuPassthrough, GroupUuid: "g", Name: "Nvidia_Tesla_M60", Address: "0000:3b:00.0"},
			{Kind: acliv1.DeviceKind_kPcieDevice, GroupUuid: "p", Name: "Intel_X710_VF", Address: "0000:af:1f.7"},
			{Kind: acliv1.DeviceKind_kGpuPassthrough, GroupUuid: "g", Name: "Nvidia_Tesla_M60"},
		}}
	s := VmDomainSpec(vm, Storage{})
	b, err := s.XML()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "domain-hostdev.xml"), b)
	got, err := ParseDomainXML(b)
	if err != nil || !slices.Equal(got.Hostdevs, []string{"0000:3b:00.0", "0000:af:1f.7"}) {
		t.Fatalf("read back %v %v", got.Hostdevs, err)
	}
	for addr, want := range map[string]string{
		"3b:00.0":       "is not a PCI address",
		"0000:3b:20.0":  "is not a PCI address", // slot is 5 bits
		"0000:3b:00.8":  "is not a PCI address", // function is 3 bits
		"0000:3b:00.0,": "is not a PCI address",
	} {
		s.Hostdevs = []string{addr}
		if _, err := s.XML(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", addr, err)
		}
	}
	s.Hostdevs = []string{"0000:3b:00.0", "0000:3B:00.0"}
	if _, err := s.XML(); err == nil || !strings.Contains(err.Error(), "device 0000:3b:00.0 is passed through twice") {
		t.Errorf("twice: %v", err)
	}
}

// A vGPU is an mdev hostdev by UUID (golden file), read back as such; the
// mediated device is created from the profile's type on the GPU it is
// bound to (golden node device XML).
func TestDomainXMLMdev(t *testing.T) {
	const mdev = "4b20d080-1b54-4048-85b3-a6a62d165c01"
	gpu := &acliv1.VmDevice{Kind: acliv1.DeviceKind_kVirtualGpu, GroupUuid: "p2q", Name: "Nvidia_Tesla_M60-2Q", Address: "0000:3d:00.0", MdevUuid: mdev}
	vm := &acliv1.Vm{Uuid: "0b5e2bf4-7d7e-4f3c-9a55-2b3c1b6f9e11", Name: "vdi03", NumVcpus: 1, MemoryBytes: 96 << 20,
		Devices: []*acliv1.VmDevice{gpu, {Kind: acliv1.DeviceKind_kPcieDevice, GroupUuid: "p", Name: "Intel_X710_VF", Address: "0000:af:1f.7"}}}
	s := VmDomainSpec(vm, Storage{})
	b, err := s.XML()
	if err != nil {
		t.Fatal(err)
	}
	host := &acliv1.Host{Name: "h2", Devices: []*acliv1.HostDevice{{Address: "0000:3d:00.0", Kind: acliv1.DeviceKind_kGpuPassthrough,
		VgpuProfiles: []*acliv1.VgpuProfile{{Name: "Nvidia_Tesla_M60-8Q", TypeId: "nvidia-22", GroupUuid: "p8q"}, {Name: "Nvidia_Tesla_M60-2Q", TypeId: "nvidia-18", GroupUuid: "p2q"}}}}}
	nd, err := MdevXML(host, gpu)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct {
		file string
		got  []byte
	}{{"domain-mdev.xml", b}, {"mdev-create.xml", nd}} {
		checkGolden(t, filepath.Join("testdata", g.file), g.got)
	}
	got, err := ParseDomainXML(b)
	if err != nil || !slices.Equal(got.Hostdevs, []string{"mdev:" + mdev, "0000:af:1f.7"}) {
		t.Fatalf("read back %v %v", got.Hostdevs, err)
	}
	// The mdev's parent node device is what nodedev discovery lists.
	if parent, typ, id, ok := mdevOf(nd); !ok || parent != "pci_0000_3d_00_0" || typ != "nvidia-18" || id != mdev {
		t.Errorf("create XML reads as %q %q %q %v", parent, typ, id, ok)
	}
	if _, err := MdevXML(host, &acliv1.VmDevice{Kind: acliv1.DeviceKind_kVirtualGpu, GroupUuid: "nope", Name: "X-1A", Address: "0000:3d:00.0"}); err == nil ||
		err.Error() != `host h2 has no GPU at "0000:3d:00.0" offering vGPU X-1A` {
		t.Errorf("unknown profile: %v", err)
	}
	s.Hostdevs = []string{"mdev:nope"}
	if _, err := s.XML(); err == nil || !strings.Contains(err.Error(), `mediated device "nope" is not a UUID`) {
		t.Errorf("bad mdev: %v", err)
	}
}
