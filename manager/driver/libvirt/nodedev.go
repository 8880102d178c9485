package libvirt

import (
	"context"
	"encoding/xml"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
)

// A host's passthrough devices come from libvirt's node-device API: every
// PCI function is listed with its class, IDs and names (from the host's
// pci.ids), and a GPU that can be split lists its mediated device types.
// Display controllers (class 0x03) are GPUs; other endpoints are PCIe
// devices; bridges, memory controllers and base system peripherals are the
// machine's own plumbing and never offered.

// nodeDeviceXML is the part of <device> that describes a PCI function.
type nodeDeviceXML struct {
	Name   string `xml:"name"`
	Parent string `xml:"parent"`
	Driver struct {
		Name string `xml:"name"`
	} `xml:"driver"`
	Caps []struct {
		Type     string `xml:"type,attr"`
		Class    string `xml:"class"`
		Domain   string `xml:"domain"`
		Bus      string `xml:"bus"`
		Slot     string `xml:"slot"`
		Function string `xml:"function"`
		Product  struct {
			ID   string `xml:"id,attr"`
			Name string `xml:",chardata"`
		} `xml:"product"`
		Vendor struct {
			ID   string `xml:"id,attr"`
			Name string `xml:",chardata"`
		} `xml:"vendor"`
		// Inner capabilities: mdev_types of a GPU that can be split.
		Caps []struct {
			Type  string `xml:"type,attr"`
			Types []struct {
				ID        string `xml:"id,attr"`
				Name      string `xml:"name"`
				Available int    `xml:"availableInstances"`
			} `xml:"type"`
		} `xml:"capability"`
		// An mdev's own capability: its type and UUID.
		MdevType struct {
			ID string `xml:"id,attr"`
		} `xml:"type"`
		UUID string `xml:"uuid"`
	} `xml:"capability"`
}

// pciClassExcluded: bridges (0x06), memory controllers (0x05) and base
// system peripherals (0x08: interrupt, DMA and IOMMU controllers, timers).
func pciClassExcluded(class uint32) bool {
	switch class >> 16 {
	case 0x05, 0x06, 0x08:
		return true
	}
	return false
}

// pciClassGPU: display controllers (VGA, XGA, 3D, other).
func pciClassGPU(class uint32) bool { return class>>16 == 0x03 }

// vendorNames are short names for the vendors whose devices are passed
// through most, as acli names them (Nvidia_Tesla_M60).
var vendorNames = map[string]string{
	"0x10de": "Nvidia", "0x1002": "AMD", "0x1022": "AMD", "0x8086": "Intel",
	"0x15b3": "Mellanox", "0x14e4": "Broadcom", "0x1af4": "Red_Hat", "0x1077": "QLogic",
}

var (
	nonWord        = regexp.MustCompile(`[^A-Za-z0-9.-]+`)
	corporateWords = regexp.MustCompile(`(?i)[, ]+(corporation|corp\.?|inc\.?|co\.?,? ltd\.?|ltd\.?|limited|gmbh|technologies|technology)\b.*$`)
	bracketed      = regexp.MustCompile(`\[([^\]]+)\]`)
)

// word makes a name one word of letters, digits, '.', '-' and '_'.
func word(s string) string {
	return strings.Trim(nonWord.ReplaceAllString(strings.TrimSpace(s), "_"), "_.-")
}

// vendorName is the vendor's short name: known vendors by ID, others by
// their name without the corporate suffix, else the ID's hex digits.
func vendorName(id, name string) string {
	if v, ok := vendorNames[strings.ToLower(id)]; ok {
		return v
	}
	if w := word(corporateWords.ReplaceAllString(name, "")); w != "" {
		return w
	}
	return strings.TrimPrefix(strings.ToLower(id), "0x")
}

