package libvirt

import (
	"fmt"
	"strconv"
)

// The VM settings that shape the domain's firmware and CPU: UEFI, the
// topology (sockets x cores x threads), the host CPU passed through or
// nested virtualization, vNUMA cells, vCPU pinning and a vTPM.

// HardwareSpec is the domain's firmware and CPU beyond the vCPU count.
type HardwareSpec struct {
	// UEFI boots the domain from UEFI firmware (libvirt picks the loader
	// and its NVRAM store).
	UEFI bool
	// Sockets, Cores and Threads lay the vCPUs out; their product is the
	// vCPU count. Zero leaves libvirt's flat layout.
	Sockets, Cores, Threads int
	// CPUPassthrough gives the guest the host's CPU model (host-passthrough).
	CPUPassthrough bool
	// NestedVirt exposes the CPU's virtualization extensions (mode maximum:
	// every feature the accelerator offers).
	NestedVirt bool
	// NUMANodes splits the vCPUs and memory into that many even cells.
	NUMANodes int
	// PinVCPUs pins vCPU i to host CPU i mod HostCPUs (HostCPUs 0: i).
	PinVCPUs bool
	HostCPUs int
	// TPM adds a TPM 2.0 (swtpm emulator behind a CRB interface).
	TPM bool
}

type cpuXML struct {
	Mode     string          `xml:"mode,attr,omitempty"`
	Check    string          `xml:"check,attr,omitempty"`
	Topology *topologyXML    `xml:"topology,omitempty"`
	Features []cpuFeatureXML `xml:"feature"`
	NUMA     *numaXML        `xml:"numa,omitempty"`
}

type topologyXML struct {
	Sockets int `xml:"sockets,attr"`
	Dies    int `xml:"dies,attr"`
	Cores   int `xml:"cores,attr"`
	Threads int `xml:"threads,attr"`
}

type cpuFeatureXML struct {
	Policy string `xml:"policy,attr"`
	Name   string `xml:"name,attr"`
}

type numaXML struct {
	Cells []numaCellXML `xml:"cell"`
}

type numaCellXML struct {
	ID     int    `xml:"id,attr"`
	CPUs   string `xml:"cpus,attr"`
	Memory uint64 `xml:"memory,attr"`
	Unit   string `xml:"unit,attr"`
}

type cputuneXML struct {
	Pins []vcpuPinXML `xml:"vcpupin"`
}

type vcpuPinXML struct {
	VCPU   int    `xml:"vcpu,attr"`
	CPUSet string `xml:"cpuset,attr"`
}

type tpmXML struct {
	Model   string        `xml:"model,attr"`
	Backend tpmBackendXML `xml:"backend"`
}

type tpmBackendXML struct {
	Type    string `xml:"type,attr"`
	Version string `xml:"version,attr"`
}

// validate checks the hardware against the vCPU count and memory.
func (h HardwareSpec) validate(vcpus int, memMiB uint64) error {
	if h.Sockets > 0 || h.Cores > 0 || h.Threads > 0 {
		if h.Sockets < 1 || h.Cores < 1 || h.Threads < 1 || h.Sockets*h.Cores*h.Threads != vcpus {
			return fmt.Errorf("topology %d sockets x %d cores x %d threads does not make %d vCPUs", h.Sockets, h.Cores, h.Threads, vcpus)
		}
	}
	if n := h.NUMANodes; n < 0 || (n > 0 && (vcpus%n != 0 || memMiB%uint64(n) != 0)) {
		return fmt.Errorf("%d vNUMA nodes do not split %d vCPUs and %d MiB evenly", n, vcpus, memMiB)
	}
	return nil
}

// apply puts the hardware into the domain.
func (h HardwareSpec) apply(d *domainXML, vcpus int, memMiB uint64) {
	if h.UEFI {
		d.OS.Firmware = "efi"
	}
	cpu := &cpuXML{}
	switch {
	case h.CPUPassthrough:
		cpu.Mode, cpu.Check = "host-passthrough", "none"
	case h.NestedVirt:
		cpu.Mode = "maximum"
	}
	if h.Sockets > 0 {
		cpu.Topology = &topologyXML{Sockets: h.Sockets, Dies: 1, Cores: h.Cores, Threads: h.Threads}
	}
	if n := h.NUMANodes; n > 0 {
		cpu.NUMA = &numaXML{}
		per := vcpus / n
		for i := range n {
			cpus := strconv.Itoa(i * per)
			if per > 1 {
				cpus += "-" + strconv.Itoa((i+1)*per-1)
			}
			cpu.NUMA.Cells = append(cpu.NUMA.Cells, numaCellXML{ID: i, CPUs: cpus, Memory: memMiB / uint64(n), Unit: "MiB"})
		}
	}
	if cpu.Mode != "" || cpu.Topology != nil || cpu.NUMA != nil {
		d.CPU = cpu
	}
	if h.PinVCPUs {
		d.CPUTune = &cputuneXML{}
		for i := range vcpus {
			host := i
			if h.HostCPUs > 0 {
				host = i % h.HostCPUs
			}
			d.CPUTune.Pins = append(d.CPUTune.Pins, vcpuPinXML{VCPU: i, CPUSet: strconv.Itoa(host)})
		}
	}
	if h.TPM {
		d.Devices.TPMs = []tpmXML{{Model: "tpm-crb", Backend: tpmBackendXML{Type: "emulator", Version: "2.0"}}}
	}
}

// parseHardware reads the hardware back from a domain.
func parseHardware(d domainXML) HardwareSpec {
	h := HardwareSpec{UEFI: d.OS.Firmware == "efi", TPM: len(d.Devices.TPMs) > 0}
	if c := d.CPU; c != nil {
		h.CPUPassthrough, h.NestedVirt = c.Mode == "host-passthrough", c.Mode == "maximum"
		if t := c.Topology; t != nil {
			h.Sockets, h.Cores, h.Threads = t.Sockets, t.Cores, t.Threads
		}
		if c.NUMA != nil {
			h.NUMANodes = len(c.NUMA.Cells)
		}
	}
	if d.CPUTune != nil && len(d.CPUTune.Pins) > 0 {
		h.PinVCPUs = true
	}
	return h
}
