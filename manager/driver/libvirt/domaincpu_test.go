package libvirt

import (
	"path/filepath"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// acli's VM settings reach the domain: UEFI firmware, a 2 x 2 x 2
// topology, the host CPU passed through, two vNUMA cells, vCPUs pinned
// modulo the host's CPUs and a TPM 2.0; and they read back.
func TestDomainXMLHardware(t *testing.T) {
	vm := &acliv1.Vm{
		Uuid: "0b5e2bf4-7d7e-4f3c-9a55-2b3c1b6f9e10", Name: "sap01", NumVcpus: 2, NumCoresPerVcpu: 2, NumThreadsPerCore: 2,
		MemoryBytes: 4 << 30, UefiBoot: true, NumVnumaNodes: 2, CpuPassthrough: true, VcpuHardPin: true, VirtualTpm: true,
	}
	s := VmDomainSpec(vm, Storage{})
	s.Hardware.HostCPUs = 6
	b, err := s.XML()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "domain-hardware.xml"), b)
	got, err := ParseDomainXML(b)
	if err != nil {
		t.Fatal(err)
	}
	wantHW := HardwareSpec{UEFI: true, Sockets: 2, Cores: 2, Threads: 2, CPUPassthrough: true, NUMANodes: 2, PinVCPUs: true, TPM: true}
	if got.VCPUs != 8 || got.Hardware != wantHW {
		t.Errorf("parsed back %d vCPUs, %+v; want 8, %+v", got.VCPUs, got.Hardware, wantHW)
	}

	// Nested virtualization without passthrough; a plain VM has no <cpu>.
	b, err = VmDomainSpec(&acliv1.Vm{Name: "n", NumVcpus: 1, MemoryBytes: 1 << 30, HardwareVirtualization: true}, Storage{}).XML()
	if err != nil || !strings.Contains(string(b), `<cpu mode="maximum"></cpu>`) || strings.Contains(string(b), "firmware") {
		t.Errorf("nested virtualization: %v\n%s", err, b)
	}
	b, err = VmDomainSpec(&acliv1.Vm{Name: "p", NumVcpus: 4, MemoryBytes: 1 << 30}, Storage{}).XML()
	if err != nil || strings.Contains(string(b), "<cpu") || strings.Contains(string(b), "cputune") || strings.Contains(string(b), "tpm") {
		t.Errorf("plain VM: %v\n%s", err, b)
	}

	for _, c := range []struct {
		hw   HardwareSpec
		want string
	}{
		{HardwareSpec{Sockets: 1, Cores: 2, Threads: 1}, "does not make 4 vCPUs"},
		{HardwareSpec{NUMANodes: 3}, "3 vNUMA nodes do not split 4 vCPUs"},
	} {
		s := DomainSpec{Name: "a", VCPUs: 4, MemoryMiB: 1024, Hardware: c.hw}
		if _, err := s.XML(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("XML(%+v) = %v, want %q", c.hw, err, c.want)
		}
	}
}
