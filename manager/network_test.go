package manager_test

import (
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
)

func nicIPs(t *testing.T, c clients, vm string) []string {
	t.Helper()
	v, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: vm})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range v.Nics {
		out = append(out, n.Ip)
	}
	return out
}

// NICs on a managed network take the pool's addresses in order, an explicit
// one is checked, a full pool refuses (FailedPrecondition: exit 5), and a
// deleted NIC, VM or a clone's own NIC frees or takes addresses.
func TestNicAddressesFromThePool(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	succeed(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "prod", IpConfig: "10.21.253.1/25"}))
	n, _ := c.net.GetNetwork(bg, &acliv1.GetNetworkRequest{Network: "prod"})
	if n.IpConfig != "10.21.253.0/25" || n.DefaultGateway != "10.21.253.1" {
		t.Fatalf("network %v", n)
	}
	succeed(t, c)(c.net.AddDhcpPool(bg, &acliv1.AddDhcpPoolRequest{Network: "prod", Start: "10.21.253.50", End: "10.21.253.52"}))
	wantCode(t, errOf(c.net.AddDhcpPool(bg, &acliv1.AddDhcpPoolRequest{Network: "prod", Start: "10.21.253.52", End: "10.21.253.60"})), codes.FailedPrecondition, "overlaps pool 10.21.253.50-10.21.253.52")
	wantCode(t, errOf(c.net.AddDhcpPool(bg, &acliv1.AddDhcpPoolRequest{Network: "prod", Start: "10.21.253.150", End: "10.21.253.160"})), codes.InvalidArgument, "outside network prod")
	wantCode(t, errOf(c.net.AddDhcpPool(bg, &acliv1.AddDhcpPoolRequest{Network: "prd", Start: "10.21.253.150", End: "10.21.253.160"})), codes.NotFound, `(did you mean "prod"?)`)
	for _, name := range []string{"a", "b", "c"} {
		succeed(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: name, MemoryBytes: gib, NumVcpus: 1}))
	}
	succeed(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "a", Network: "prod"}))
	succeed(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "a", Network: "prod"}))
	wantCode(t, errOf(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "b", Network: "prod", Ip: "10.21.253.51"})), codes.FailedPrecondition, "ip 10.21.253.51 on network prod is taken by vm a")
	wantCode(t, errOf(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "b", Network: "prod", Ip: "10.21.253.1"})), codes.InvalidArgument, "gateway of network prod")
	succeed(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "b", Network: "prod", Ip: "10.21.253.99"}))
	succeed(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "b", Network: "prod"}))
	if got := nicIPs(t, c, "a"); len(got) != 2 || got[0] != "10.21.253.50" || got[1] != "10.21.253.51" {
		t.Fatalf("a's addresses %v", got)
	}
	if got := nicIPs(t, c, "b"); got[0] != "10.21.253.99" || got[1] != "10.21.253.52" {
		t.Fatalf("b's addresses %v", got)
	}
	wantCode(t, errOf(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "c", Network: "prod"})), codes.FailedPrecondition, "network prod has no free address left in its DHCP pools (10.21.253.50-10.21.253.52)")
	wantCode(t, errOf(c.vm.CloneVm(bg, &acliv1.CloneVmRequest{Name: "a2", CloneFromVm: "a"})), codes.FailedPrecondition, "no free address left")
	if v, _ := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "c"}); len(v.Nics) != 0 {
		t.Fatalf("a refused NIC was added: %v", v.Nics)
	}

	// Freed by deleting the NIC, then by deleting the VM.
	v, _ := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "a"})
	succeed(t, c)(c.vm.DeleteNic(bg, &acliv1.DeleteNicRequest{Vm: "a", Mac: v.Nics[1].Mac}))
	succeed(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "c", Network: "prod"}))
	if got := nicIPs(t, c, "c"); got[0] != "10.21.253.51" {
		t.Fatalf("c got %v, want the freed 10.21.253.51", got)
	}
	succeed(t, c)(c.vm.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "b"}))
	succeed(t, c)(c.vm.CloneVm(bg, &acliv1.CloneVmRequest{Name: "a2", CloneFromVm: "a"}))
	if got := nicIPs(t, c, "a2"); got[0] != "10.21.253.52" {
		t.Fatalf("clone got %v, want an address of its own (10.21.253.52)", got)
	}
	l, err := c.net.ListNetworkVms(bg, &acliv1.ListNetworkVmsRequest{Network: "prod"})
	if err != nil || len(l.Vms) != 3 || l.Vms[0].VmName != "a" || l.Vms[1].VmName != "a2" || l.Vms[2].VmName != "c" {
		t.Fatalf("list_vms %v %v", l, err)
	}

	succeed(t, c)(c.net.UpdateDhcpDns(bg, &acliv1.UpdateDhcpDnsRequest{Network: "prod", Servers: proto.String("10.21.253.10,10.21.253.11"), Domains: proto.String("ntnxlab.local")}))
	wantCode(t, errOf(c.net.UpdateDhcpDns(bg, &acliv1.UpdateDhcpDnsRequest{Network: "prod", Servers: proto.String("dns1")})), codes.InvalidArgument, `"dns1" is not an IP address`)
	n, _ = c.net.GetNetwork(bg, &acliv1.GetNetworkRequest{Network: "prod"})
	if len(n.DnsServers) != 2 || n.DnsDomains[0] != "ntnxlab.local" || len(n.DhcpPools) != 1 || n.NumIpsUsed != 3 {
		t.Fatalf("network %v", n)
	}
}

