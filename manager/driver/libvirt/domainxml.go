package libvirt

import (
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// DomainSpec is the part of a VM record that becomes a libvirt domain.
type DomainSpec struct {
	Name      string
	UUID      string // canonical form; the VM's UUID, so domains are found by it on any host
	VCPUs     int
	MemoryMiB uint64
	// Description lands in the domain's <description>, visible in virsh dominfo.
	Description string
	// Arch and Machine default to x86_64 and pc.
	Arch    string
	Machine string
	// Disks, NICs and the serial console; a domain without disks is valid
	// (it boots nothing), so is one without NICs.
	Disks   []DiskSpec
	NICs    []NICSpec
	Console *ConsoleSpec
	// Hardware is the firmware and CPU beyond the vCPU count (domaincpu.go).
	Hardware HardwareSpec
	// Hostdevs are the host PCI devices passed through (hostdev.go), as
	// addresses like 0000:3b:00.0.
	Hostdevs []string
}

// Validate reports the first problem that libvirt would otherwise reject less clearly.
func (s DomainSpec) Validate() error {
	switch {
	case s.Name == "":
		return fmt.Errorf("domain name is empty")
	case strings.ContainsAny(s.Name, "/\x00") || strings.TrimSpace(s.Name) != s.Name:
		return fmt.Errorf("domain name %q: no '/', NUL or surrounding spaces allowed", s.Name)
	case s.VCPUs < 1:
		return fmt.Errorf("domain %s: vcpus=%d, want at least 1", s.Name, s.VCPUs)
	case s.MemoryMiB < 1:
		return fmt.Errorf("domain %s: memory=%d MiB, want at least 1", s.Name, s.MemoryMiB)
	}
	if err := s.Hardware.validate(s.VCPUs, s.MemoryMiB); err != nil {
		return fmt.Errorf("domain %s: %w", s.Name, err)
	}
	if s.UUID != "" {
		if _, err := uuid.Parse(s.UUID); err != nil {
			return fmt.Errorf("domain %s: uuid %q: %v", s.Name, s.UUID, err)
		}
	}
	return nil
}

// domainXML mirrors the subset of libvirt's domain schema acli writes and reads back.
type domainXML struct {
	XMLName       xml.Name     `xml:"domain"`
	Type          string       `xml:"type,attr"`
	Name          string       `xml:"name"`
	UUID          string       `xml:"uuid,omitempty"`
	Description   string       `xml:"description,omitempty"`
	Memory        sizeXML      `xml:"memory"`
	CurrentMemory *sizeXML     `xml:"currentMemory,omitempty"`
	VCPU          vcpuXML      `xml:"vcpu"`
	CPUTune       *cputuneXML  `xml:"cputune,omitempty"`
	OS            osXML        `xml:"os"`
	Features      *featuresXML `xml:"features,omitempty"`
	CPU           *cpuXML      `xml:"cpu,omitempty"`
	OnPoweroff    string       `xml:"on_poweroff,omitempty"`
	OnReboot      string       `xml:"on_reboot,omitempty"`
	OnCrash       string       `xml:"on_crash,omitempty"`
	Devices       devicesXML   `xml:"devices"`
}

type sizeXML struct {
	Unit  string `xml:"unit,attr,omitempty"`
	Value uint64 `xml:",chardata"`
}

type vcpuXML struct {
	Placement string `xml:"placement,attr,omitempty"`
	Value     int    `xml:",chardata"`
}

type osXML struct {
	Firmware string    `xml:"firmware,attr,omitempty"`
	Type     osTypeXML `xml:"type"`
}

type osTypeXML struct {
	Arch    string `xml:"arch,attr,omitempty"`
	Machine string `xml:"machine,attr,omitempty"`
	Value   string `xml:",chardata"`
}

// featuresXML: ACPI is what lets a guest OS honour an ACPI shutdown request.
type featuresXML struct {
	ACPI *struct{} `xml:"acpi"`
	APIC *struct{} `xml:"apic"`
}

type devicesXML struct {
	Emulator    string          `xml:"emulator,omitempty"`
	Disks       []diskXML       `xml:"disk"`
	Controllers []controllerXML `xml:"controller"`
	Interfaces  []interfaceXML  `xml:"interface"`
	Serials     []serialXML     `xml:"serial"`
	TPMs        []tpmXML        `xml:"tpm"`
	Hostdevs    []hostdevXML    `xml:"hostdev"`
}

// XML renders the domain definition. The type is always qemu (TCG): /dev/kvm is not
// dependable everywhere acli runs its hosts, and TCG domains migrate between any of them.
func (s DomainSpec) XML() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	arch, machine := s.Arch, s.Machine
	if arch == "" {
		arch = "x86_64"
	}
	if machine == "" {
		machine = "pc"
	}
	d := domainXML{
		Type:          "qemu",
		Name:          s.Name,
		UUID:          s.UUID,
		Description:   s.Description,
		Memory:        sizeXML{Unit: "MiB", Value: s.MemoryMiB},
		CurrentMemory: &sizeXML{Unit: "MiB", Value: s.MemoryMiB},
		VCPU:          vcpuXML{Placement: "static", Value: s.VCPUs},
		OS:            osXML{Type: osTypeXML{Arch: arch, Machine: machine, Value: "hvm"}},
		Features:      &featuresXML{ACPI: &struct{}{}, APIC: &struct{}{}},
		OnPoweroff:    "destroy",
		OnReboot:      "restart",
		OnCrash:       "destroy",
	}
	var err error
	if d.Devices.Disks, d.Devices.Controllers, err = diskDevices(s.Disks); err != nil {
		return nil, fmt.Errorf("domain %s: %w", s.Name, err)
	}
	if d.Devices.Interfaces, err = nicDevices(s.NICs); err != nil {
		return nil, fmt.Errorf("domain %s: %w", s.Name, err)
	}
	if d.Devices.Hostdevs, err = hostdevDevices(s.Hostdevs); err != nil {
		return nil, fmt.Errorf("domain %s: %w", s.Name, err)
	}
	d.Devices.Serials = serialDevices(s.Console)
	s.Hardware.apply(&d, s.VCPUs, s.MemoryMiB)
	return xml.MarshalIndent(d, "", "  ")
}

