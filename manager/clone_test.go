package manager_test

import (
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

// A clone's NICs on one managed network take one address each from the
// pool, and MACs of their own: none shared with each other or the source.
func TestCloneGivesEachNicItsOwnAddressAndMac(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	succeed(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "prod", IpConfig: "10.21.250.1/24"}))
	succeed(t, c)(c.net.AddDhcpPool(bg, &acliv1.AddDhcpPoolRequest{Network: "prod", Start: "10.21.250.50", End: "10.21.250.59"}))
	createVm(t, c, "src", gib)
	succeed(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "src", Network: "prod"}))
	succeed(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "src", Network: "prod"}))
	succeed(t, c)(c.vm.CloneVm(bg, &acliv1.CloneVmRequest{Name: "dst", CloneFromVm: "src"}))

	ips, macs := map[string]string{}, map[string]string{}
	for _, name := range []string{"src", "dst"} {
		v, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: name})
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Nics) != 2 {
			t.Fatalf("%s has %d NICs, want 2", name, len(v.Nics))
		}
		for _, n := range v.Nics {
			if n.Ip == "" {
				t.Errorf("%s's NIC %s has no address", name, n.Mac)
			}
			if o, ok := ips[n.Ip]; ok {
				t.Errorf("%s and %s both have address %s", o, name, n.Ip)
			}
			if o, ok := macs[n.Mac]; ok {
				t.Errorf("%s and %s both have MAC %s", o, name, n.Mac)
			}
			ips[n.Ip], macs[n.Mac] = name, name
		}
	}
	n, err := c.net.GetNetwork(bg, &acliv1.GetNetworkRequest{Network: "prod"})
	if err != nil || n.NumIpsUsed != 4 {
		t.Fatalf("network prod: %d addresses used, want 4 (%v)", n.GetNumIpsUsed(), err)
	}
}
