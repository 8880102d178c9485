package manager_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/libvirt"
	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
	"github.com/acli-dev/acli/manager/managertest"
)

// netns makes a network namespace for the test and removes it after; it
// skips, saying so, when this machine cannot create one.
func netns(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command: cannot create a network namespace here")
	}
	name := fmt.Sprintf("acli-t%d-%s", os.Getpid(), uuid.NewString()[:6])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("this machine cannot create network namespaces (ip netns add: %v: %s)", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return name
}

// inNetns runs ip in the namespace and returns its output.
func inNetns(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// With --libvirt-network-bridges (Config.NetworkBridges) a VM's NIC is
// plugged into its network's bridge on the host that runs it. The host is
// a libvirtd in a network namespace the test made, holding the bridge
// acli-n1, so nothing touches the machine's own interfaces: the real
// domain carries the NIC's MAC on that bridge, and its tap device is a port
// of the bridge while the VM runs and gone when it stops.
func TestLibvirtNicOnBridgeInNetns(t *testing.T) {
	ctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	defer cancel()
	c, hh, ns := bridgedHost(ctx, t)
	await(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "br", MemoryBytes: 64 << 20, NumVcpus: 1}))
	const mac = "50:6b:8d:45:00:01"
	await(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "br", Network: "n1", Mac: mac}))
	await(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "br", Transition: acliv1.PowerTransition_kPowerOn, Host: hh.Name}))
	vm, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "br"})
	if err != nil {
		t.Fatal(err)
	}

	conn, err := libvirt.Dial(ctx, hh.UnixURI(), libvirt.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	l := conn.Raw()
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.Uuid)))
	if err != nil {
		t.Fatal(err)
	}
	x, err := l.DomainGetXMLDesc(dom, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<mac address='" + mac + "'/>", "<source bridge='" + libvirt.BridgeName("n1") + "'/>"} {
		if !strings.Contains(x, want) {
			t.Fatalf("the running domain has no %s:\n%s", want, x)
		}
	}
	ports := func() []string {
		return strings.Fields(inNetns(t, ns, "-o", "link", "show", "master", libvirt.BridgeName("n1")))
	}
	p := ports()
	if len(p) < 2 || !strings.HasPrefix(p[1], "vnet") {
		t.Fatalf("ports of %s in %s while the VM runs: %v, want its tap", libvirt.BridgeName("n1"), ns, p)
	}
	// vm.nic_update connected=false is a live link-state change, and back.
	for _, up := range []bool{false, true} {
		await(t, c)(c.vm.UpdateNic(bg, &acliv1.UpdateNicRequest{Vm: "br", Mac: mac, Connected: proto.Bool(up)}))
		x, err := l.DomainGetXMLDesc(dom, 0)
		if err != nil {
			t.Fatal(err)
		}
		if down := strings.Contains(x, "<link state='down'/>"); down == up {
			t.Fatalf("connected=%t: the running domain's link is down=%t:\n%s", up, down, x)
		}
	}
	await(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "br", Transition: acliv1.PowerTransition_kPowerOff}))
	if p := ports(); len(p) != 0 {
		t.Fatalf("ports of %s after the VM stopped: %v", libvirt.BridgeName("n1"), p)
	}
	t.Logf("vm br's NIC %s was port %s of %s in network namespace %s", mac, strings.TrimSuffix(p[1], ":"), libvirt.BridgeName("n1"), ns)
}

// A trunked NIC (acli's vlan_mode=kTrunked) on a real libvirtd whose
// network bridge is a Linux bridge, in a network namespace the test made:
// libvirt tags VLANs only on Open vSwitch ports, so the power-on is refused
// with a line naming the NIC, its VLANs, the bridge and what to do, and
// nothing is left defined; the same VM with an access NIC starts there.
func TestLibvirtTrunkedNicInNetns(t *testing.T) {
	ctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	defer cancel()
	c, hh, _ := bridgedHost(ctx, t)
	await(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "tr", MemoryBytes: 64 << 20, NumVcpus: 1}))
	const mac = "50:6b:8d:45:00:02"
	await(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "tr", Network: "n1", Mac: mac, VlanMode: acliv1.NetworkMode_kTrunked, TrunkedNetworks: []int32{30, 20}}))
	task, err := c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "tr", Transition: acliv1.PowerTransition_kPowerOn, Host: hh.Name})
	final := wait(t, c, task, err)
	want := "NIC " + mac + " is trunked (VLANs 20,30) and bridge " + libvirt.BridgeName("n1") + " there is a Linux bridge"
	if final.Status != acliv1.TaskStatus_kFailed || !strings.Contains(final.Error, want) || !strings.Contains(final.Error, "vlan_mode=kAccess") {
		t.Fatalf("power-on of a trunked NIC: %s %q, want failed with %q", final.Status, final.Error, want)
	}
	conn, err := libvirt.Dial(ctx, hh.UnixURI(), libvirt.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	vm, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "tr"})
	if err != nil {
		t.Fatal(err)
	}
	if vm.PowerState != acliv1.PowerState_kOff {
		t.Fatalf("vm tr is %s after the refusal", vm.PowerState)
	}
	if _, err := conn.Raw().DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.Uuid))); err == nil {
		t.Fatal("the refused domain is still defined")
	}
	await(t, c)(c.vm.UpdateNic(bg, &acliv1.UpdateNicRequest{Vm: "tr", Mac: mac, VlanMode: acliv1.NetworkMode_kAccess}))
	await(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "tr", Transition: acliv1.PowerTransition_kPowerOn, Host: hh.Name}))
	await(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "tr", Transition: acliv1.PowerTransition_kPowerOff}))
	t.Logf("refused: %s", final.Error)
}

