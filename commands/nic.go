package commands

import (
	"net"
	"strings"
)

// kindMAC names NICs by MAC address in help; they are not listed entities.
const kindMAC Kind = "mac"

// macArg is acli's positional MAC (vm.nic_delete <vm> <mac>); mac= works too.
var macArg = Arg{Name: "mac", Kind: kindMAC, Optional: true, Help: "MAC address of the NIC (or mac=)"}

// macOf is the NIC's MAC from the second positional or mac=.
func macOf(inv *Invocation) string {
	if len(inv.Args) > 1 && len(inv.Args[1]) > 0 {
		return inv.Args[1][0]
	}
	return inv.Values["mac"].Raw
}

func validateMAC(inv *Invocation) error {
	pos := ""
	if len(inv.Args) > 1 && len(inv.Args[1]) > 0 {
		pos = inv.Args[1][0]
	}
	key := inv.Values["mac"].Raw
	switch {
	case pos == "" && !inv.Set["mac"]:
		return usageErrorf("%s: missing MAC address: give it as the second argument or mac=, e.g. %s web01 50:6b:8d:00:00:01", inv.Cmd.Name, inv.Cmd.Name)
	case pos != "" && inv.Set["mac"] && !strings.EqualFold(pos, key):
		return usageErrorf("%s: two MAC addresses given (%s and mac=%s); give one", inv.Cmd.Name, pos, key)
	}
	mac := macOf(inv)
	if _, err := net.ParseMAC(mac); err != nil {
		return usageErrorf("%s: %q is not a MAC address (e.g. 50:6b:8d:00:00:01)", inv.Cmd.Name, mac)
	}
	return nil
}
