package manager_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
)

// A host added with a qemu+ssh URI: its sshd (a server of the test whose
// sessions run in the host's network namespace with its Open vSwitch
// environment, and which forwards the libvirt socket) carries both the
// libvirt connection and the bridge commands. net.update_virtual_switch
// bonds the uplinks of OVS bridge br0 there, and a trunked NIC starts as
// a port of br0 beside them (its network's VLAN native).
func TestLibvirtVirtualSwitchOverSSH(t *testing.T) {
	ctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	defer cancel()
	hh, ns, ovs := ovsNetns(ctx, t, "br0")
	uplinks(t, ns, "eth0", "eth1")
	uri := hostSSHD(t, hh, ns, ovs)
	c := bridgesManager(t)
	await(t, c)(c.host.AddHost(bg, &acliv1.AddHostRequest{Name: "h1", HypervisorIp: hh.Addr, LibvirtUri: uri}))
	await(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "n1", VlanId: 10}))

	await(t, c)(c.net.UpdateVirtualSwitch(bg, &acliv1.UpdateVirtualSwitchRequest{Uplinks: proto.String("eth0,eth1"), BondType: proto.String("kBalanceSlb")}))
	if got, _ := ovs.Vsctl(ctx, "list-ifaces", "br0"); got != "eth0\neth1" {
		t.Fatalf("interfaces of br0 after uplinks=eth0,eth1 over ssh: %q", got)
	}
	if got, _ := ovs.Vsctl(ctx, "get", "port", "br0-up", "bond_mode"); got != "balance-slb" {
		t.Fatalf("bond_mode of br0-up: %s", got)
	}

	await(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "tr", MemoryBytes: 64 << 20, NumVcpus: 1}))
	await(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "tr", Network: "n1", Mac: "50:6b:8d:45:00:04", VlanMode: acliv1.NetworkMode_kTrunked, TrunkedNetworks: []int32{7}}))
	await(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "tr", Transition: acliv1.PowerTransition_kPowerOn, Host: "h1"}))
	ports, _ := ovs.Vsctl(ctx, "list-ports", "br0")
	port, ok := strings.CutPrefix(ports, "br0-up\n")
	if !ok || !strings.HasPrefix(port, "vnet") {
		t.Fatalf("ports of br0: %q, want br0-up and the VM's", ports)
	}
	if got, _ := ovs.Vsctl(ctx, "get", "port", port, "tag", "trunks"); got != "10\n[7, 10]" {
		t.Fatalf("tag and trunks of port %q of br0: %q, want 10 and [7, 10]", port, got)
	}
	await(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "tr", Transition: acliv1.PowerTransition_kPowerOff}))
}

// hostSSHD serves SSH for root with a key of the test and returns the
// qemu+ssh URI of hh through it.
func hostSSHD(t *testing.T, hh *libvirtharness.Host, ns string, ovs *libvirtharness.OVS) string {
	t.Helper()
	srv := &gliderssh.Server{
		Handler: func(s gliderssh.Session) {
			cmd := exec.Command("nsenter", "--net=/run/netns/"+ns, "sh", "-c", s.RawCommand())
			cmd.Env = append(os.Environ(), ovs.Env()...)
			cmd.Stdout, cmd.Stderr = s, s.Stderr()
			var ee *exec.ExitError
			if err := cmd.Run(); errors.As(err, &ee) {
				s.Exit(ee.ExitCode())
				return
			}
			s.Exit(0)
		},
		ChannelHandlers: map[string]gliderssh.ChannelHandler{
			"session":                        gliderssh.DefaultSessionHandler,
			"direct-streamlocal@openssh.com": libvirtharness.ForwardSocket,
		},
	}
	return libvirtharness.ServeSSH(t, "127.44.0.1", srv).URI(hh.Socket)
}
