package network_test

import (
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/network"
)

func wantErr(t *testing.T, err error, code codes.Code, sub string) {
	t.Helper()
	st := status.Convert(err)
	if err == nil || st.Code() != code || !strings.Contains(st.Message(), sub) || strings.Contains(st.Message(), "\n") {
		t.Fatalf("got %v, want %s containing %q on one line", err, code, sub)
	}
}

func TestParseIPConfigKeepsTheGateway(t *testing.T) {
	for _, tt := range []struct{ in, net, gw string }{
		{"10.21.253.1/25", "10.21.253.0/25", "10.21.253.1"},
		{"10.1.0.0/24", "10.1.0.0/24", ""},
		{"192.168.5.254/16", "192.168.0.0/16", "192.168.5.254"},
	} {
		p, gw, err := network.ParseIPConfig(tt.in)
		got := ""
		if gw.IsValid() {
			got = gw.String()
		}
		if err != nil || p.String() != tt.net || got != tt.gw {
			t.Errorf("%s: %v %q %v, want %s %q", tt.in, p, got, err, tt.net, tt.gw)
		}
	}
	_, _, err := network.ParseIPConfig("10.1.0.1")
	wantErr(t, err, codes.InvalidArgument, "not an address with prefix")
	_, _, err = network.ParseIPConfig("10.1.0.255/24")
	wantErr(t, err, codes.InvalidArgument, "broadcast")
	_, _, err = network.ParseIPConfig("10.1.0.1/31")
	wantErr(t, err, codes.InvalidArgument, "no addresses")
}

func managed() *acliv1.Network {
	return &acliv1.Network{Name: "prod", IpConfig: "10.0.0.0/24", DefaultGateway: "10.0.0.1"}
}

func TestNewPool(t *testing.T) {
	n := managed()
	p, err := network.NewPool(n, "10.0.0.50", "10.0.0.60")
	if err != nil || p.Start != "10.0.0.50" || p.End != "10.0.0.60" {
		t.Fatalf("%v %v", p, err)
	}
	n.DhcpPools = append(n.DhcpPools, p)
	for _, tt := range []struct {
		start, end string
		code       codes.Code
		sub        string
	}{
		{"10.0.0.55", "10.0.0.70", codes.FailedPrecondition, "overlaps pool 10.0.0.50-10.0.0.60"},
		{"10.0.1.5", "10.0.1.9", codes.InvalidArgument, "outside network prod"},
		{"10.0.0.9", "10.0.0.5", codes.InvalidArgument, "comes before start"},
		{"10.0.0.0", "10.0.0.5", codes.InvalidArgument, "address of network prod itself"},
		{"10.0.0.200", "10.0.0.255", codes.InvalidArgument, "broadcast"},
		{"10.0.0.1", "10.0.0.9", codes.InvalidArgument, "gateway"},
		{"", "10.0.0.9", codes.InvalidArgument, "start is required"},
		{"10.0.0.x", "10.0.0.9", codes.InvalidArgument, "not an IP address"},
	} {
		_, err := network.NewPool(n, tt.start, tt.end)
		wantErr(t, err, tt.code, tt.sub)
	}
	_, err = network.NewPool(&acliv1.Network{Name: "flat"}, "10.0.0.2", "10.0.0.3")
	wantErr(t, err, codes.FailedPrecondition, "network flat has no ip_config")
}

