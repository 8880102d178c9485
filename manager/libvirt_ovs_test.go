package manager_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/libvirt"
	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
	"github.com/acli-dev/acli/manager/managertest"
)

// A trunked NIC on a host whose network bridge is an Open vSwitch bridge
// (userspace datapath, daemons of the test, in a namespace it made): the
// VM starts and its port carries the NIC's VLANs as OVS trunks, and its
// network's untagged frames (VLAN 0), which vm.nic_update changes while
// it runs.
func TestLibvirtTrunkedNicOnOVS(t *testing.T) {
	ctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	defer cancel()
	c, hh, ovs := ovsHost(ctx, t)
	await(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "tr", MemoryBytes: 64 << 20, NumVcpus: 1}))
	const mac = "50:6b:8d:45:00:03"
	await(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "tr", Network: "n1", Mac: mac, VlanMode: acliv1.NetworkMode_kTrunked, TrunkedNetworks: []int32{30, 20}}))
	await(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "tr", Transition: acliv1.PowerTransition_kPowerOn, Host: hh.Name}))
	ports, err := ovs.Vsctl(ctx, "list-ports", libvirt.BridgeName("n1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ports, "vnet") {
		t.Fatalf("ports of OVS bridge %s: %q, want the VM's tap", libvirt.BridgeName("n1"), ports)
	}
	trunks, err := ovs.Vsctl(ctx, "get", "port", ports, "trunks")
	if err != nil {
		t.Fatal(err)
	}
	if trunks != "[0, 20, 30]" {
		t.Fatalf("trunks of port %s: %s, want [0, 20, 30] (0: its network's untagged frames)", ports, trunks)
	}
	t.Logf("port %s of OVS bridge %s trunks %s", ports, libvirt.BridgeName("n1"), trunks)
	// vm.nic_update on the running VM retags its port in place.
	await(t, c)(c.vm.UpdateNic(bg, &acliv1.UpdateNicRequest{Vm: "tr", Mac: mac, VlanMode: acliv1.NetworkMode_kTrunked, TrunkedNetworks: []int32{40}, TrunkedNetworksSet: true}))
	if got, _ := ovs.Vsctl(ctx, "get", "port", ports, "trunks"); got != "[0, 40]" {
		t.Fatalf("trunks of port %s after trunked_networks=40: %s", ports, got)
	}
	await(t, c)(c.vm.UpdateNic(bg, &acliv1.UpdateNicRequest{Vm: "tr", Mac: mac, VlanMode: acliv1.NetworkMode_kAccess}))
	if got, _ := ovs.Vsctl(ctx, "get", "port", ports, "trunks"); got != "[]" {
		t.Fatalf("trunks of port %s after vlan_mode=kAccess: %s", ports, got)
	}
	await(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "tr", Transition: acliv1.PowerTransition_kPowerOff}))
	if ports, _ := ovs.Vsctl(ctx, "list-ports", libvirt.BridgeName("n1")); ports != "" {
		t.Fatalf("ports of %s after the VM stopped: %q", libvirt.BridgeName("n1"), ports)
	}
}

