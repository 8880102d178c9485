package network

import (
	"fmt"
	"net/netip"
	"slices"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
)

// NicVLAN checks a NIC's VLAN settings: kAccess carries only its
// network's VLAN; kTrunked carries the listed VLANs too (0-4094, no
// repeats). It returns the list as kept (sorted).
func NicVLAN(mode acliv1.NetworkMode, trunked []int32) ([]int32, error) {
	switch mode {
	case acliv1.NetworkMode_kAccess:
		if len(trunked) > 0 {
			return nil, apierr.BadField("trunked_networks", "trunked_networks needs vlan_mode=kTrunked (an access NIC carries only its network's VLAN)")
		}
		return nil, nil
	case acliv1.NetworkMode_kTrunked:
	default:
		return nil, apierr.BadField("vlan_mode", "vlan_mode %d is unknown; use kAccess or kTrunked", mode)
	}
	out := slices.Clone(trunked)
	slices.Sort(out)
	for i, v := range out {
		if v < 0 || v > 4094 {
			return nil, apierr.BadField("trunked_networks", "trunked_networks: vlan %d is out of range; use 0 to 4094", v)
		}
		if i > 0 && out[i-1] == v {
			return nil, apierr.BadField("trunked_networks", "trunked_networks: vlan %d is listed twice", v)
		}
	}
	return out, nil
}

// NicAddr picks a new NIC's address on n: ip when given (checked against
// the subnet and the addresses taken), else the next free one of a managed
// network's pools, else none.
func NicAddr(n *acliv1.Network, ip netip.Addr, taken func(netip.Addr) string) (netip.Addr, error) {
	if ip.IsValid() {
		if why := CheckAddr(n, ip); why != "" {
			return netip.Addr{}, apierr.BadField("ip", "%s", why)
		}
		if owner := taken(ip); owner != "" {
			return netip.Addr{}, apierr.Precondition("IP_TAKEN", "network:"+n.GetName(),
				"ip %s on network %s is taken by vm %s", ip, n.GetName(), owner)
		}
		return ip, nil
	}
	if !Managed(n) {
		return netip.Addr{}, nil
	}
	return Next(n, func(a netip.Addr) bool { return taken(a) != "" })
}

// Taken indexes the addresses of the NICs on one network: address -> VM name.
func Taken(vms []*acliv1.Vm, network string) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, v := range vms {
		for _, nic := range v.GetNics() {
			if nic.NetworkUuid != network || nic.Ip == "" {
				continue
			}
			if a, err := netip.ParseAddr(nic.Ip); err == nil {
				out[a] = v.GetName()
			}
		}
	}
	return out
}

// NicText is how a NIC's VLAN settings read in a task message.
func NicText(nic *acliv1.Nic) string {
	s := "access"
	if nic.VlanMode == acliv1.NetworkMode_kTrunked {
		s = fmt.Sprintf("trunked %v", nic.TrunkedNetworks)
	}
	if nic.Disconnected {
		s += ", disconnected"
	}
	return s
}
