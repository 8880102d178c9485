package network

import (
	"regexp"
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

// UpdateSwitch applies req to a copy of cur, checking every field.
func UpdateSwitch(cur *acliv1.VirtualSwitch, req *acliv1.UpdateVirtualSwitchRequest) (*acliv1.VirtualSwitch, []string, error) {
	next := &acliv1.VirtualSwitch{Name: cur.Name, BridgeName: cur.BridgeName, Mtu: cur.Mtu, BondType: cur.BondType,
		Lacp: cur.Lacp, Uplinks: append([]string(nil), cur.Uplinks...), Description: cur.Description}
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
	if len(changed) == 0 {
		return nil, nil, apierr.BadField("name", "nothing to update: give at least one of mtu, bond_type, lacp, uplinks, bridge_name, description")
	}
	return next, changed, nil
}
