package sim

import (
	"context"
	"fmt"
	"slices"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
)

// Bridge is a virtual switch as one simulated hypervisor has it: its
// bridge, MTU, bond and the physical interfaces bonded as its uplink.
type Bridge struct {
	Name    string
	MTU     int32
	Bond    string
	LACP    bool
	Uplinks []string
	// Active is the uplink an active-backup bond uses ("" when the bond
	// picks, or is not active-backup).
	Active string
}

// HostNICs are the physical interfaces of every simulated host (two 10G,
// two 1G, as on an NX node).
var HostNICs = []string{"eth0", "eth1", "eth2", "eth3"}

// defaultBridge is vs0 on a host nobody has wired: br0 over every NIC.
func defaultBridge() Bridge {
	return Bridge{Name: "br0", MTU: 1500, Bond: "kActiveBackup", Uplinks: slices.Clone(HostNICs)}
}

var _ driver.SwitchWirer = (*Driver)(nil)

// WireSwitch implements driver.SwitchWirer on every host, or on none: a
// host that is down, or lacks an uplink named, refuses the change.
func (d *Driver) WireSwitch(ctx context.Context, vs *acliv1.VirtualSwitch) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := Bridge{Name: vs.BridgeName, MTU: vs.Mtu, Bond: vs.BondType, LACP: vs.Lacp, Uplinks: slices.Clone(vs.Uplinks)}
	if len(b.Uplinks) == 0 {
		b.Uplinks = slices.Clone(HostNICs)
	}
	for _, h := range d.order {
		if !h.up {
			return fmt.Errorf("host %s is down, so its bridge %s cannot change; recover it first", h.name, b.Name)
		}
		for _, u := range b.Uplinks {
			if !slices.Contains(HostNICs, u) {
				return fmt.Errorf("host %s has no interface %s (it has %s)", h.name, u, strings.Join(HostNICs, ", "))
			}
		}
		if a := driver.ActiveUplink(vs, h.uuid); a != "" && !slices.Contains(b.Uplinks, a) {
			return fmt.Errorf("host %s: active uplink %s is not in its bond (%s)", h.name, a, strings.Join(b.Uplinks, ", "))
		}
		for name, other := range h.bridges {
			if name != vs.Name && other.Name == b.Name {
				return fmt.Errorf("host %s: bridge %s belongs to virtual switch %s", h.name, b.Name, name)
			}
		}
	}
	for _, h := range d.order {
		if h.bridges == nil {
			h.bridges = map[string]Bridge{}
		}
		hb := b
		hb.Uplinks = slices.Clone(b.Uplinks)
		hb.Active = driver.ActiveUplink(vs, h.uuid)
		h.bridges[vs.Name] = hb
	}
	return nil
}

// Bridge is virtual switch vs as host has it (ok false: no such host, or
// a switch other than vs0 it was never given).
func (d *Driver) Bridge(hostUUID, vs string) (Bridge, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hosts[hostUUID]
	if h == nil {
		return Bridge{}, false
	}
	if b, ok := h.bridges[vs]; ok {
		return b, true
	}
	return defaultBridge(), vs == "vs0"
}
