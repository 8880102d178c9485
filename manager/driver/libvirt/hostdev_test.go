package libvirt

import (
	"os"
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
	golden := filepath.Join("testdata", "domain-hostdev.xml")
	if *update {
		os.WriteFile(golden, b, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(want) {
		t.Errorf("domain XML differs from %s (go test -update rewrites it):\n%s", golden, b)
	}
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