func TestNicAddrTakesThePoolInOrder(t *testing.T) {
	n := managed()
	n.DhcpPools = []*acliv1.DhcpPool{{Start: "10.0.0.10", End: "10.0.0.11"}, {Start: "10.0.0.20", End: "10.0.0.20"}}
	used := map[netip.Addr]string{}
	taken := func(a netip.Addr) string { return used[a] }
	var got []string
	for i := range 3 {
		a, err := network.NicAddr(n, netip.Addr{}, taken)
		if err != nil {
			t.Fatalf("address %d: %v", i, err)
		}
		used[a] = "vm"
		got = append(got, a.String())
	}
	if strings.Join(got, " ") != "10.0.0.10 10.0.0.11 10.0.0.20" {
		t.Fatalf("addresses %v", got)
	}
	_, err := network.NicAddr(n, netip.Addr{}, taken)
	wantErr(t, err, codes.FailedPrecondition, "no free address left in its DHCP pools (10.0.0.10-10.0.0.11, 10.0.0.20-10.0.0.20)")
	// Freed: given out again.
	delete(used, netip.MustParseAddr("10.0.0.11"))
	if a, err := network.NicAddr(n, netip.Addr{}, taken); err != nil || a.String() != "10.0.0.11" {
		t.Fatalf("after freeing: %v %v", a, err)
	}
	// Explicit: inside the subnet, free, not the gateway; pools do not matter.
	if a, err := network.NicAddr(n, netip.MustParseAddr("10.0.0.99"), taken); err != nil || a.String() != "10.0.0.99" {
		t.Fatalf("explicit: %v %v", a, err)
	}
	_, err = network.NicAddr(n, netip.MustParseAddr("10.0.0.10"), taken)
	wantErr(t, err, codes.FailedPrecondition, "ip 10.0.0.10 on network prod is taken by vm vm")
	_, err = network.NicAddr(n, netip.MustParseAddr("10.0.0.1"), taken)
	wantErr(t, err, codes.InvalidArgument, "gateway of network prod")
	_, err = network.NicAddr(n, netip.MustParseAddr("10.9.0.1"), taken)
	wantErr(t, err, codes.InvalidArgument, "outside network prod (10.0.0.0/24)")
	// Unmanaged, or managed without pools: no address.
	if a, err := network.NicAddr(&acliv1.Network{Name: "flat"}, netip.Addr{}, taken); err != nil || a.IsValid() {
		t.Fatalf("unmanaged: %v %v", a, err)
	}
	if a, err := network.NicAddr(managed(), netip.Addr{}, taken); err != nil || a.IsValid() {
		t.Fatalf("no pools: %v %v", a, err)
	}
}

func TestNicVLAN(t *testing.T) {
	got, err := network.NicVLAN(acliv1.NetworkMode_kTrunked, []int32{30, 10, 20})
	if err != nil || len(got) != 3 || got[0] != 10 || got[2] != 30 {
		t.Fatalf("%v %v", got, err)
	}
	_, err = network.NicVLAN(acliv1.NetworkMode_kAccess, []int32{10})
	wantErr(t, err, codes.InvalidArgument, "needs vlan_mode=kTrunked")
	_, err = network.NicVLAN(acliv1.NetworkMode_kTrunked, []int32{10, 5000})
	wantErr(t, err, codes.InvalidArgument, "vlan 5000 is out of range")
	_, err = network.NicVLAN(acliv1.NetworkMode_kTrunked, []int32{10, 10})
	wantErr(t, err, codes.InvalidArgument, "listed twice")
}

func TestDNSAndSwitch(t *testing.T) {
	s, d := "10.0.0.10, 10.0.0.11", "NtnxLab.local"
	srv, dom, err := network.ParseDNS(&s, &d)
	if err != nil || strings.Join(srv, ",") != "10.0.0.10,10.0.0.11" || dom[0] != "ntnxlab.local" {
		t.Fatalf("%v %v %v", srv, dom, err)
	}
	bad := "dns1"
	_, _, err = network.ParseDNS(&bad, nil)
	wantErr(t, err, codes.InvalidArgument, `"dns1" is not an IP address`)
	bad = "a..b"
	_, _, err = network.ParseDNS(nil, &bad)
	wantErr(t, err, codes.InvalidArgument, "not a domain name")

	vs := network.Switch(nil)
	mtu, bond := int32(9000), "balance_tcp"
	lacp := true
	next, changed, err := network.UpdateSwitch(vs, &acliv1.UpdateVirtualSwitchRequest{Mtu: &mtu, BondType: &bond, Lacp: &lacp}, nil)
	if err != nil || next.Mtu != 9000 || next.BondType != "kBalanceTcp" || !next.Lacp || len(changed) != 3 || vs.Mtu != 1500 {
		t.Fatalf("%v %v %v (default now %v)", next, changed, err, vs)
	}
	bond = "kActiveBackp"
	_, _, err = network.UpdateSwitch(vs, &acliv1.UpdateVirtualSwitchRequest{BondType: &bond}, nil)
	wantErr(t, err, codes.InvalidArgument, "did you mean kActiveBackup?")
	_, _, err = network.UpdateSwitch(vs, &acliv1.UpdateVirtualSwitchRequest{Lacp: &lacp}, nil)
	wantErr(t, err, codes.InvalidArgument, "lacp needs bond_type=kBalanceTcp")
	mtu = 100
	_, _, err = network.UpdateSwitch(vs, &acliv1.UpdateVirtualSwitchRequest{Mtu: &mtu}, nil)
	wantErr(t, err, codes.InvalidArgument, "mtu 100 is out of range")
}