// modelName is the product's marketing name: what pci.ids gives in
// brackets ("GM204GL [Tesla M60]" is Tesla_M60), else the whole name, else
// the ID's hex digits.
func modelName(id, name string) string {
	if m := bracketed.FindStringSubmatch(name); m != nil {
		if w := word(m[1]); w != "" {
			return w
		}
	}
	if w := word(name); w != "" {
		return w
	}
	return strings.TrimPrefix(strings.ToLower(id), "0x")
}

// profileSuffix is a vGPU profile's short name from its mdev type: the part
// after the last '-' of "GRID M60-2Q" (2Q), else the whole name, else the
// type ID.
func profileSuffix(id, name string) string {
	if i := strings.LastIndex(name, "-"); i >= 0 && word(name[i+1:]) != "" {
		return word(name[i+1:])
	}
	if w := word(name); w != "" {
		return w
	}
	return word(id)
}

// setAside says whether a PCI function may be passed through. One the
// host's own kernel drives (its NICs, disk controllers, a BMC's display)
// is never offered: handing it to a guest would take it from the host.
// Offered are functions bound to vfio-pci or pci-stub (how an operator sets
// a device aside), unbound ones, and GPUs whose host driver splits them
// into vGPUs (they list mdev types).
func setAside(hostDriver string, splits bool) bool {
	switch hostDriver {
	case "", "vfio-pci", "pci-stub":
		return true
	}
	return splits
}

// ParseNodeDevice reads one node device's XML. ok is false for devices
// that are not offered for passthrough (not PCI, the machine's own
// plumbing, or driven by the host).
func ParseNodeDevice(b []byte) (d *acliv1.HostDevice, ok bool, err error) {
	f, ok, err := parsePCIFunction(b)
	if err != nil || !ok || !setAside(f.hostDriver, len(f.dev.VgpuProfiles) > 0) {
		return nil, false, err
	}
	return f.dev, true, nil
}

// pciFunction is one PCI function that is not plumbing, as passthrough
// would offer it, and the host driver bound to it.
type pciFunction struct {
	dev        *acliv1.HostDevice
	hostDriver string
}

// parsePCIFunction reads a node device; ok is false when it is not a PCI
// function or is the machine's plumbing.
func parsePCIFunction(b []byte) (f pciFunction, ok bool, err error) {
	var x nodeDeviceXML
	if err := xml.Unmarshal(b, &x); err != nil {
		return f, false, fmt.Errorf("node device XML: %w", err)
	}
	for _, c := range x.Caps {
		if c.Type != "pci" {
			continue
		}
		class, err := strconv.ParseUint(strings.TrimPrefix(c.Class, "0x"), 16, 32)
		if err != nil {
			return f, false, fmt.Errorf("node device %s: class %q is not a hex number", x.Name, c.Class)
		}
		if pciClassExcluded(uint32(class)) {
			return f, false, nil
		}
		var n [4]uint64
		for i, part := range []string{c.Domain, c.Bus, c.Slot, c.Function} {
			if n[i], err = strconv.ParseUint(part, 0, 16); err != nil {
				return f, false, fmt.Errorf("node device %s: PCI address part %q is not a number", x.Name, part)
			}
		}
		d := &acliv1.HostDevice{
			Address: fmt.Sprintf("%04x:%02x:%02x.%x", n[0], n[1], n[2], n[3]),
			Kind:    acliv1.DeviceKind_kPcieDevice,
			Vendor:  vendorName(c.Vendor.ID, c.Vendor.Name),
			Model:   modelName(c.Product.ID, c.Product.Name),
		}
		if pciClassGPU(uint32(class)) {
			d.Kind = acliv1.DeviceKind_kGpuPassthrough
			for _, in := range c.Caps {
				if in.Type != "mdev_types" {
					continue
				}
				for _, t := range in.Types {
					d.VgpuProfiles = append(d.VgpuProfiles, driver.VgpuProfile(d.Vendor, d.Model, profileSuffix(t.ID, t.Name), t.ID, t.Available))
				}
			}
		}
		d.GroupUuid = driver.DeviceGroup(d.Kind, d.Vendor, d.Model)
		return pciFunction{dev: d, hostDriver: x.Driver.Name}, true, nil
	}
	return f, false, nil
}

