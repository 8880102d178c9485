package libvirt

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Bridges for acli networks. With Config.NetworkBridges, a VM's NICs are
// plugged into the bridge named for their network on whichever host runs
// the VM; the hosts provide the bridges (and their VLAN uplinks).

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
		out = append(out, NICSpec{MAC: n.Mac, Bridge: BridgeName(n.NetworkName), Model: n.Model})
	}
	return out
}
