// Package network holds the network feature's rules: a managed network's
// address plan (ip_config, gateway, DHCP pools, DNS), which address a NIC
// gets, NIC VLAN settings and the virtual switch. It decides; the manager
// commits, and manager/state checks again at commit that no address is
// taken twice.
package network

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
)

// ParseIPConfig reads acli's ip_config=<gateway>/<prefix>: the network
// (masked) and the gateway, unset when the address given is the network's
// own (10.0.0.0/24 names a network without a gateway).
func ParseIPConfig(s string) (netip.Prefix, netip.Addr, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, apierr.BadField("ip_config", "ip_config %q is not an address with prefix, e.g. 10.1.0.1/24 (gateway/prefix)", s)
	}
	if p.Addr().Is4() && p.Bits() > 30 {
		return netip.Prefix{}, netip.Addr{}, apierr.BadField("ip_config", "ip_config %s leaves no addresses for NICs; use a prefix of /30 or shorter", s)
	}
	net := p.Masked()
	if p.Addr() == net.Addr() {
		return net, netip.Addr{}, nil
	}
	if p.Addr().Is4() && p.Addr() == broadcast(net) {
		return netip.Prefix{}, netip.Addr{}, apierr.BadField("ip_config", "ip_config %s: the gateway cannot be the broadcast address", s)
	}
	return net, p.Addr(), nil
}

// Subnet is a managed network's prefix (ok false when unmanaged).
func Subnet(n *acliv1.Network) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(n.GetIpConfig())
	return p, err == nil
}

// Managed reports whether NICs on n take addresses from it.
func Managed(n *acliv1.Network) bool {
	_, ok := Subnet(n)
	return ok
}

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// CheckAddr says why ip cannot be a NIC's address on n ("" if it can).
// It does not look at the other NICs (Taken does).
func CheckAddr(n *acliv1.Network, ip netip.Addr) string {
	p, ok := Subnet(n)
	if !ok {
		return ""
	}
	switch {
	case !p.Contains(ip):
		return fmt.Sprintf("ip %s is outside network %s (%s)", ip, n.GetName(), p)
	case ip == p.Addr():
		return fmt.Sprintf("ip %s is the address of network %s itself", ip, n.GetName())
	case ip.Is4() && ip == broadcast(p):
		return fmt.Sprintf("ip %s is the broadcast address of network %s", ip, n.GetName())
	case n.GetDefaultGateway() == ip.String():
		return fmt.Sprintf("ip %s is the gateway of network %s", ip, n.GetName())
	}
	return ""
}

// NewPool checks start..end as a new pool of n: inside the subnet, in
// order, clear of the gateway and of the pools n has.
func NewPool(n *acliv1.Network, start, end string) (*acliv1.DhcpPool, error) {
	p, ok := Subnet(n)
	if !ok {
		return nil, apierr.Precondition("UNMANAGED", "network:"+n.GetName(),
			"network %s has no ip_config; create it with ip_config=<gateway>/<prefix> to give it DHCP pools", n.GetName())
	}
	var ends [2]netip.Addr
	for i, s := range []string{start, end} {
		field := [2]string{"start", "end"}[i]
		if s == "" {
			return nil, apierr.BadField(field, "%s is required: give the pool's %s address, e.g. %s", field, [2]string{"first", "last"}[i], p.Addr().Next())
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, apierr.BadField(field, "%s %q is not an IP address, e.g. %s", field, s, p.Addr().Next())
		}
		if why := CheckAddr(n, a); why != "" {
			return nil, apierr.BadField(field, "%s: %s", field, why)
		}
		ends[i] = a
	}
	if ends[1].Less(ends[0]) {
		return nil, apierr.BadField("end", "end %s comes before start %s", ends[1], ends[0])
	}
	if gw, err := netip.ParseAddr(n.GetDefaultGateway()); err == nil && !gw.Less(ends[0]) && !ends[1].Less(gw) {
		return nil, apierr.BadField("start", "pool %s-%s holds the gateway %s of network %s", ends[0], ends[1], gw, n.GetName())
	}
	for _, o := range n.GetDhcpPools() {
		os, _ := netip.ParseAddr(o.Start)
		oe, _ := netip.ParseAddr(o.End)
		if !ends[1].Less(os) && !oe.Less(ends[0]) {
			return nil, apierr.Precondition("POOL_OVERLAP", "network:"+n.GetName(),
				"pool %s-%s overlaps pool %s-%s of network %s", ends[0], ends[1], o.Start, o.End, n.GetName())
		}
	}
	return &acliv1.DhcpPool{Start: ends[0].String(), End: ends[1].String()}, nil
}

// Next is the first address of n's pools that is not taken, in pool order
// (none when n has no pools).
func Next(n *acliv1.Network, taken func(netip.Addr) bool) (netip.Addr, error) {
	if len(n.GetDhcpPools()) == 0 {
		return netip.Addr{}, nil // nothing to give out yet: the NIC has no address
	}
	for _, pool := range n.GetDhcpPools() {
		s, err1 := netip.ParseAddr(pool.Start)
		e, err2 := netip.ParseAddr(pool.End)
		if err1 != nil || err2 != nil {
			continue
		}
		for a := s; a.IsValid() && !e.Less(a); a = a.Next() {
			if !taken(a) && CheckAddr(n, a) == "" {
				return a, nil
			}
		}
	}
	return netip.Addr{}, apierr.Precondition("POOL_EXHAUSTED", "network:"+n.GetName(),
		"network %s has no free address left in its DHCP pools (%s)", n.GetName(), PoolsText(n))
}

// PoolsText lists n's pools as start-end, comma-separated.
func PoolsText(n *acliv1.Network) string {
	var s []string
	for _, p := range n.GetDhcpPools() {
		s = append(s, p.Start+"-"+p.End)
	}
	return strings.Join(s, ", ")
}

// ParseDNS checks acli's servers= (addresses) and domains= (names), both
// comma lists; an empty value clears.
func ParseDNS(servers, domains *string) (srv, dom []string, err error) {
	if servers != nil {
		for _, s := range splitList(*servers) {
			a, perr := netip.ParseAddr(s)
			if perr != nil {
				return nil, nil, apierr.BadField("servers", "servers: %q is not an IP address, e.g. 10.0.0.10", s)
			}
			srv = append(srv, a.String())
		}
	}
	if domains != nil {
		for _, d := range splitList(*domains) {
			if !validDomain(d) {
				return nil, nil, apierr.BadField("domains", "domains: %q is not a domain name, e.g. example.local", d)
			}
			dom = append(dom, strings.ToLower(d))
		}
	}
	return srv, dom, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func validDomain(d string) bool {
	if len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(d, "."), ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