// mdevOf reads an mediated device's parent node device, type and UUID;
// ok is false for other devices.
func mdevOf(b []byte) (parent, typeID, id string, ok bool) {
	var x nodeDeviceXML
	if xml.Unmarshal(b, &x) != nil {
		return "", "", "", false
	}
	for _, c := range x.Caps {
		if c.Type == "mdev" {
			return x.Parent, c.MdevType.ID, c.UUID, true
		}
	}
	return "", "", "", false
}

// NodeDevices lists the host's passthrough devices in address order. A
// profile's count is what the GPU has left plus the vGPUs of it that
// already exist, so a host with running vGPU guests reports its full size.
func (c *Conn) NodeDevices() ([]*acliv1.HostDevice, error) {
	fns, err := c.pciFunctions()
	if err != nil {
		return nil, err
	}
	var out []*acliv1.HostDevice
	byNode := map[string]*acliv1.HostDevice{}
	for node, f := range fns {
		if setAside(f.hostDriver, len(f.dev.VgpuProfiles) > 0) {
			out = append(out, f.dev)
			byNode[node] = f.dev
		}
	}
	mdevs, err := c.nodeDevices(golibvirt.ConnectListNodeDevicesCapMdev)
	if err != nil {
		return nil, fmt.Errorf("listing mediated devices: %w", c.wrap(err))
	}
	for _, nd := range mdevs {
		x, err := call(c, "describe node device "+nd.Name, func() (string, error) { return c.l.NodeDeviceGetXMLDesc(nd.Name, 0) })
		if err != nil {
			continue
		}
		parent, typeID, _, ok := mdevOf([]byte(x))
		if d := byNode[parent]; ok && d != nil {
			for _, p := range d.VgpuProfiles {
				if p.TypeId == typeID {
					p.Count++
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b *acliv1.HostDevice) int { return strings.Compare(a.Address, b.Address) })
	return out, nil
}

// pciFunctions reads the host's PCI functions that are not plumbing, by
// node device name.
func (c *Conn) pciFunctions() (map[string]pciFunction, error) {
	pcis, err := c.nodeDevices(golibvirt.ConnectListNodeDevicesCapPciDev)
	if err != nil {
		return nil, fmt.Errorf("listing node devices: %w", c.wrap(err))
	}
	out := map[string]pciFunction{}
	for _, nd := range pcis {
		x, err := call(c, "describe node device "+nd.Name, func() (string, error) { return c.l.NodeDeviceGetXMLDesc(nd.Name, 0) })
		if err != nil {
			continue // gone since the listing (hot unplug)
		}
		f, ok, err := parsePCIFunction([]byte(x))
		if err != nil {
			return nil, err
		}
		if ok {
			out[nd.Name] = f
		}
	}
	return out, nil
}

// discoverDevices reports the host's passthrough devices on each
// connection: cards added or split while it was away show up.
func (d *Driver) discoverDevices(ctx context.Context, mem *member) {
	c, err := mem.h.Conn()
	if err != nil {
		return
	}
	at := time.Now()
	devs, err := c.NodeDevices()
	if err != nil {
		d.log.Warn("discovering passthrough devices", "host", mem.name, "err", err)
		return
	}
	d.send(ctx, driver.HostEvent{Kind: driver.HostDevices, HostUUID: mem.uuid, Time: at, Devices: devs}, false)
}

// nodeDevices lists the host's node devices of one capability.
func (c *Conn) nodeDevices(capability golibvirt.ConnectListAllNodeDeviceFlags) ([]golibvirt.NodeDevice, error) {
	return call(c, "list node devices", func() ([]golibvirt.NodeDevice, error) {
		nds, _, err := c.l.ConnectListAllNodeDevices(1, uint32(capability))
		return nds, err
	})
}
