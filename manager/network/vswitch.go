package network

import (
	"regexp"
	"slices"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
)

// DefaultSwitch is the cluster's virtual switch before anyone changes it,
// as AHV sets up vs0: bridge br0, MTU 1500, active-backup bond.
const DefaultSwitch = "vs0"

// BondTypes are acli's bond modes.
var BondTypes = []string{"kActiveBackup", "kBalanceSlb", "kBalanceTcp", "kNone"}

// Switch is vs's record, or the default vs0 when none was stored.
func Switch(stored *acliv1.VirtualSwitch) *acliv1.VirtualSwitch {
	if stored != nil {
		return stored
	}
	return &acliv1.VirtualSwitch{Name: DefaultSwitch, BridgeName: "br0", Mtu: 1500, BondType: "kActiveBackup"}
}

var ifaceName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// UpdateSwitch applies req to a copy of cur, checking every field; hosts
// are the cluster's, in host order, for active_uplink.
func UpdateSwitch(cur *acliv1.VirtualSwitch, req *acliv1.UpdateVirtualSwitchRequest, hosts []*acliv1.Host) (*acliv1.VirtualSwitch, []string, error) {
	next := &acliv1.VirtualSwitch{Name: cur.Name, BridgeName: cur.BridgeName, Mtu: cur.Mtu, BondType: cur.BondType,
		Lacp: cur.Lacp, Uplinks: append([]string(nil), cur.Uplinks...), Description: cur.Description,
		ActiveUplinks: slices.Clone(cur.ActiveUplinks)}
	var changed []string
	if req.Mtu != nil {
		if *req.Mtu < 576 || *req.Mtu > 9216 {
			return nil, nil, apierr.BadField("mtu", "mtu %d is out of range; use 576 to 9216 (1500 standard, 9000 jumbo)", *req.Mtu)
		}
		next.Mtu = *req.Mtu
		changed = append(changed, "mtu")
	}
	if req.BondType != nil {
		bt, want := "", strings.ReplaceAll(strings.ReplaceAll(*req.BondType, "_", ""), "-", "")
		for _, b := range BondTypes {
			if strings.EqualFold(b, want) || strings.EqualFold(b[1:], want) {
				bt = b
			}
		}
		if bt == "" {
			msg := "use kActiveBackup, kBalanceSlb, kBalanceTcp or kNone"
			if s := apierr.Nearest(*req.BondType, BondTypes); s != "" {
				msg = "did you mean " + s + "?"
			}
			return nil, nil, apierr.BadField("bond_type", "bond_type %q is unknown; %s", *req.BondType, msg)
		}
		next.BondType = bt
		changed = append(changed, "bond_type")
	}
	if req.Lacp != nil {
		next.Lacp = *req.Lacp
		changed = append(changed, "lacp")
	}
	if next.Lacp && next.BondType != "kBalanceTcp" {
		return nil, nil, apierr.BadField("lacp", "lacp needs bond_type=kBalanceTcp (the bond is %s)", next.BondType)
	}
	if req.Uplinks != nil {
		next.Uplinks = nil
		for _, u := range splitList(*req.Uplinks) {
			if !ifaceName.MatchString(u) {
				return nil, nil, apierr.BadField("uplinks", "uplinks: %q is not an interface name, e.g. eth0", u)
			}
			next.Uplinks = append(next.Uplinks, u)
		}
		changed = append(changed, "uplinks")
	}
	if req.BridgeName != nil {
		if !ifaceName.MatchString(*req.BridgeName) {
			return nil, nil, apierr.BadField("bridge_name", "bridge_name %q is not an interface name (15 characters at most), e.g. br0", *req.BridgeName)
		}
		next.BridgeName = *req.BridgeName
		changed = append(changed, "bridge_name")
	}
	if req.Description != nil {
		next.Description = *req.Description
		changed = append(changed, "description")
	}
	if req.ActiveUplink != nil {
		given, err := ParseActiveUplink(*req.ActiveUplink, hosts)
		if err != nil {
			return nil, nil, err
		}
		next.ActiveUplinks = mergeUplinks(next.ActiveUplinks, given, hosts)
		changed = append(changed, "active_uplink")
	}
	if len(changed) == 0 {
		return nil, nil, apierr.BadField("name", "nothing to update: give at least one of mtu, bond_type, lacp, uplinks, bridge_name, description, active_uplink")
	}
	// The active uplinks follow the bond: none without active-backup, and
	// each among the uplinks.
	if len(next.ActiveUplinks) > 0 && next.BondType != "kActiveBackup" {
		if req.ActiveUplink == nil {
			next.ActiveUplinks = nil
		} else {
			return nil, nil, apierr.BadField("active_uplink", "active_uplink needs bond_type=kActiveBackup (the bond is %s: every uplink is active)", next.BondType)
		}
	}
	for _, u := range next.ActiveUplinks {
		if len(next.Uplinks) > 0 && !slices.Contains(next.Uplinks, u.Interface) {
			return nil, nil, apierr.BadField("active_uplink", "active_uplink: %s of host %s is not one of the uplinks (%s)", u.Interface, u.HostName, strings.Join(next.Uplinks, ", "))
		}
	}
	return next, changed, nil
}

