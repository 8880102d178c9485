package libvirt

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
)

// An Open vSwitch bridge (a real ovsdb-server and ovs-vswitchd of the
// test, in a namespace it made) is put back as it was read: the bond port
// with its interfaces, mode, LACP, primary and MTUs, and, where there was
// no uplink port, none.
func TestSwitchRestoreOVS(t *testing.T) {
	if err := libvirtharness.OVSAvailable(); err != nil {
		t.Skip(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("a network namespace needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := fmt.Sprintf("acli-u%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	for _, n := range []string{"eth0", "eth1", "eth2"} {
		if out, err := exec.Command("ip", "-n", ns, "link", "add", n, "type", "veth", "peer", "name", "p-"+n).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	ovs, err := libvirtharness.StartOVS(ctx, "/run/netns/"+ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ovs.Stop(); err != nil {
			t.Error(err)
		}
	})
	if err := ovs.AddBridge(ctx, "br0"); err != nil {
		t.Fatal(err)
	}
	sh := func(ctx context.Context, argv ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + ns, "--"}, argv...)...)
		cmd.Env = append(os.Environ(), ovs.Env()...)
		out, err := cmd.CombinedOutput()
		return commandResult(argv, out, err)
	}
	p := hostSwitch{host: &acliv1.Host{Uuid: "u1", Name: "h1"}, sh: sh, kind: ovsBridge}
	bridge := func() string {
		t.Helper()
		var out []string
		for _, args := range [][]string{{"list-ifaces", "br0"}, {"get", "interface", "br0", "mtu_request"},
			{"--if-exists", "get", "port", "br0-up", "bond_mode", "lacp", "other_config:bond-primary"},
			{"--if-exists", "get", "interface", "eth0", "mtu_request"}, {"--if-exists", "get", "interface", "eth1", "mtu_request"}} {
			o, err := ovs.Vsctl(ctx, args...)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.ReplaceAll(o, "\n", " "))
		}
		return strings.Join(out, "; ")
	}
	change := &acliv1.VirtualSwitch{BridgeName: "br0", Uplinks: []string{"eth2"}, BondType: "kBalanceTcp", Lacp: true, Mtu: 1400}
	roundTrip := func(what string) {
		t.Helper()
		was := bridge()
		if p.was, err = p.snapshot(ctx, change); err != nil {
			t.Fatal(err)
		}
		if err := p.applyOVS(ctx, change); err != nil {
			t.Fatal(err)
		}
		if now := bridge(); now == was {
			t.Fatalf("%s: the change left the bridge as it was: %s", what, now)
		}
		if err := p.restore(ctx, change); err != nil {
			t.Fatal(err)
		}
		if now := bridge(); now != was {
			t.Fatalf("%s: put back as\n%s\nwant\n%s", what, now, was)
		}
		t.Logf("%s: %s", what, was)
	}
	roundTrip("no uplink port")
	bond := &acliv1.VirtualSwitch{BridgeName: "br0", Uplinks: []string{"eth0", "eth1"}, BondType: "kActiveBackup", Mtu: 9000,
		ActiveUplinks: []*acliv1.HostUplink{{HostUuid: "u1", Interface: "eth1"}}}
	if err := p.applyOVS(ctx, bond); err != nil {
		t.Fatal(err)
	}
	roundTrip("an active-backup bond")
}
