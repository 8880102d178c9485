package libvirt

import (
	"fmt"
	"strconv"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// A passthrough device (acli's vm.gpu_assign, vm.assign_pcie_device)
// becomes a managed PCI <hostdev>: libvirt detaches it from its host
// driver, binds it to vfio-pci for the guest, and gives it back when the
// domain stops.

// hostdevXML is <hostdev mode='subsystem' type='pci' managed='yes'>.
type hostdevXML struct {
	Mode    string        `xml:"mode,attr"`
	Type    string        `xml:"type,attr"`
	Managed string        `xml:"managed,attr,omitempty"`
	Model   string        `xml:"model,attr,omitempty"` // vfio-pci for an mdev
	Source  hostdevSource `xml:"source"`
}

type hostdevSource struct {
	Address pciAddressXML `xml:"address"`
}

type pciAddressXML struct {
	Domain   string `xml:"domain,attr,omitempty"`
	Bus      string `xml:"bus,attr,omitempty"`
	Slot     string `xml:"slot,attr,omitempty"`
	Function string `xml:"function,attr,omitempty"`
	UUID     string `xml:"uuid,attr,omitempty"` // an mdev's
}

// parsePCI reads a PCI address, 0000:3b:00.0 (domain:bus:slot.function).
func parsePCI(addr string) (pciAddressXML, error) {
	bad := fmt.Errorf("device address %q is not a PCI address like 0000:3b:00.0", addr)
	parts := strings.Split(addr, ":")
	if len(parts) != 3 {
		return pciAddressXML{}, bad
	}
	slot, fn, ok := strings.Cut(parts[2], ".")
	if !ok {
		return pciAddressXML{}, bad
	}
	var out [4]uint64
	for i, f := range []struct {
		s    string
		bits int
	}{{parts[0], 16}, {parts[1], 8}, {slot, 5}, {fn, 3}} {
		n, err := strconv.ParseUint(f.s, 16, f.bits)
		if err != nil || f.s == "" {
			return pciAddressXML{}, bad
		}
		out[i] = n
	}
	return pciAddressXML{Domain: fmt.Sprintf("0x%04x", out[0]), Bus: fmt.Sprintf("0x%02x", out[1]),
		Slot: fmt.Sprintf("0x%02x", out[2]), Function: fmt.Sprintf("0x%x", out[3])}, nil
}

func (a pciAddressXML) String() string {
	n := func(s string) uint64 { v, _ := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 16); return v }
	return fmt.Sprintf("%04x:%02x:%02x.%x", n(a.Domain), n(a.Bus), n(a.Slot), n(a.Function))
}

// hostdevDevices renders the PCI addresses as managed hostdevs.
func hostdevDevices(addrs []string) ([]hostdevXML, error) {
	var out []hostdevXML
	seen := map[string]bool{}
	for _, a := range addrs {
		if id, ok := strings.CutPrefix(a, mdevPrefix); ok {
			h, err := mdevHostdev(id)
			if err != nil {
				return nil, err
			}
			out = append(out, h)
			continue
		}
		pci, err := parsePCI(a)
		if err != nil {
			return nil, err
		}
		if seen[pci.String()] {
			return nil, fmt.Errorf("device %s is passed through twice", pci)
		}
		seen[pci.String()] = true
		out = append(out, hostdevXML{Mode: "subsystem", Type: "pci", Managed: "yes", Source: hostdevSource{Address: pci}})
	}
	return out, nil
}

// parseHostdevs reads back the PCI addresses passed through.
func parseHostdevs(hs []hostdevXML) []string {
	var out []string
	for _, h := range hs {
		switch h.Type {
		case "pci":
			out = append(out, h.Source.Address.String())
		case "mdev":
			out = append(out, mdevPrefix+h.Source.Address.UUID)
		}
	}
	return out
}

// boundDevices are the device addresses a VM holds on its host.
func boundDevices(vm *acliv1.Vm) []string {
	var out []string
	for _, d := range vm.Devices {
		switch {
		case d.Kind == acliv1.DeviceKind_kVirtualGpu && d.MdevUuid != "":
			out = append(out, mdevPrefix+d.MdevUuid)
		case d.Kind != acliv1.DeviceKind_kVirtualGpu && d.Address != "":
			out = append(out, d.Address)
		}
	}
	return out
}