// ParseDomainXML reads back what libvirt reports for a domain (virDomainGetXMLDesc).
func ParseDomainXML(b []byte) (DomainSpec, error) {
	var d domainXML
	if err := xml.Unmarshal(b, &d); err != nil {
		return DomainSpec{}, fmt.Errorf("domain XML: %w", err)
	}
	mib, err := toMiB(d.Memory)
	if err != nil {
		return DomainSpec{}, fmt.Errorf("domain %s: %w", d.Name, err)
	}
	disks, nics, con := parseDevices(d.Devices)
	return DomainSpec{
		Disks:       disks,
		NICs:        nics,
		Console:     con,
		Name:        d.Name,
		UUID:        d.UUID,
		VCPUs:       d.VCPU.Value,
		MemoryMiB:   mib,
		Description: d.Description,
		Arch:        d.OS.Type.Arch,
		Machine:     d.OS.Type.Machine,
		Hardware:    parseHardware(d),
		Hostdevs:    parseHostdevs(d.Devices.Hostdevs),
	}, nil
}

// toMiB converts libvirt's memory units (it reports KiB) to MiB, rounding up.
func toMiB(s sizeXML) (uint64, error) {
	var unitBytes uint64
	switch strings.ToLower(s.Unit) {
	case "b", "bytes":
		unitBytes = 1
	case "", "k", "kib":
		unitBytes = 1 << 10
	case "kb":
		unitBytes = 1000
	case "m", "mib":
		unitBytes = 1 << 20
	case "mb":
		unitBytes = 1000 * 1000
	case "g", "gib":
		unitBytes = 1 << 30
	case "gb":
		unitBytes = 1000 * 1000 * 1000
	case "t", "tib":
		unitBytes = 1 << 40
	default:
		return 0, fmt.Errorf("unknown memory unit %q", s.Unit)
	}
	b := s.Value * unitBytes
	return (b + 1<<20 - 1) >> 20, nil
}
