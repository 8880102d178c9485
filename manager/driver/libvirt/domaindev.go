package libvirt

import (
	"encoding/xml"
	"fmt"
	"net"
	"slices"
	"strings"
)

// DiskSpec is one vDisk or CD-ROM of a domain.
type DiskSpec struct {
	Bus   string // scsi, sata, ide or pci (virtio-blk)
	Index int    // device index on its bus, as in acli's disk_addr scsi.0
	CDROM bool
	// Path is the volume in its container; empty for an empty CD-ROM drive.
	Path string
	// Serial is the vDisk UUID, so a guest finds its disks by id.
	Serial string
	// Boot marks the boot device.
	Boot bool
	// ISCSI, when set, is where the disk's bytes come from instead of
	// Path: QEMU's libiscsi logs in at the portal (the host's redirector).
	ISCSI *ISCSISource
}

// ISCSISource is a vDisk served over iSCSI: LUN 1 of target IQN, logged
// in to at Portal ("ip:port") as Initiator.
type ISCSISource struct {
	Portal    string
	IQN       string
	Initiator string
}

// NICSpec is one network interface, plugged into a bridge.
type NICSpec struct {
	MAC    string
	Bridge string
	Model  string // default virtio
	// Trunk lists the VLAN tags a trunked NIC carries (acli's kTrunked);
	// empty for an access NIC.
	Trunk []int
	// LinkDown leaves the NIC without carrier (acli's connected=false).
	LinkDown bool
	// OVS: the bridge is an Open vSwitch bridge, where libvirt adds the
	// NIC as a port and sets its VLAN tags (a Linux bridge takes none).
	OVS bool
	// VLAN is the network's VLAN on a bridge that carries several (a
	// virtual switch's Open vSwitch bridge): an access NIC's port tag, a
	// trunk's native (untagged) VLAN; 0 leaves the port untagged.
	VLAN int
}

// ConsoleSpec sends the first serial port to a file, appended to, so a
// migrated guest's console continues in the same file.
type ConsoleSpec struct {
	Path string
}

// maxIndex is how many devices each bus takes (drive addresses below).
var maxIndex = map[string]int{"scsi": 256, "sata": 6, "ide": 4, "pci": 32}

func (d DiskSpec) validate() error {
	n, ok := maxIndex[d.Bus]
	switch {
	case !ok:
		return fmt.Errorf("disk %s.%d: bus must be scsi, sata, ide or pci", d.Bus, d.Index)
	case d.Index < 0 || d.Index >= n:
		return fmt.Errorf("disk %s.%d: index out of range 0-%d", d.Bus, d.Index, n-1)
	case d.Path == "" && d.ISCSI == nil && !d.CDROM:
		return fmt.Errorf("disk %s.%d: no volume", d.Bus, d.Index)
	case d.CDROM && d.Bus == "pci":
		return fmt.Errorf("disk %s.%d: a CD-ROM cannot be on the pci bus", d.Bus, d.Index)
	}
	return nil
}

type diskXML struct {
	Type     string      `xml:"type,attr"`
	Device   string      `xml:"device,attr"`
	Driver   *driverXML  `xml:"driver"`
	Source   *sourceXML  `xml:"source"`
	Target   targetXML   `xml:"target"`
	Boot     *bootXML    `xml:"boot"`
	ReadOnly *struct{}   `xml:"readonly"`
	Serial   string      `xml:"serial,omitempty"`
	Address  *addressXML `xml:"address"`
}

type driverXML struct {
	Name  string `xml:"name,attr"`
	Type  string `xml:"type,attr"`
	Cache string `xml:"cache,attr,omitempty"`
}

type sourceXML struct {
	Protocol  string        `xml:"protocol,attr,omitempty"`
	Name      string        `xml:"name,attr,omitempty"`
	Host      *hostXML      `xml:"host"`
	Initiator *initiatorXML `xml:"initiator"`
	File      string        `xml:"file,attr,omitempty"`
	Bridge    string        `xml:"bridge,attr,omitempty"`
	Path      string        `xml:"path,attr,omitempty"`
	Append    string        `xml:"append,attr,omitempty"`
}

