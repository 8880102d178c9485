package driver

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// SwitchWirer is a driver that wires virtual switches on its hosts (MTU,
// bond); the manager calls it before committing a switch change.
type SwitchWirer interface {
	WireSwitch(ctx context.Context, vs *acliv1.VirtualSwitch) error
}

// NicUpdater is a driver that changes a running VM's NIC in place (link
// state, VLAN tags); the manager calls it before committing the change.
type NicUpdater interface {
	UpdateNic(ctx context.Context, host *acliv1.Host, vm *acliv1.Vm, nic *acliv1.Nic) error
}

// ActiveUplink is vs's active uplink on host ("" if none was given).
func ActiveUplink(vs *acliv1.VirtualSwitch, host string) string {
	for _, u := range vs.ActiveUplinks {
		if u.HostUuid == host {
			return u.Interface
		}
	}
	return ""
}

// NicNetwork is what a host needs of a NIC's network to plug the NIC
// into its virtual switch: the network's VLAN (0: untagged) and the
// switch's bridge.
type NicNetwork struct {
	VlanID int32
	Bridge string
}

// NetworkUser is a driver that plugs NICs into their network's virtual
// switch (as access-tagged ports where the switch can tag them); the
// manager gives it how to read a network, by UUID, from the committed
// records.
type NetworkUser interface {
	UseNetworks(lookup func(networkUUID string) (NicNetwork, bool))
}
