package commands

import (
	"strings"
	"testing"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/managertest"
)

// The network commands against the real manager: bad input is one line
// with the documented exit code and changes nothing.
func TestNetworkCommandsRefuseBadInput(t *testing.T) {
	conn, _ := managertest.Start(t, managertest.Options{Hosts: 3})
	run := (&harness{t: t, c: client.New(conn)}).run
	for _, line := range []string{
		"net.create prod vlan=10 ip_config=10.2.0.1/24",
		"net.add_dhcp_pool prod start=10.2.0.50 end=10.2.0.51",
		"vm.create web01",
		"vm.nic_create web01 network=prod mac=50:6b:8d:00:00:0a",
	} {
		if code, _, errOut := run(strings.Fields(line)...); code != 0 {
			t.Fatalf("%s: exit %d: %s", line, code, errOut)
		}
	}
	state := func() string {
		_, a, _ := run("net.get", "prod")
		_, b, _ := run("vm.get", "web01")
		_, c, _ := run("net.get_virtual_switch")
		return a + b + c
	}
	before := state()
	for _, tt := range []struct {
		line string
		code int
		want string
	}{
		{"net.create bad ip_config=10.2.0.1", 2, "not an address with prefix"},
		{"net.add_dhcp_pool prod start=10.2.0.60", 2, "end"},
		{"net.add_dhcp_pool prod start=10.3.0.1 end=10.3.0.9", 2, "outside network prod (10.2.0.0/24)"},
		{"net.add_dhcp_pool prod start=10.2.0.51 end=10.2.0.55", 5, "overlaps pool 10.2.0.50-10.2.0.51"},
		{"net.add_dhcp_pool prd start=10.2.0.60 end=10.2.0.61", 3, `"prod"`},
		{"net.update_dhcp_dns prod", 2, "nothing to update"},
		{"net.update_dhcp_dns prod servers=dns1", 2, `"dns1" is not an IP address`},
		{"net.update_dhcp_dns prod domain=x.local", 2, "domains"},
		{"net.list_vms nosuch", 3, "nosuch"},
		{"net.get_virtual_switch vs9", 3, `"vs0"`},
		{"net.update_virtual_switch vs0 mtu=100", 2, "mtu"},
		{"net.update_virtual_switch vs0 bond_type=kBalanceTpc", 2, "kBalanceTcp"},
		{"net.update_virtual_switch vs0 lacp=true", 2, "lacp needs bond_type=kBalanceTcp"},
		{"vm.nic_create web01 network=prod ip=10.2.0.50", 5, "ip 10.2.0.50 on network prod is taken by vm web01"},
		{"vm.nic_create web01 network=prod ip=10.2.0.1", 2, "gateway of network prod"},
		{"vm.nic_create web01 network=prod trunked_networks=10", 2, "needs vlan_mode=kTrunked"},
		{"vm.nic_create web01 network=prod vlan_mode=kTrunked trunked_networks=10,5000", 2, "not a VLAN ID"},
		{"vm.nic_create web01 network=prod vlan_mode=kTrunkd", 2, "kTrunked"},
		{"vm.nic_create web01 network=prod", 5, "no free address left in its DHCP pools (10.2.0.50-10.2.0.51)"},
		{"vm.nic_update web01 50:6b:8d:00:00:0a", 2, "nothing to update"},
		{"vm.nic_update web01 50:6b:8d:00:00:0b connected=false", 3, "50:6b:8d:00:00:0b"},
		{"vm.nic_update web01 zz connected=false", 2, "not a MAC address"},
		{"vm.nic_get web01 50:6b:8d:00:00:0b", 3, "vm web01 has no NIC 50:6b:8d:00:00:0b (NICs: 50:6b:8d:00:00:0a, "},
	} {
		code, out, errOut := run(strings.Fields(tt.line)...)
		if tt.line == "vm.nic_create web01 network=prod" {
			// the pool's second address is free: take it, then the pool is full
			if code != 0 {
				t.Fatalf("%s: exit %d: %s", tt.line, code, errOut)
			}
			before = state()
			code, out, errOut = run(strings.Fields(tt.line)...)
		}
		if code != tt.code || !strings.Contains(errOut, tt.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and one line with %q (stdout %q)", tt.line, code, errOut, tt.code, tt.want, out)
		}
		if after := state(); after != before {
			t.Errorf("%s changed the cluster:\n%s\nwas\n%s", tt.line, after, before)
		}
	}
}