type hostXML struct {
	Name string `xml:"name,attr"`
	Port string `xml:"port,attr"`
}

type initiatorXML struct {
	IQN struct {
		Name string `xml:"name,attr"`
	} `xml:"iqn"`
}

type targetXML struct {
	Dev  string `xml:"dev,attr,omitempty"`
	Bus  string `xml:"bus,attr,omitempty"`
	Port *int   `xml:"port,attr"`
}

type bootXML struct {
	Order int `xml:"order,attr"`
}

type addressXML struct {
	Type       string `xml:"type,attr"`
	Controller int    `xml:"controller,attr"`
	Bus        int    `xml:"bus,attr"`
	Target     int    `xml:"target,attr"`
	Unit       int    `xml:"unit,attr"`
}

type controllerXML struct {
	Type  string `xml:"type,attr"`
	Index int    `xml:"index,attr"`
	Model string `xml:"model,attr,omitempty"`
}

type interfaceXML struct {
	XMLName xml.Name   `xml:"interface"`
	Type    string     `xml:"type,attr"`
	MAC     *macXML    `xml:"mac"`
	Source  *sourceXML `xml:"source"`
	Port    *portXML   `xml:"virtualport"`
	VLAN    *vlanXML   `xml:"vlan"`
	Link    *linkXML   `xml:"link"`
	Model   *modelXML  `xml:"model"`
}

// portXML is a NIC's virtual port on an Open vSwitch bridge.
type portXML struct {
	Type string `xml:"type,attr,omitempty"`
	// Parameters carry the port's interfaceid, which libvirt makes when
	// the domain is defined; a live update must send it unchanged.
	Parameters *struct {
		InterfaceID string `xml:"interfaceid,attr,omitempty"`
	} `xml:"parameters"`
}

type vlanXML struct {
	Trunk string   `xml:"trunk,attr,omitempty"`
	Tags  []tagXML `xml:"tag"`
}

type tagXML struct {
	ID         int    `xml:"id,attr"`
	NativeMode string `xml:"nativeMode,attr,omitempty"`
}

type linkXML struct {
	State string `xml:"state,attr"`
}

type macXML struct {
	Address string `xml:"address,attr"`
}

type modelXML struct {
	Type string `xml:"type,attr"`
}

type serialXML struct {
	Type   string     `xml:"type,attr"`
	Source *sourceXML `xml:"source"`
	Target *targetXML `xml:"target"`
}

// diskSource is where a vDisk's bytes come from: the one place that knows
// vDisks are files in the container directory, or iSCSI LUNs.
func diskSource(d DiskSpec) (typ string, drv *driverXML, src *sourceXML) {
	if i := d.ISCSI; i != nil {
		host, port, _ := net.SplitHostPort(i.Portal)
		src := &sourceXML{Protocol: "iscsi", Name: i.IQN + "/1", Host: &hostXML{Name: host, Port: port}}
		if i.Initiator != "" {
			src.Initiator = &initiatorXML{}
			src.Initiator.IQN.Name = i.Initiator
		}
		return "network", &driverXML{Name: "qemu", Type: "raw", Cache: "none"}, src
	}
	if d.Path == "" {
		return "file", &driverXML{Name: "qemu", Type: "raw"}, nil
	}
	// cache=none: no host page cache between the guest and the shared
	// container, so the destination of a migration reads what the source wrote.
	return "file", &driverXML{Name: "qemu", Type: "raw", Cache: "none"}, &sourceXML{File: d.Path}
}

// devPrefix: libvirt names scsi and sata disks sdX, ide hdX, virtio vdX.
var devPrefix = map[string]string{"scsi": "sd", "sata": "sd", "ide": "hd", "pci": "vd"}

