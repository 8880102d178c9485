package libvirt

import (
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/google/uuid"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// A vGPU is a mediated device (mdev) of a physical GPU: clusterd creates
// it on the host from the profile's type before the domain starts, and the
// domain takes it as <hostdev mode='subsystem' type='mdev' model='vfio-pci'>
// by its UUID. DomainSpec.Hostdevs names it "mdev:<uuid>".

const mdevPrefix = "mdev:"

func mdevHostdev(id string) (hostdevXML, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return hostdevXML{}, fmt.Errorf("mediated device %q is not a UUID", id)
	}
	return hostdevXML{Mode: "subsystem", Type: "mdev", Model: "vfio-pci", Source: hostdevSource{Address: pciAddressXML{UUID: u.String()}}}, nil
}

// nodeDeviceName is libvirt's name of a PCI device: pci_0000_3b_00_0.
func nodeDeviceName(addr string) (string, error) {
	pci, err := parsePCI(addr)
	if err != nil {
		return "", err
	}
	return "pci_" + strings.NewReplacer(":", "_", ".", "_").Replace(pci.String()), nil
}

// mdevCreateXML is the node device libvirt creates for one vGPU.
type mdevCreateXML struct {
	XMLName xml.Name `xml:"device"`
	Parent  string   `xml:"parent"`
	Cap     struct {
		Type     string `xml:"type,attr"`
		MdevType struct {
			ID string `xml:"id,attr"`
		} `xml:"type"`
		UUID string `xml:"uuid"`
	} `xml:"capability"`
}

// MdevXML is the node device XML that creates vm's vGPU d on host: the
// profile's type on the GPU it is bound to.
func MdevXML(host *acliv1.Host, d *acliv1.VmDevice) ([]byte, error) {
	var typeID string
	for _, g := range host.GetDevices() {
		if g.Address != d.Address {
			continue
		}
		for _, p := range g.VgpuProfiles {
			if p.GroupUuid == d.GroupUuid {
				typeID = p.TypeId
			}
		}
	}
	if typeID == "" {
		return nil, fmt.Errorf("host %s has no GPU at %q offering vGPU %s", host.GetName(), d.Address, d.Name)
	}
	parent, err := nodeDeviceName(d.Address)
	if err != nil {
		return nil, err
	}
	var x mdevCreateXML
	x.Parent, x.Cap.Type, x.Cap.MdevType.ID, x.Cap.UUID = parent, "mdev", typeID, d.MdevUuid
	return xml.MarshalIndent(x, "", "  ")
}

// createMdevs makes the vGPUs vm needs on the host (transient node
// devices, gone with the host's next reboot or when the VM stops); one
// that already exists is kept.
func createMdevs(c *Conn, host *acliv1.Host, vm *acliv1.Vm) error {
	for _, d := range vm.Devices {
		if d.Kind != acliv1.DeviceKind_kVirtualGpu {
			continue
		}
		x, err := MdevXML(host, d)
		if err != nil {
			return err
		}
		err = c.run("create mdev "+d.MdevUuid, func() error { _, err := c.l.NodeDeviceCreateXML(string(x), 0); return err })
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("vm %s: creating vGPU %s (mdev %s) on GPU %s of host %s: %w", vm.Name, d.Name, d.MdevUuid, d.Address, host.Name, c.wrap(err))
		}
	}
	return nil
}

// destroyMdevs removes the vGPUs vm held on the host, giving their share
// of the GPU back; ones already gone are not an error.
func destroyMdevs(c *Conn, vm *acliv1.Vm) {
	for _, d := range vm.Devices {
		if d.Kind != acliv1.DeviceKind_kVirtualGpu || d.MdevUuid == "" {
			continue
		}
		parent, err := nodeDeviceName(d.Address)
		if err != nil {
			continue
		}
		name := "mdev_" + strings.ReplaceAll(d.MdevUuid, "-", "_") + strings.TrimPrefix(parent, "pci")
		c.run("destroy mdev "+d.MdevUuid, func() error { return c.l.NodeDeviceDestroy(name) })
	}
}