// On a host whose virtual switch bridge br0 is an Open vSwitch bridge,
// NICs are ports of br0 as on AHV, not of per-network bridges: an access
// NIC's port is tagged with its network's VLAN (VLAN 0: untagged), and
// vm.nic_update retags the running VM's port in place, to a trunk whose
// native VLAN is the network's and back.
func TestLibvirtAccessNicsOnOVSSwitch(t *testing.T) {
	ctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	defer cancel()
	hh, _, ovs := ovsNetns(ctx, t, "br0")
	c := bridgesManager(t, hh)
	await(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "n10", VlanId: 10}))
	await(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "n0"}))
	await(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "ac", MemoryBytes: 64 << 20, NumVcpus: 1}))
	const mac10, mac0 = "50:6b:8d:45:00:10", "50:6b:8d:45:00:11"
	await(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "ac", Network: "n10", Mac: mac10}))
	await(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "ac", Network: "n0", Mac: mac0}))
	await(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "ac", Transition: acliv1.PowerTransition_kPowerOn, Host: hh.Name}))
	get := func(args ...string) string {
		t.Helper()
		out, err := ovs.Vsctl(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The port of each NIC, by the MAC libvirt gives the tap (fe:6b:8d...).
	port := map[string]string{}
	for _, p := range strings.Fields(get("list-ports", "br0")) {
		m := strings.Trim(get("get", "interface", p, "external_ids:attached-mac"), `"`)
		port[m] = p
	}
	if len(port) != 2 || port[mac10] == "" || port[mac0] == "" {
		t.Fatalf("ports of br0 by attached MAC: %v, want the VM's two NICs", port)
	}
	if got := get("get", "port", port[mac10], "tag"); got != "10" {
		t.Fatalf("tag of %s (network n10, VLAN 10): %s, want 10", port[mac10], got)
	}
	if got := get("get", "port", port[mac0], "tag"); got != "[]" {
		t.Fatalf("tag of %s (network n0, VLAN 0): %s, want none", port[mac0], got)
	}
	t.Logf("ports of br0: %s tag 10, %s untagged", port[mac10], port[mac0])
	await(t, c)(c.vm.UpdateNic(bg, &acliv1.UpdateNicRequest{Vm: "ac", Mac: mac10, VlanMode: acliv1.NetworkMode_kTrunked, TrunkedNetworks: []int32{20}, TrunkedNetworksSet: true}))
	if got := get("get", "port", port[mac10], "tag", "trunks", "vlan_mode"); got != "10\n[10, 20]\nnative-untagged" {
		t.Fatalf("port %s after vlan_mode=kTrunked trunked_networks=20: %q, want tag 10, trunks [10, 20], native-untagged", port[mac10], got)
	}
	await(t, c)(c.vm.UpdateNic(bg, &acliv1.UpdateNicRequest{Vm: "ac", Mac: mac10, VlanMode: acliv1.NetworkMode_kAccess}))
	if got := get("get", "port", port[mac10], "tag", "trunks"); got != "10\n[]" {
		t.Fatalf("port %s after vlan_mode=kAccess: %q, want tag 10 and no trunks", port[mac10], got)
	}
	if ports := get("list-ports", "br0"); len(strings.Fields(ports)) != 2 {
		t.Fatalf("ports of br0 after the updates: %q, want the same two", ports)
	}
	await(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "ac", Transition: acliv1.PowerTransition_kPowerOff}))
	if ports := get("list-ports", "br0"); ports != "" {
		t.Fatalf("ports of br0 after the VM stopped: %q", ports)
	}
}

// ovsHost is bridgedHost with Open vSwitch: network n1's bridge is an
// OVS bridge in the host's namespace.
func ovsHost(ctx context.Context, t *testing.T) (clients, *libvirtharness.Host, *libvirtharness.OVS) {
	t.Helper()
	hh, _, ovs := ovsNetns(ctx, t, libvirt.BridgeName("n1"))
	c := bridgesManager(t, hh)
	await(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "n1", VlanId: 10}))
	return c, hh, ovs
}