// bridgedHost starts one libvirtd in a network namespace the test made,
// adds the bridge of network n1 there (once libvirtd runs: a bridge there
// before it starts stalls its start-up), and a manager with --libvirt-network-bridges
// that has the host and network n1 (VLAN 10).
func bridgedHost(ctx context.Context, t *testing.T) (clients, *libvirtharness.Host, string) {
	t.Helper()
	libvirtharness.Require(t)
	ns := netns(t)
	inNetns(t, ns, "link", "set", "lo", "up")
	hosts, err := libvirtharness.Start(ctx, libvirtharness.Options{Hosts: 1, NetNS: "/run/netns/" + ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hosts.Stop() })
	hh := hosts.Hosts[0]
	inNetns(t, ns, "link", "add", libvirt.BridgeName("n1"), "type", "bridge")
	inNetns(t, ns, "link", "set", libvirt.BridgeName("n1"), "up")

	drv := libvirt.NewDriver(libvirt.Config{NetworkBridges: true, HeartbeatInterval: lvHeartbeat, ShutdownTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := managertest.New(t, managertest.Options{Driver: drv})
	c := newClients(h.Conn)
	await(t, c)(c.host.AddHost(bg, &acliv1.AddHostRequest{Name: hh.Name, HypervisorIp: hh.Addr, LibvirtUri: hh.UnixURI()}))
	await(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "n1", VlanId: 10}))
	return c, hh, ns
}

// net.update_virtual_switch on a libvirt host whose vs0 bridge br0 is a
// Linux bridge: the uplink becomes br0's port, a new one replaces it with
// the MTU asked, and two uplinks, which a Linux bridge cannot bond, are
// refused with the bridge unchanged.
func TestLibvirtVirtualSwitchOnLinuxBridge(t *testing.T) {
	ctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	defer cancel()
	c, hh, ns := bridgedHost(ctx, t)
	inNetns(t, ns, "link", "add", "br0", "type", "bridge")
	inNetns(t, ns, "link", "set", "br0", "up")
	uplinks(t, ns, "eth0", "eth1")
	ports := func() []string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(inNetns(t, ns, "-o", "link", "show", "master", "br0")), "\n") {
			if f := strings.Fields(l); len(f) > 1 {
				out = append(out, strings.Split(f[1], "@")[0])
			}
		}
		return out
	}
	sw := func(req *acliv1.UpdateVirtualSwitchRequest) { await(t, c)(c.net.UpdateVirtualSwitch(bg, req)) }
	sw(&acliv1.UpdateVirtualSwitchRequest{Uplinks: proto.String("eth0"), BondType: proto.String("kNone")})
	if p := ports(); !slices.Equal(p, []string{"eth0"}) {
		t.Fatalf("ports of br0 after uplinks=eth0: %v", p)
	}
	sw(&acliv1.UpdateVirtualSwitchRequest{Uplinks: proto.String("eth1"), Mtu: proto.Int32(1400)})
	if p := ports(); !slices.Equal(p, []string{"eth1"}) {
		t.Fatalf("ports of br0 after uplinks=eth1: %v", p)
	}
	if l := inNetns(t, ns, "link", "show", "eth1"); !strings.Contains(l, "mtu 1400") {
		t.Fatalf("eth1 after mtu=1400: %s", l)
	}
	_, err := c.net.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Uplinks: proto.String("eth0,eth1")})
	want := "host " + hh.Name + " has a Linux bridge br0, which takes one uplink (eth0, eth1 given)"
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), want) {
		t.Fatalf("two uplinks on a Linux bridge: %v, want refused with %q", err, want)
	}
	if p := ports(); !slices.Equal(p, []string{"eth1"}) {
		t.Fatalf("ports of br0 after the refusal: %v", p)
	}
	t.Logf("refused: %v", err)
}
