package libvirt

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	golibvirt "github.com/digitalocean/go-libvirt"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Bridges for acli networks. With Config.NetworkBridges, a VM's NICs are
// plugged, on whichever host runs the VM, into its virtual switch's bridge
// when that is an Open vSwitch bridge (a port tagged with the network's
// VLAN), else into the bridge named for their network; the hosts provide
// the bridges (and their VLAN uplinks), Linux bridges or Open vSwitch ones
// (bridge.go).

var ifname = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// BridgeName is the bridge of an acli network: acli-<network>, or, when
// that is no valid interface name (15 bytes at most), acli- and a hash.
func BridgeName(network string) string {
	if n := "acli-" + network; len(n) <= 15 && ifname.MatchString(network) {
		return n
	}
	h := sha256.Sum256([]byte(network))
	return "acli-" + hex.EncodeToString(h[:])[:10]
}

// VmNICs are a VM's NICs, each on its network's bridge.
func VmNICs(vm *acliv1.Vm) []NICSpec {
	out := make([]NICSpec, 0, len(vm.Nics))
	for _, n := range vm.Nics {
		out = append(out, nicSpec(n))
	}
	return out
}

func nicSpec(n *acliv1.Nic) NICSpec {
	s := NICSpec{MAC: n.Mac, Bridge: BridgeName(n.NetworkName), Model: n.Model, LinkDown: n.Disconnected}
	if n.VlanMode == acliv1.NetworkMode_kTrunked {
		for _, id := range n.TrunkedNetworks {
			s.Trunk = append(s.Trunk, int(id))
		}
	}
	return s
}

// vlanRefused says why libvirt refused a VM with a trunked NIC: it sets
// VLAN tags only on Open vSwitch ports, and the NIC's bridge on that host
// is a Linux bridge. Other errors pass unchanged.
func vlanRefused(vm *acliv1.Vm, host *acliv1.Host, err error) error {
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "vlan") {
		return err
	}
	for _, n := range vm.Nics {
		if n.VlanMode != acliv1.NetworkMode_kTrunked || len(n.TrunkedNetworks) == 0 {
			continue
		}
		tags := make([]string, len(n.TrunkedNetworks))
		for i, id := range n.TrunkedNetworks {
			tags[i] = strconv.Itoa(int(id))
		}
		return fmt.Errorf("vm %s cannot start on host %s: NIC %s is trunked (VLANs %s) and bridge %s there is a Linux bridge, "+
			"whose ports libvirt does not tag; make the NIC vlan_mode=kAccess or give the host an Open vSwitch bridge (libvirt: %w)",
			vm.Name, host.Name, n.Mac, strings.Join(tags, ","), BridgeName(n.NetworkName), err)
	}
	return err
}

// UpdateNic implements driver.NicUpdater: the NIC of the running domain
// is changed in place (link state, VLAN tags) and in its definition.
func (d *Driver) UpdateNic(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm, nic *acliv1.Nic) error {
	if !d.cfg.NetworkBridges {
		return nil // domains get no NICs
	}
	c, err := d.conn(host)
	if err != nil {
		return err
	}
	spec, err := d.hostNICs(ctx, host, []*acliv1.Nic{nic})
	if err != nil {
		return err
	}
	x := nicXML(spec[0], cmp.Or(nic.Model, "virtio"))
	return vlanRefused(vm, host, c.do("update nic "+nic.Mac, vm.Uuid, func(dom golibvirt.Domain) error {
		if x.Port != nil {
			// libvirt changes an Open vSwitch port in place only when it
			// keeps the interfaceid libvirt gave it.
			cur, err := c.l.DomainGetXMLDesc(dom, 0)
			if err != nil {
				return err
			}
			x.Port = livePort(cur, nic.Mac, x.Port)
		}
		b, err := xml.Marshal(x)
		if err != nil {
			return err
		}
		return c.l.DomainUpdateDeviceFlags(dom, string(b), golibvirt.DomainDeviceModifyLive|golibvirt.DomainDeviceModifyConfig)
	}))
}

// livePort is the virtual port of the NIC with mac in a domain's XML, or
// def when it has none.
func livePort(domain, mac string, def *portXML) *portXML {
	var d domainXML
	if xml.Unmarshal([]byte(domain), &d) != nil {
		return def
	}
	for _, n := range d.Devices.Interfaces {
		if n.MAC != nil && strings.EqualFold(n.MAC.Address, mac) && n.Port != nil && n.Port.Type == def.Type {
			return n.Port
		}
	}
	return def
}

// Live migration between hosts whose bridges differ (an Open vSwitch
// switch bridge on one, Linux bridges on the other): the destination's
// definition plugs each NIC as the destination does (hostNICs).

// ifaceElem matches one <interface> of a domain's XML; libvirt never nests them.
var ifaceElem = regexp.MustCompile(`(?s)<interface\b[^>]*>.*?</interface>`)

// xmlNode is any element, kept whole but for what is changed.
type xmlNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []xmlNode  `xml:",any"`
	Text    string     `xml:",chardata"`
}

// WithNICs is a domain's XML with each interface plugged as nics say
// (matched by MAC): its source bridge, Open vSwitch virtual port and VLAN
// tags; its model, address and the rest stay, as migration requires.
func WithNICs(domain string, nics []NICSpec) (string, error) {
	var err error
	out := ifaceElem.ReplaceAllStringFunc(domain, func(elem string) string {
		var x xmlNode
		if e := xml.Unmarshal([]byte(elem), &x); e != nil {
			err = fmt.Errorf("interface of the domain: %v", e)
			return elem
		}
		var mac string
		for _, c := range x.Nodes {
			if c.XMLName.Local == "mac" {
				mac = c.attr("address")
			}
		}
		i := slices.IndexFunc(nics, func(n NICSpec) bool { return strings.EqualFold(n.MAC, mac) })
		if i < 0 {
			return elem
		}
		want, e := asNode(nicXML(nics[i], "virtio"))
		if e != nil {
			err = e
			return elem
		}
		kept := x.Nodes[:0]
		for _, c := range x.Nodes {
			switch c.XMLName.Local {
			case "source":
				c.setAttr("bridge", nics[i].Bridge)
			case "virtualport":
				if !nics[i].OVS || c.attr("type") != "openvswitch" {
					continue // replaced below (or dropped)
				}
				want.drop("virtualport") // keep the port's interfaceid
			case "vlan":
				continue
			}
			kept = append(kept, c)
		}
		for _, c := range want.Nodes {
			if c.XMLName.Local == "virtualport" || c.XMLName.Local == "vlan" {
				kept = append(kept, c)
			}
		}
		x.Nodes, x.Text = kept, ""
		b, e := xml.Marshal(x)
		if e != nil {
			err = e
			return elem
		}
		return string(b)
	})
	return out, err
}

func asNode(v any) (xmlNode, error) {
	var n xmlNode
	b, err := xml.Marshal(v)
	if err == nil {
		err = xml.Unmarshal(b, &n)
	}
	return n, err
}

func (n *xmlNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n *xmlNode) setAttr(name, v string) {
	for i, a := range n.Attrs {
		if a.Name.Local == name {
			n.Attrs[i].Value = v
			return
		}
	}
	n.Attrs = append(n.Attrs, xml.Attr{Name: xml.Name{Local: name}, Value: v})
}

func (n *xmlNode) drop(name string) {
	n.Nodes = slices.DeleteFunc(n.Nodes, func(c xmlNode) bool { return c.XMLName.Local == name })
}