// ovsNetns starts one libvirtd in a network namespace the test made,
// beside an ovsdb-server and ovs-vswitchd of the test whose database
// libvirtd's ovs-vsctl finds (OVS_RUNDIR), with userspace bridges named.
func ovsNetns(ctx context.Context, t *testing.T, bridges ...string) (*libvirtharness.Host, string, *libvirtharness.OVS) {
	t.Helper()
	libvirtharness.Require(t)
	if err := libvirtharness.OVSAvailable(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Open vSwitch unavailable under CI (.ci/run installs it): %v", err)
		}
		t.Skip(err)
	}
	ns := netns(t)
	inNetns(t, ns, "link", "set", "lo", "up")
	ovs, err := libvirtharness.StartOVS(ctx, "/run/netns/"+ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ovs.Stop(); err != nil {
			t.Error(err)
		}
	})
	hosts, err := libvirtharness.Start(ctx, libvirtharness.Options{Hosts: 1, NetNS: "/run/netns/" + ns, Env: ovs.Env()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hosts.Stop() })
	for _, b := range bridges {
		if err := ovs.AddBridge(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	return hosts.Hosts[0], ns, ovs
}

// bridgesManager is a manager with --libvirt-network-bridges and the
// hosts, added over their unix sockets under the names given (h1, h2...).
func bridgesManager(t *testing.T, hosts ...*libvirtharness.Host) clients {
	t.Helper()
	drv := libvirt.NewDriver(libvirt.Config{NetworkBridges: true, HeartbeatInterval: lvHeartbeat, ShutdownTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := managertest.New(t, managertest.Options{Driver: drv})
	c := newClients(h.Conn)
	for i, hh := range hosts {
		await(t, c)(c.host.AddHost(bg, &acliv1.AddHostRequest{Name: fmt.Sprintf("h%d", i+1), HypervisorIp: hh.Addr, LibvirtUri: hh.UnixURI()}))
	}
	return c
}

// uplinks adds veth pairs whose namespace ends are the host's "physical"
// interfaces, up.
func uplinks(t *testing.T, ns string, names ...string) {
	t.Helper()
	for _, n := range names {
		inNetns(t, ns, "link", "add", n, "type", "veth", "peer", "name", "p-"+n)
		inNetns(t, ns, "link", "set", n, "up")
	}
}

// net.update_virtual_switch on two libvirt hosts whose vs0 bridge br0 is
// an Open vSwitch bridge: the uplinks become the bond port br0-up there
// (mode, primary per host, MTU) and stays while they do, a new list
// replaces the old, an interface
// a host lacks refuses the change for both, and so does a host that is
// down, leaving the other's bridge as it was.
func TestLibvirtVirtualSwitchOnOVS(t *testing.T) {
	ctx, cancel := context.WithTimeout(bg, 3*time.Minute)
	defer cancel()
	h1, ns1, ovs1 := ovsNetns(ctx, t, "br0")
	h2, ns2, ovs2 := ovsNetns(ctx, t, "br0")
	uplinks(t, ns1, "eth0", "eth1", "eth2")
	uplinks(t, ns2, "eth0", "eth1", "eth2")
	c := bridgesManager(t, h1, h2)
	sw := func(req *acliv1.UpdateVirtualSwitchRequest) { await(t, c)(c.net.UpdateVirtualSwitch(bg, req)) }
	get := func(o *libvirtharness.OVS, args ...string) string {
		t.Helper()
		out, err := o.Vsctl(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	sw(&acliv1.UpdateVirtualSwitchRequest{Uplinks: proto.String("eth0,eth1"), BondType: proto.String("kActiveBackup"),
		ActiveUplink: proto.String("{h1:eth1; h2:eth0}"), Mtu: proto.Int32(9000)})
	for i, o := range []*libvirtharness.OVS{ovs1, ovs2} {
		if got := get(o, "list-ports", "br0"); got != "br0-up" {
			t.Fatalf("h%d: ports of br0: %q, want br0-up", i+1, got)
		}
		if got := strings.Fields(get(o, "list-ifaces", "br0")); !slices.Equal(got, []string{"eth0", "eth1"}) {
			t.Fatalf("h%d: interfaces of br0: %q, want eth0 eth1", i+1, got)
		}
		if got := get(o, "get", "port", "br0-up", "bond_mode"); got != "active-backup" {
			t.Fatalf("h%d: bond_mode %s", i+1, got)
		}
		if got, want := get(o, "get", "port", "br0-up", "other_config:bond-primary"), []string{"eth1", "eth0"}[i]; got != want {
			t.Fatalf("h%d: bond-primary %s, want %s", i+1, got, want)
		}
		if got := get(o, "get", "interface", "eth0", "mtu_request"); got != "9000" {
			t.Fatalf("h%d: eth0 mtu_request %s", i+1, got)
		}
	}
	// A change that leaves the uplinks as they are (a description here, a
	// clusterd restart's rewiring) keeps the bond port: no uplink flap.
	before := get(ovs1, "get", "port", "br0-up", "_uuid")
	sw(&acliv1.UpdateVirtualSwitchRequest{Description: proto.String("uplinks of the VMs")})
	if after := get(ovs1, "get", "port", "br0-up", "_uuid"); after != before {
		t.Fatalf("br0-up was made again (%s, was %s) for a description", after, before)
	}
	sw(&acliv1.UpdateVirtualSwitchRequest{Uplinks: proto.String("eth2"), BondType: proto.String("kNone")})
	for i, o := range []*libvirtharness.OVS{ovs1, ovs2} {
		if got := get(o, "list-ifaces", "br0"); got != "eth2" {
			t.Fatalf("h%d: interfaces of br0 after uplinks=eth2: %q", i+1, got)
		}
	}
	inNetns(t, ns2, "link", "del", "eth1")
	_, err := c.net.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Uplinks: proto.String("eth0,eth1")})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "host h2 has no interface eth1") {
		t.Fatalf("uplinks h2 lacks: %v, want refused naming h2 and eth1", err)
	}
	if got := get(ovs1, "list-ifaces", "br0"); got != "eth2" {
		t.Fatalf("h1 changed although h2 refused: %q", got)
	}
	if err := h2.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "h2 is not seen down", func() bool {
		h, err := c.host.GetHost(bg, &acliv1.GetHostRequest{Host: "h2"})
		return err == nil && h.NodeState == acliv1.NodeState_kNodeDown
	})
	_, downErr := c.net.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Uplinks: proto.String("eth0")})
	if status.Code(downErr) != codes.FailedPrecondition || !strings.Contains(downErr.Error(), "host h2 is down") {
		t.Fatalf("with h2 down: %v, want refused naming h2", downErr)
	}
	if got := get(ovs1, "list-ifaces", "br0"); got != "eth2" {
		t.Fatalf("h1 changed although h2 is down: %q", got)
	}
	vs, err := c.net.GetVirtualSwitch(bg, &acliv1.GetVirtualSwitchRequest{})
	if err != nil || !slices.Equal(vs.Uplinks, []string{"eth2"}) {
		t.Fatalf("vs0 after the refusals: %v %v, want uplinks eth2", vs, err)
	}
	t.Logf("refused with h2 down: %v", downErr)
}