// ParseActiveUplink reads acli's active_uplink='{<host>:<interface>; ...}'
// (braces and the quotes around them optional, for lines no shell read;
// hosts by UUID, name or hypervisor IP, each once).
func ParseActiveUplink(s string, hosts []*acliv1.Host) ([]*acliv1.HostUplink, error) {
	body := strings.TrimSpace(s)
	for _, q := range []string{"'", `"`} {
		if len(body) >= 2 && strings.HasPrefix(body, q) && strings.HasSuffix(body, q) {
			body = strings.TrimSpace(body[1 : len(body)-1])
		}
	}
	if strings.HasPrefix(body, "{") != strings.HasSuffix(body, "}") {
		return nil, apierr.BadField("active_uplink", "active_uplink %q: unbalanced braces; write '{<host>:<interface>; ...}', e.g. '{h1:eth0; h2:eth1}'", s)
	}
	body = strings.TrimSuffix(strings.TrimPrefix(body, "{"), "}")
	var out []*acliv1.HostUplink
	for _, part := range strings.Split(body, ";") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		i := strings.LastIndex(part, ":")
		if i < 0 {
			return nil, apierr.BadField("active_uplink", "active_uplink: %q is not <host>:<interface>, e.g. h1:eth0", part)
		}
		ref, iface := strings.TrimSpace(part[:i]), strings.TrimSpace(part[i+1:])
		if !ifaceName.MatchString(iface) {
			return nil, apierr.BadField("active_uplink", "active_uplink: %q is not an interface name, e.g. eth0", iface)
		}
		h, err := findHost(ref, hosts)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(u *acliv1.HostUplink) bool { return u.HostUuid == h.Uuid }) {
			return nil, apierr.BadField("active_uplink", "active_uplink: host %s is given twice", h.Name)
		}
		out = append(out, &acliv1.HostUplink{HostUuid: h.Uuid, HostName: h.Name, Interface: iface})
	}
	if len(out) == 0 {
		return nil, apierr.BadField("active_uplink", "active_uplink is empty; write '{<host>:<interface>; ...}', e.g. '{h1:eth0; h2:eth1}'")
	}
	return out, nil
}

// findHost is the host ref names among hosts: UUID, name or hypervisor IP.
func findHost(ref string, hosts []*acliv1.Host) (*acliv1.Host, error) {
	names := make([]string, len(hosts))
	for i, h := range hosts {
		if strings.EqualFold(h.Uuid, ref) || h.Name == ref || h.HypervisorIp == ref {
			return h, nil
		}
		names[i] = h.Name
	}
	return nil, apierr.NotFound("host", ref, names)
}

// mergeUplinks is cur with given's hosts replaced, in host order.
func mergeUplinks(cur, given []*acliv1.HostUplink, hosts []*acliv1.Host) []*acliv1.HostUplink {
	by := map[string]*acliv1.HostUplink{}
	for _, u := range cur {
		by[u.HostUuid] = u
	}
	for _, u := range given {
		by[u.HostUuid] = u
	}
	var out []*acliv1.HostUplink
	for _, h := range hosts {
		if u := by[h.Uuid]; u != nil {
			out = append(out, u)
		}
	}
	return out
}
