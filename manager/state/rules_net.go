package state

import (
	"net/netip"
	"slices"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

func nicIPKey(network, ip string) string { return network + "/" + ip }

// indexIPsLocked adds (or removes) a VM's NIC addresses in db.nicIPs.
func (db *DB) indexIPsLocked(id string, msg proto.Message, add bool) {
	v, _ := msg.(*acliv1.Vm)
	for _, nic := range v.GetNics() {
		if nic.Ip == "" {
			continue
		}
		k := nicIPKey(nic.NetworkUuid, nic.Ip)
		holder, held := db.nicIPs[k]
		switch {
		case add && !held:
			db.ipsUsed[nic.NetworkUuid]++
			db.nicIPs[k] = id
		case add:
			db.nicIPs[k] = id
		case holder == id:
			delete(db.nicIPs, k)
			if db.ipsUsed[nic.NetworkUuid]--; db.ipsUsed[nic.NetworkUuid] == 0 {
				delete(db.ipsUsed, nic.NetworkUuid)
			}
		}
	}
}

// checkIPs is the IP rule for one VM write: each address a NIC gains lies
// inside its network's ip_config, and no other VM's NIC on that network
// has it once the transaction's writes are in (seen: the addresses written
// earlier in it).
func (tx *Tx) checkIPs(id string, prev, next *acliv1.Vm, seen map[string]string) []Violation {
	had, has := map[string]int{}, map[string]int{}
	for _, nic := range prev.GetNics() {
		had[nicIPKey(nic.NetworkUuid, nic.Ip)]++
	}
	var vs []Violation
	for _, nic := range next.Nics {
		if nic.Ip == "" {
			continue
		}
		k := nicIPKey(nic.NetworkUuid, nic.Ip)
		// Two NICs of one VM sharing an address is refused too, unless
		// the record had them already.
		if has[k]++; has[k] > 1 && has[k] > had[k] {
			vs = append(vs, Violation{Rule: RuleIP, Subject: "vm:" + next.Name,
				Description: "ip " + nic.Ip + " is given to two NICs of vm " + next.Name + " on the same network"})
			continue
		}
		if other := seen[k]; other != "" && other != id {
			vs = append(vs, Violation{Rule: RuleIP, Subject: "vm:" + next.Name,
				Description: "ip " + nic.Ip + " of vm " + next.Name + " is taken by vm " + tx.Vm(other).GetName() + " on the same network"})
			continue
		}
		seen[k] = id
		if had[k] > 0 {
			continue // kept, not gained
		}
		if other := tx.db.nicIPs[k]; other != "" && other != id && hasIP(tx.Vm(other), nic.NetworkUuid, nic.Ip) {
			vs = append(vs, Violation{Rule: RuleIP, Subject: "vm:" + next.Name,
				Description: "ip " + nic.Ip + " of vm " + next.Name + " is taken by vm " + tx.Vm(other).GetName() + " on the same network"})
			continue
		}
		n := tx.Network(nic.NetworkUuid)
		p, err := netip.ParsePrefix(n.GetIpConfig())
		a, aerr := netip.ParseAddr(nic.Ip)
		if aerr != nil || err == nil && !p.Contains(a) {
			vs = append(vs, Violation{Rule: RuleIP, Subject: "vm:" + next.Name,
				Description: "ip " + nic.Ip + " of vm " + next.Name + " is outside network " + n.GetName() + " (" + n.GetIpConfig() + ")"})
		}
	}
	return vs
}

func hasIP(v *acliv1.Vm, network, ip string) bool {
	for _, nic := range v.GetNics() {
		if nic.NetworkUuid == network && nic.Ip == ip {
			return true
		}
	}
	return false
}

// checkMACs is the MAC rule for one VM write: a MAC a NIC gains is no
// other NIC's, of this VM or another, once the transaction's writes are in
// (seen: the MACs written earlier in it).
func (tx *Tx) checkMACs(id string, prev, next *acliv1.Vm, seen map[string]string) []Violation {
	had, has := map[string]int{}, map[string]int{}
	for _, nic := range prev.GetNics() {
		had[nic.Mac]++
	}
	var vs []Violation
	for _, nic := range next.Nics {
		if nic.Mac == "" {
			continue
		}
		taken := ""
		if has[nic.Mac]++; has[nic.Mac] > 1 && has[nic.Mac] > had[nic.Mac] {
			taken = "another NIC of vm " + next.Name
		} else if other := seen[nic.Mac]; other != "" && other != id {
			taken = "vm " + tx.Vm(other).GetName()
		} else if other := tx.db.macs[nic.Mac]; had[nic.Mac] == 0 && other != "" && other != id && tx.Vm(other) != nil &&
			slices.ContainsFunc(tx.Vm(other).Nics, func(n *acliv1.Nic) bool { return n.Mac == nic.Mac }) {
			taken = "vm " + tx.Vm(other).GetName()
		}
		seen[nic.Mac] = id
		if taken != "" {
			vs = append(vs, Violation{Rule: RuleMAC, Subject: "vm:" + next.Name,
				Description: "MAC " + nic.Mac + " of vm " + next.Name + " is taken by " + taken})
		}
	}
	return vs
}
