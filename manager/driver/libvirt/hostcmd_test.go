package libvirt

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	gliderssh "github.com/gliderlabs/ssh"

	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
)

// A qemu+ssh host runs bridge commands over SSH: each argument arrives
// as one word however it is spelled, and a failing command's status and
// output come back.
func TestSSHShell(t *testing.T) {
	srv := &gliderssh.Server{Handler: func(s gliderssh.Session) {
		cmd := exec.Command("sh", "-c", s.RawCommand())
		cmd.Stdout, cmd.Stderr = s, s.Stderr()
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			s.Exit(ee.ExitCode())
			return
		}
		s.Exit(0)
	}}
	h := libvirtharness.ServeSSH(t, "127.0.0.1", srv)
	u, err := ParseURI("qemu+ssh://root@" + h.Addr + "/system?keyfile=" + h.KeyFile + "&known_hosts=" + h.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	sh := sshShell(u, DialOptions{})
	out, err := sh(context.Background(), "printf", "%s|", "a b", "it's", "$HOME", "")
	if err != nil || out != "a b|it's|$HOME||" {
		t.Fatalf("printf over ssh: %q %v", out, err)
	}
	out, err = sh(context.Background(), "sh", "-c", "echo no such bridge >&2; exit 2")
	if exitCode(err) != 2 || out != "no such bridge" || !strings.Contains(err.Error(), "sh: no such bridge") {
		t.Fatalf("failing command over ssh: %q %v (status %d)", out, err, exitCode(err))
	}
}

// A local host's commands run in the network namespace of the libvirtd
// behind its socket, with that daemon's OVS_* variables.
func TestLocalShellEntersLibvirtdNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("entering another process's network namespace needs root")
	}
	h := hosts(t).Hosts[0]
	sh, err := localShell(h.Socket)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := peerPID(h.Socket)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
	got, err := sh(context.Background(), "readlink", "/proc/self/ns/net")
	if err != nil || got != want {
		t.Fatalf("network namespace of a command: %q %v, want libvirtd's %q", got, err, want)
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if !strings.Contains(string(b), "libvirtd") {
		t.Fatalf("peer of %s is %q, want libvirtd", h.Socket, b)
	}
}

// A live NIC update on Open vSwitch sends back the interfaceid libvirt
// gave the port (libvirt refuses to change a port whose virtualport
// differs); a NIC without one keeps the port given.
func TestLivePort(t *testing.T) {
	dom := `<domain><devices><interface type='bridge'><mac address='50:6B:8D:00:00:01'/><source bridge='br0'/>` +
		`<virtualport type='openvswitch'><parameters interfaceid='9f2c'/></virtualport></interface></devices></domain>`
	def := &portXML{Type: "openvswitch"}
	if p := livePort(dom, "50:6b:8d:00:00:01", def); p.Parameters == nil || p.Parameters.InterfaceID != "9f2c" {
		t.Fatalf("port of the live NIC: %+v", p)
	}
	if p := livePort(dom, "50:6b:8d:00:00:02", def); p != def {
		t.Fatalf("port of a NIC the domain lacks: %+v", p)
	}
}