// busXML is libvirt's name for acli's bus.
var busXML = map[string]string{"scsi": "scsi", "sata": "sata", "ide": "ide", "pci": "virtio"}

// diskDevices renders disks in bus-then-index order, with the controllers
// they need; the boot device gets boot order 1.
func diskDevices(disks []DiskSpec) ([]diskXML, []controllerXML, error) {
	disks = slices.Clone(disks)
	slices.SortStableFunc(disks, func(a, b DiskSpec) int {
		if a.Bus != b.Bus {
			return cmpBus(a.Bus, b.Bus)
		}
		return a.Index - b.Index
	})
	var out []diskXML
	var ctrls []controllerXML
	letters := map[string]int{}
	seen := map[string]bool{}
	boots := 0
	for _, d := range disks {
		if err := d.validate(); err != nil {
			return nil, nil, err
		}
		key := fmt.Sprintf("%s.%d", d.Bus, d.Index)
		if seen[key] {
			return nil, nil, fmt.Errorf("disk %s appears twice", key)
		}
		seen[key] = true
		p := devPrefix[d.Bus]
		typ, drv, src := diskSource(d)
		x := diskXML{
			Type: typ, Device: "disk", Driver: drv, Source: src,
			Target: targetXML{Dev: p + driveLetters(letters[p]), Bus: busXML[d.Bus]},
			Serial: d.Serial,
		}
		letters[p]++
		if d.CDROM {
			x.Device, x.ReadOnly = "cdrom", &struct{}{}
		}
		if d.Boot {
			boots++
			x.Boot = &bootXML{Order: 1}
		}
		switch d.Bus {
		case "scsi":
			x.Address = &addressXML{Type: "drive", Unit: d.Index}
			if len(ctrls) == 0 || ctrls[len(ctrls)-1].Type != "scsi" {
				ctrls = append(ctrls, controllerXML{Type: "scsi", Model: "virtio-scsi"})
			}
		case "sata":
			x.Address = &addressXML{Type: "drive", Unit: d.Index}
			ctrls = appendOnce(ctrls, controllerXML{Type: "sata"})
		case "ide":
			x.Address = &addressXML{Type: "drive", Bus: d.Index / 2, Unit: d.Index % 2}
		}
		out = append(out, x)
	}
	if boots > 1 {
		return nil, nil, fmt.Errorf("%d boot devices, want at most one", boots)
	}
	return out, ctrls, nil
}

func appendOnce(cs []controllerXML, c controllerXML) []controllerXML {
	if slices.Contains(cs, c) {
		return cs
	}
	return append(cs, c)
}

// cmpBus orders buses as acli lists disks.
func cmpBus(a, b string) int {
	order := []string{"scsi", "sata", "ide", "pci"}
	return slices.Index(order, a) - slices.Index(order, b)
}

// driveLetters is libvirt's a, b, ..., z, aa, ab, ... naming.
func driveLetters(i int) string {
	s := ""
	for i++; i > 0; i = (i - 1) / 26 {
		s = string(rune('a'+(i-1)%26)) + s
	}
	return s
}

func nicDevices(nics []NICSpec) ([]interfaceXML, error) {
	var out []interfaceXML
	for _, n := range nics {
		if _, err := net.ParseMAC(n.MAC); err != nil {
			return nil, fmt.Errorf("nic %q: %v", n.MAC, err)
		}
		if n.Bridge == "" {
			return nil, fmt.Errorf("nic %s: no bridge", n.MAC)
		}
		model := n.Model
		if model == "" {
			model = "virtio"
		}
		out = append(out, nicXML(n, model))
	}
	return out, nil
}