// Concurrent NIC creations never share an address: each task holds the
// one it picked until it ends, and the commit checks it again.
func TestNicAddressesUnderConcurrency(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	succeed(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "prod", IpConfig: "10.0.0.1/24"}))
	succeed(t, c)(c.net.AddDhcpPool(bg, &acliv1.AddDhcpPoolRequest{Network: "prod", Start: "10.0.0.10", End: "10.0.0.17"}))
	const n = 12
	for i := range n {
		succeed(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "v" + string(rune('a'+i)), MemoryBytes: gib, NumVcpus: 1}))
	}
	var wg sync.WaitGroup
	codesSeen := make([]codes.Code, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			task, err := c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "v" + string(rune('a'+i)), Network: "prod"})
			codesSeen[i] = status.Code(err)
			if err == nil {
				if final := wait(t, c, task, nil); final.Status != acliv1.TaskStatus_kSucceeded {
					codesSeen[i] = codes.Code(final.ErrorCode)
				}
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	ok := 0
	l, _ := c.net.ListNetworkVms(bg, &acliv1.ListNetworkVmsRequest{Network: "prod"})
	for _, v := range l.Vms {
		if seen[v.Ip] || v.Ip == "" {
			t.Fatalf("address %q given twice or not at all: %v", v.Ip, l.Vms)
		}
		seen[v.Ip] = true
		ok++
	}
	refused := 0
	for _, code := range codesSeen {
		if code == codes.FailedPrecondition {
			refused++
		}
	}
	if ok != 8 || refused != n-8 {
		t.Fatalf("%d NICs got addresses and %d were refused; want 8 and %d (%v)", ok, refused, n-8, codesSeen)
	}
}

// NIC VLAN settings and link state, and the virtual switch.
func TestNicUpdateAndVirtualSwitch(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	succeed(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "prod", VlanId: 10}))
	succeed(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "web", MemoryBytes: gib, NumVcpus: 1}))
	wantCode(t, errOf(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "web", Network: "prod", TrunkedNetworks: []int32{20}})), codes.InvalidArgument, "needs vlan_mode=kTrunked")
	succeed(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "web", Network: "prod", Mac: "50:6b:8d:00:00:01",
		VlanMode: acliv1.NetworkMode_kTrunked, TrunkedNetworks: []int32{30, 20}, Connected: proto.Bool(false)}))
	v, _ := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "web"})
	if nic := v.Nics[0]; nic.VlanMode != acliv1.NetworkMode_kTrunked || len(nic.TrunkedNetworks) != 2 || nic.TrunkedNetworks[0] != 20 || !nic.Disconnected {
		t.Fatalf("nic %v", nic)
	}
	succeed(t, c)(power(c, "web", acliv1.PowerTransition_kPowerOn))
	succeed(t, c)(c.vm.UpdateNic(bg, &acliv1.UpdateNicRequest{Vm: "web", Mac: "50:6b:8d:00:00:01", Connected: proto.Bool(true), VlanMode: acliv1.NetworkMode_kAccess}))
	v, _ = c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "web"})
	if nic := v.Nics[0]; nic.VlanMode != acliv1.NetworkMode_kAccess || len(nic.TrunkedNetworks) != 0 || nic.Disconnected {
		t.Fatalf("nic after update %v", nic)
	}
	wantCode(t, errOf(c.vm.UpdateNic(bg, &acliv1.UpdateNicRequest{Vm: "web", Mac: "50:6b:8d:00:00:02", Connected: proto.Bool(true)})), codes.NotFound, "50:6b:8d:00:00:02 of vm web")
	wantCode(t, errOf(c.vm.UpdateNic(bg, &acliv1.UpdateNicRequest{Vm: "web", Mac: "50:6b:8d:00:00:01"})), codes.InvalidArgument, "nothing to update")

	vs, err := c.net.GetVirtualSwitch(bg, &acliv1.GetVirtualSwitchRequest{})
	if err != nil || vs.Name != "vs0" || vs.Mtu != 1500 || vs.BondType != "kActiveBackup" {
		t.Fatalf("vs0 %v %v", vs, err)
	}
	succeed(t, c)(c.net.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Name: "vs0", Mtu: proto.Int32(9000), Uplinks: proto.String("eth0,eth1")}))
	vs, _ = c.net.GetVirtualSwitch(bg, &acliv1.GetVirtualSwitchRequest{Name: "vs0"})
	if vs.Mtu != 9000 || len(vs.Uplinks) != 2 || vs.LogicalTimestamp == 0 {
		t.Fatalf("vs0 after update %v", vs)
	}
	wantCode(t, errOf(c.net.GetVirtualSwitch(bg, &acliv1.GetVirtualSwitchRequest{Name: "vs1"})), codes.NotFound, `(did you mean "vs0"?)`)
	wantCode(t, errOf(c.net.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Name: "vs0", BondType: proto.String("kBalanceTpc")})), codes.InvalidArgument, "did you mean kBalanceTcp?")
}