// net.update_virtual_switch that fails on a host after every host passed
// the checks: h1's Open vSwitch bridge took the change, then h2's Linux
// bridge refused it (its new uplink, a macvlan over a 1500-byte link,
// cannot take MTU 9000). h1 and h2 are put back as they were (uplink,
// MTU), the error names h2, and the switch record is unchanged.
func TestLibvirtVirtualSwitchRollsBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(bg, 3*time.Minute)
	defer cancel()
	h1, ns1, ovs1 := ovsNetns(ctx, t, "br0")
	uplinks(t, ns1, "eth0", "eth1")
	libvirtharness.Require(t)
	ns2 := netns(t)
	inNetns(t, ns2, "link", "set", "lo", "up")
	hosts, err := libvirtharness.Start(ctx, libvirtharness.Options{Hosts: 1, NetNS: "/run/netns/" + ns2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hosts.Stop() })
	inNetns(t, ns2, "link", "add", "br0", "type", "bridge")
	inNetns(t, ns2, "link", "set", "br0", "up")
	uplinks(t, ns2, "eth0", "par")
	inNetns(t, ns2, "link", "add", "eth1", "link", "par", "type", "macvlan")
	c := bridgesManager(t, h1, hosts.Hosts[0])
	await(t, c)(c.net.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Uplinks: proto.String("eth0"), BondType: proto.String("kNone")}))

	// The two bridges, as a line each.
	bridges := func() (string, string) {
		var b1 []string
		for _, args := range [][]string{{"list-ifaces", "br0"}, {"get", "interface", "br0", "mtu_request"},
			{"get", "interface", "eth0", "mtu_request"}, {"get", "port", "br0-up", "bond_mode"}} {
			out, err := ovs1.Vsctl(ctx, args...)
			if err != nil {
				t.Fatal(err)
			}
			b1 = append(b1, strings.ReplaceAll(out, "\n", " "))
		}
		var b2 []string
		for _, dev := range []string{"br0", "eth0", "eth1"} {
			f := strings.Fields(inNetns(t, ns2, "-o", "link", "show", "dev", dev))
			master := "-"
			if i := slices.Index(f, "master"); i > 0 {
				master = f[i+1]
			}
			b2 = append(b2, fmt.Sprintf("%s mtu %s master %s", dev, f[slices.Index(f, "mtu")+1], master))
		}
		return strings.Join(b1, "; "), strings.Join(b2, "; ")
	}
	was1, was2 := bridges()
	if was1 != "eth0; 1500; 1500; []" || was2 != "br0 mtu 1500 master -; eth0 mtu 1500 master br0; eth1 mtu 1500 master -" {
		t.Fatalf("bridges after uplinks=eth0:\nh1: %s\nh2: %s", was1, was2)
	}
	_, err = c.net.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Uplinks: proto.String("eth1"), Mtu: proto.Int32(9000)})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "host h2: ip: ") ||
		!strings.Contains(err.Error(), "put back as it was on host h1, h2") {
		t.Fatalf("uplinks=eth1 mtu=9000 with h2 failing: %v, want refused naming h2, h1 and h2 put back", err)
	}
	t.Logf("refused: %v", err)
	if now1, now2 := bridges(); now1 != was1 || now2 != was2 {
		t.Fatalf("bridges after the failed change:\nh1: %s\nh2: %s\nwant\nh1: %s\nh2: %s", now1, now2, was1, was2)
	}
	vs, err := c.net.GetVirtualSwitch(bg, &acliv1.GetVirtualSwitchRequest{})
	if err != nil || !slices.Equal(vs.Uplinks, []string{"eth0"}) || vs.Mtu != 1500 {
		t.Fatalf("vs0 after the failed change: %v %v, want uplinks eth0, MTU 1500", vs, err)
	}
}