// nicXML is one <interface>: VLAN tags for a trunk, link state when down.
func nicXML(n NICSpec, model string) interfaceXML {
	x := interfaceXML{Type: "bridge", MAC: &macXML{Address: n.MAC}, Source: &sourceXML{Bridge: n.Bridge}, Model: &modelXML{Type: model}}
	if n.OVS {
		x.Port = &portXML{Type: "openvswitch"}
	}
	switch {
	case len(n.Trunk) > 0:
		x.VLAN = &vlanXML{Trunk: "yes"}
		switch {
		case n.VLAN > 0:
			x.VLAN.Tags = append(x.VLAN.Tags, tagXML{ID: n.VLAN, NativeMode: "untagged"})
		case n.OVS:
			// Open vSwitch takes untagged frames as VLAN 0: trunked,
			// the network's own (untagged) traffic still passes.
			x.VLAN.Tags = append(x.VLAN.Tags, tagXML{ID: 0})
		}
		for _, id := range n.Trunk {
			x.VLAN.Tags = append(x.VLAN.Tags, tagXML{ID: id})
		}
	case n.VLAN > 0:
		x.VLAN = &vlanXML{Tags: []tagXML{{ID: n.VLAN}}}
	}
	if n.LinkDown {
		x.Link = &linkXML{State: "down"}
	}
	return x
}

func serialDevices(c *ConsoleSpec) []serialXML {
	if c == nil || c.Path == "" {
		return nil
	}
	port := 0
	return []serialXML{{Type: "file", Source: &sourceXML{Path: c.Path, Append: "on"}, Target: &targetXML{Port: &port}}}
}

// parseDevices reads disks, NICs and the console back from libvirt's XML.
func parseDevices(d devicesXML) ([]DiskSpec, []NICSpec, *ConsoleSpec) {
	var disks []DiskSpec
	for _, x := range d.Disks {
		s := DiskSpec{CDROM: x.Device == "cdrom", Serial: x.Serial, Boot: x.Boot != nil && x.Boot.Order == 1}
		for bus, lx := range busXML {
			if lx == x.Target.Bus {
				s.Bus = bus
			}
		}
		if x.Source != nil {
			s.Path = x.Source.File
			if src := x.Source; src.Protocol == "iscsi" && src.Host != nil {
				s.ISCSI = &ISCSISource{Portal: net.JoinHostPort(src.Host.Name, src.Host.Port), IQN: strings.TrimSuffix(src.Name, "/1")}
				if src.Initiator != nil {
					s.ISCSI.Initiator = src.Initiator.IQN.Name
				}
			}
		}
		if a := x.Address; a != nil && a.Type == "drive" {
			s.Index = a.Unit
			if s.Bus == "ide" {
				s.Index = a.Bus*2 + a.Unit
			}
		} else if s.Bus == "pci" {
			s.Index = len(slices.DeleteFunc(slices.Clone(disks), func(o DiskSpec) bool { return o.Bus != "pci" }))
		}
		disks = append(disks, s)
	}
	var nics []NICSpec
	for _, x := range d.Interfaces {
		n := NICSpec{}
		if x.MAC != nil {
			n.MAC = x.MAC.Address
		}
		if x.Source != nil {
			n.Bridge = x.Source.Bridge
		}
		if x.Model != nil {
			n.Model = x.Model.Type
		}
		if v := x.VLAN; v != nil {
			for _, t := range v.Tags {
				switch {
				case v.Trunk != "yes" && len(v.Tags) == 1, t.NativeMode != "":
					n.VLAN = t.ID
				case t.ID == 0: // untagged frames on a trunk (nicXML)
				default:
					n.Trunk = append(n.Trunk, t.ID)
				}
			}
		}
		n.LinkDown = x.Link != nil && x.Link.State == "down"
		n.OVS = x.Port != nil && x.Port.Type == "openvswitch"
		nics = append(nics, n)
	}
	var con *ConsoleSpec
	for _, x := range d.Serials {
		if x.Type == "file" && x.Source != nil {
			con = &ConsoleSpec{Path: x.Source.Path}
			break
		}
	}
	return disks, nics, con
}
