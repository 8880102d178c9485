package network_test

import (
	"net/netip"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/network"
)

// BenchmarkNextAddressPoolNearlyFull: the next free address of a /16 pool
// whose first 4,000 addresses are taken (the scan a NIC creation does).
func BenchmarkNextAddressPoolNearlyFull(b *testing.B) {
	n := &acliv1.Network{Name: "big", IpConfig: "10.0.0.0/16", DefaultGateway: "10.0.0.1",
		DhcpPools: []*acliv1.DhcpPool{{Start: "10.0.0.10", End: "10.0.255.250"}}}
	taken := map[netip.Addr]string{}
	a := netip.MustParseAddr("10.0.0.10")
	for range 4000 {
		taken[a] = "vm"
		a = a.Next()
	}
	b.ResetTimer()
	for b.Loop() {
		if got, err := network.NicAddr(n, netip.Addr{}, func(x netip.Addr) string { return taken[x] }); err != nil || got != a {
			b.Fatalf("%v %v, want %v", got, err, a)
		}
	}
}