// Live migration between a host whose switch bridge br0 is an Open
// vSwitch bridge (h1) and one with Linux bridges (h2), both libvirtds in
// one namespace: the VM's NIC is a port of br0 tagged 10 on h1, a port of
// its network's Linux bridge on h2, after each move (the destination's
// definition is the destination's kind), and back.
func TestLibvirtMigrateBetweenBridgeKinds(t *testing.T) {
	ctx, cancel := context.WithTimeout(bg, 3*time.Minute)
	defer cancel()
	libvirtharness.Require(t)
	if err := libvirtharness.OVSAvailable(); err != nil {
		t.Skip(err)
	}
	ns := netns(t)
	inNetns(t, ns, "link", "set", "lo", "up")
	ovs, err := libvirtharness.StartOVS(ctx, "/run/netns/"+ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ovs.Stop(); err != nil {
			t.Error(err)
		}
	})
	var hosts []*libvirtharness.Host
	for _, env := range [][]string{ovs.Env(), nil} {
		cl, err := libvirtharness.Start(ctx, libvirtharness.Options{Hosts: 1, NetNS: "/run/netns/" + ns, Env: env})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Stop() })
		hosts = append(hosts, cl.Hosts[0])
	}
	if err := ovs.AddBridge(ctx, "br0"); err != nil {
		t.Fatal(err)
	}
	linuxBr := libvirt.BridgeName("n10")
	inNetns(t, ns, "link", "add", linuxBr, "type", "bridge")
	inNetns(t, ns, "link", "set", linuxBr, "up")
	c := bridgesManager(t, hosts...)
	await(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "n10", VlanId: 10}))
	await(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "mig", MemoryBytes: 64 << 20, NumVcpus: 1}))
	const mac = "50:6b:8d:45:00:20"
	await(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "mig", Network: "n10", Mac: mac}))
	await(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "mig", Transition: acliv1.PowerTransition_kPowerOn, Host: "h1"}))
	onOVS := func(when string) {
		t.Helper()
		port, err := ovs.Vsctl(ctx, "list-ports", "br0")
		if err != nil || !strings.HasPrefix(port, "vnet") {
			t.Fatalf("%s: ports of br0: %q %v, want the VM's", when, port, err)
		}
		tag, _ := ovs.Vsctl(ctx, "get", "port", port, "tag")
		if m, _ := ovs.Vsctl(ctx, "get", "interface", port, "external_ids:attached-mac"); tag != "10" || m != `"`+mac+`"` {
			t.Fatalf("%s: port %s: tag %q, MAC %s, want tag 10 for %s", when, port, tag, m, mac)
		}
		if p := strings.TrimSpace(inNetns(t, ns, "-o", "link", "show", "master", linuxBr)); p != "" {
			t.Fatalf("%s: ports of Linux bridge %s: %s, want none", when, linuxBr, p)
		}
	}
	onOVS("started on h1")
	migrate := func(to string) {
		t.Helper()
		await(t, c)(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "mig", Host: to}))
		vm, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "mig"})
		if err != nil || vm.HostName != to || vm.PowerState != acliv1.PowerState_kOn {
			t.Fatalf("after the migration to %s: %v %v", to, vm, err)
		}
	}
	migrate("h2")
	p := strings.Fields(inNetns(t, ns, "-o", "link", "show", "master", linuxBr))
	if len(p) < 2 || !strings.HasPrefix(p[1], "vnet") {
		t.Fatalf("on h2: ports of Linux bridge %s: %v, want the VM's", linuxBr, p)
	}
	if ports, _ := ovs.Vsctl(ctx, "list-ports", "br0"); ports != "" {
		t.Fatalf("on h2: ports of br0: %q, want none", ports)
	}
	migrate("h1")
	onOVS("migrated back to h1")
}