// acli's active_uplink='{<host>:<interface>; ...}': hosts by UUID, name or
// IP, kept in host order, merged with earlier ones, only on an
// active-backup bond and among the uplinks.
func TestActiveUplink(t *testing.T) {
	hosts := []*acliv1.Host{
		{Uuid: "6f1c0a52-0000-4000-8000-000000000001", Name: "h1", HypervisorIp: "127.44.0.21"},
		{Uuid: "6f1c0a52-0000-4000-8000-000000000002", Name: "h2", HypervisorIp: "127.44.0.22"},
	}
	vs := network.Switch(nil)
	up := func(s string) *acliv1.UpdateVirtualSwitchRequest {
		return &acliv1.UpdateVirtualSwitchRequest{ActiveUplink: &s}
	}
	next, changed, err := network.UpdateSwitch(vs, up("'{127.44.0.22:eth1; 6F1C0A52-0000-4000-8000-000000000001 : eth0}'"), hosts)
	if err != nil || len(changed) != 1 || len(next.ActiveUplinks) != 2 ||
		next.ActiveUplinks[0].HostName != "h1" || next.ActiveUplinks[0].Interface != "eth0" || next.ActiveUplinks[1].Interface != "eth1" {
		t.Fatalf("%v %v %v", next, changed, err)
	}
	next, _, err = network.UpdateSwitch(next, up("h1:eth3"), hosts)
	if err != nil || len(next.ActiveUplinks) != 2 || next.ActiveUplinks[0].Interface != "eth3" || next.ActiveUplinks[1].Interface != "eth1" {
		t.Fatalf("merge: %v %v", next, err)
	}
	// A bond that is no longer active-backup drops them.
	bond := "kBalanceSlb"
	slb, _, err := network.UpdateSwitch(next, &acliv1.UpdateVirtualSwitchRequest{BondType: &bond}, hosts)
	if err != nil || len(slb.ActiveUplinks) != 0 {
		t.Fatalf("balance-slb kept %v (%v)", slb.ActiveUplinks, err)
	}
	_, _, err = network.UpdateSwitch(slb, up("{h1:eth0}"), hosts)
	wantErr(t, err, codes.InvalidArgument, "active_uplink needs bond_type=kActiveBackup (the bond is kBalanceSlb")
	links := "eth0,eth1"
	_, _, err = network.UpdateSwitch(vs, &acliv1.UpdateVirtualSwitchRequest{Uplinks: &links, ActiveUplink: proto.String("{h2:eth2}")}, hosts)
	wantErr(t, err, codes.InvalidArgument, "eth2 of host h2 is not one of the uplinks (eth0, eth1)")
	for in, want := range map[string]string{
		"{h1:eth0":           "unbalanced braces",
		"{h1}":               `"h1" is not <host>:<interface>`,
		"{h1:eth0; h1:eth1}": "host h1 is given twice",
		"{h3:eth0}":          `host "h3" not found`,
		"{h1:eth 0}":         `"eth 0" is not an interface name`,
		"{}":                 "active_uplink is empty",
	} {
		_, _, err := network.UpdateSwitch(vs, up(in), hosts)
		code := codes.InvalidArgument
		if strings.Contains(want, "not found") {
			code = codes.NotFound
		}
		wantErr(t, err, code, want)
	}
}