// net.update_virtual_switch changes the hosts' bridges before the record:
// an uplink a host lacks, or a host that is down, leaves every host and
// the record as they were; a restarted clusterd gives the hosts the
// committed switch again.
func TestVirtualSwitchReachesHosts(t *testing.T) {
	dir := t.TempDir()
	h := managertest.New(t, managertest.Options{Hosts: 3, Dir: dir})
	c := newClients(h.Conn)
	hosts, err := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	bridgeOn := func(h *managertest.Harness, i int) sim.Bridge {
		t.Helper()
		b, ok := h.Driver.Bridge(hosts.Hosts[i].Uuid, "vs0")
		if !ok {
			t.Fatalf("host %s has no vs0", hosts.Hosts[i].Name)
		}
		return b
	}
	if b := bridgeOn(h, 0); b.MTU != 1500 || b.Name != "br0" || len(b.Uplinks) != 4 {
		t.Fatalf("default bridge %+v", b)
	}
	wantCode(t, errOf(c.net.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Name: "vs0", Mtu: proto.Int32(9000), Uplinks: proto.String("eth0,eth9")})),
		codes.FailedPrecondition, "virtual switch vs0: host h1 has no interface eth9 (it has eth0, eth1, eth2, eth3)")
	succeed(t, c)(c.net.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Name: "vs0", Mtu: proto.Int32(9000), Uplinks: proto.String("eth0,eth1"), BondType: proto.String("kBalanceTcp"), Lacp: proto.Bool(true)}))
	for i := range hosts.Hosts {
		if b := bridgeOn(h, i); b.MTU != 9000 || b.Bond != "kBalanceTcp" || !b.LACP || strings.Join(b.Uplinks, ",") != "eth0,eth1" {
			t.Fatalf("host %d bridge %+v", i, b)
		}
	}
	// acli's active_uplink: each host's active interface of an
	// active-backup bond, among the uplinks.
	succeed(t, c)(c.net.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Name: "vs0", BondType: proto.String("kActiveBackup"), Lacp: proto.Bool(false),
		ActiveUplink: proto.String("{" + hosts.Hosts[1].HypervisorIp + ":eth1}")}))
	if b0, b1 := bridgeOn(h, 0), bridgeOn(h, 1); b0.Active != "" || b1.Active != "eth1" || b1.Bond != "kActiveBackup" {
		t.Fatalf("active uplinks: h1 %+v, h2 %+v", b0, b1)
	}
	wantCode(t, errOf(c.net.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Name: "vs0", ActiveUplink: proto.String("{h1:eth3}")})),
		codes.InvalidArgument, "eth3 of host h1 is not one of the uplinks (eth0, eth1)")
	if _, err := h.Driver.FailHost(hosts.Hosts[2].Uuid); err != nil {
		t.Fatal(err)
	}
	wantCode(t, errOf(c.net.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Name: "vs0", Mtu: proto.Int32(1500)})),
		codes.FailedPrecondition, "host h3 is down, so its bridge br0 cannot change")
	if b := bridgeOn(h, 0); b.MTU != 9000 {
		t.Fatalf("a refused change reached h1: %+v", b)
	}
	if vs, _ := c.net.GetVirtualSwitch(bg, &acliv1.GetVirtualSwitchRequest{Name: "vs0"}); vs.Mtu != 9000 {
		t.Fatalf("a refused change reached the record: %v", vs)
	}
	if _, err := h.Driver.RecoverHost(hosts.Hosts[2].Uuid); err != nil {
		t.Fatal(err)
	}
	h.Stop()
	h = managertest.New(t, managertest.Options{Hosts: 3, Dir: dir})
	if b := bridgeOn(h, 1); b.MTU != 9000 || b.Bond != "kActiveBackup" || b.Active != "eth1" {
		t.Fatalf("after a restart h2 has %+v", b)
	}
}
