package commands

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/driver/libvirt"
	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
	"github.com/acli-dev/acli/manager/managertest"
)

func TestParseHostAddRemove(t *testing.T) {
	reg := Default()
	inv, err := reg.Parse(strings.Fields("host.add h4 hypervisor_ip=10.0.0.24 libvirt_uri=qemu+tcp://10.0.0.24/system cvm_ip=10.0.0.34"))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Args[0][0] != "h4" || inv.Values["hypervisor_ip"].Raw != "10.0.0.24" || inv.Values["libvirt_uri"].Raw != "qemu+tcp://10.0.0.24/system" ||
		inv.Values["cvm_ip"].Raw != "10.0.0.34" || !inv.Values["wait"].Bool {
		t.Fatalf("parsed %+v %+v", inv.Args, inv.Values)
	}
	if inv, err = reg.Parse(strings.Fields("host.add h5 hypervisor_ip=fd00::25 libvirt_uri=qemu+ssh://root@[fd00::25]/system")); err != nil || inv.Set["cvm_ip"] {
		t.Fatalf("IPv6 host without a CVM: %v %+v", err, inv)
	}
	if inv, err = reg.Parse(strings.Fields("host.remove 10.0.0.24")); err != nil || inv.Args[0][0] != "10.0.0.24" || inv.Cmd.Destructive == "" {
		t.Fatalf("host.remove: %v %+v", err, inv)
	}
	bad := []struct{ line, want string }{
		{"host.add", "missing name (usage: host.add <name>"},
		{"host.add h4 libvirt_uri=qemu+tcp://10.0.0.24/system", "missing required key hypervisor_ip=<string>, e.g. hypervisor_ip=10.0.0.21"},
		{"host.add h4 hypervisor_ip=10.0.0.24", "missing required key libvirt_uri=<string>, e.g. libvirt_uri=qemu+tcp://10.0.0.21/system"},
		{"host.add h4 hypervisor_ip=10.0.0 libvirt_uri=qemu:///system", `hypervisor_ip="10.0.0" is not an IP address, e.g. hypervisor_ip=10.0.0.21`},
		{"host.add h4 hypervisor_ip=10.0.0.24 cvm_ip=cvm4 libvirt_uri=qemu:///system", `cvm_ip="cvm4" is not an IP address`},
		{"host.add h4 hypervisor_ip=10.0.0.24 cvm_ip=10.0.0.24 libvirt_uri=qemu:///system", "cvm_ip must differ from hypervisor_ip"},
		{"host.add h4 hypervisor_ip=10.0.0.24 libvirt=qemu:///system", `unknown key "libvirt"; did you mean "libvirt_uri"?`},
		{"host.add h[4..5] hypervisor_ip=10.0.0.24 libvirt_uri=qemu:///system", "takes one name"},
		{"host.add h4,h5 hypervisor_ip=10.0.0.24 libvirt_uri=qemu:///system", "takes one name"},
		{"host.remove", "missing host"},
		{"host.remove h*", "patterns like"},
		{"host.remove h1 h2", `unexpected argument "h2"`},
	}
	for _, c := range bad {
		_, err := reg.Parse(strings.Fields(c.line))
		if err == nil {
			t.Errorf("%q: no error, want %q", c.line, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q:\n got  %v\n want one line with %s", c.line, err, c.want)
		}
		if client.ExitCode(err) != client.ExitUsage {
			t.Errorf("%q: exit %d, want 2", c.line, client.ExitCode(err))
		}
	}
}

// On a sim cluster the manager refuses both, saying why and what to run
// instead, and nothing changes.
func TestHostAddRemoveOnSim(t *testing.T) {
	conn, _ := managertest.Start(t, managertest.Options{Hosts: 3})
	c := client.New(conn)
	run := (&harness{t: t, c: c}).run // in-process, against the real manager
	code, _, errOut := run("host.add", "h4", "hypervisor_ip=127.20.0.24", "libvirt_uri=qemu+tcp://127.20.0.24/system")
	want := "Error: host.add needs clusterd --driver libvirt; the sim driver's hosts come from its configuration (clusterd --sim N or --sim-config FILE)\n"
	if code != 5 || !strings.HasPrefix(errOut, want) {
		t.Fatalf("host.add on sim: exit %d\n%s", code, errOut)
	}
	// Confirmation comes first, then the refusal.
	if code, _, errOut := run("host.remove", "node-1"); code != 2 || !strings.Contains(errOut, "host.remove needs confirmation (Remove host node-1?)") {
		t.Fatalf("host.remove without -y: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := run("-y", "host.remove", "node-1"); code != 5 || !strings.Contains(errOut, "host.remove needs clusterd --driver libvirt") {
		t.Fatalf("host.remove on sim: exit %d\n%s", code, errOut)
	}
	if code, out, _ := run("host.list"); code != 0 || strings.Count(out, "AcropolisNormal") != 3 || strings.Contains(out, "127.20.0.24") {
		t.Fatalf("hosts changed:\n%s", out)
	}
}

// Against a manager driving real libvirtd hosts, in-process.
func TestHostAddRemoveOnLibvirt(t *testing.T) {
	hosts := libvirtharness.StartT(t, 2)
	drv := libvirt.NewDriver(libvirt.Config{HeartbeatInterval: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	conn, _ := managertest.Start(t, managertest.Options{Driver: drv})
	c := client.New(conn)
	run := (&harness{t: t, c: c}).run // in-process, against the real manager
	a, b := hosts.Hosts[0], hosts.Hosts[1]
	for _, h := range hosts.Hosts {
		code, out, errOut := run("host.add", h.Name, "hypervisor_ip="+h.Addr, "libvirt_uri="+h.TCPURI())
		if code != 0 || out != "HostAdd: pending\nHostAdd: complete\n" {
			t.Fatalf("host.add %s: exit %d\n%s%s", h.Name, code, out, errOut)
		}
	}
	steps := []struct {
		args   []string
		code   int
		stderr string // the first line, exactly
	}{
		{[]string{"host.add", "h9", "hypervisor_ip=127.0.0.250", "libvirt_uri=" + a.TCPURI()}, 5,
			"Error: HostAdd: host h9 cannot join: the libvirt host at " + a.TCPURI() + " (host_uuid " + a.UUID + ") is already in the cluster as h1 (" + a.TCPURI() + ")"},
		{[]string{"host.add", "h1", "hypervisor_ip=127.0.0.250", "libvirt_uri=qemu+tcp://127.0.0.250/system"}, 5,
			"Error: host h1 already exists: host names are unique (uuid " + a.UUID + ")"},
		{[]string{"vm.create", "web", "memory=64M"}, 0, ""},
		{[]string{"vm.on", "web", "host=h1"}, 0, ""},
		{[]string{"-y", "host.remove", "h1"}, 5,
			"Error: host h1 runs 1 VM(s) (web); migrate them away or power them off first (host.enter_maintenance_mode h1)"},
		{[]string{"-y", "host.remove", b.Addr}, 0, ""},
		{[]string{"host.get", "h2"}, 3, `Error: host "h2" not found (did you mean "h1"?)`},
	}
	for _, s := range steps {
		code, out, errOut := run(s.args...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code != s.code || first != s.stderr {
			t.Fatalf("%s: exit %d, want %d\nstderr: %q\nwant:   %q\nstdout: %s", strings.Join(s.args, " "), code, s.code, first, s.stderr, out)
		}
	}
	if code, out, _ := run("host.list"); code != 0 || !strings.Contains(out, a.Addr) || strings.Contains(out, b.Addr) {
		t.Fatalf("host.list after removing h2:\n%s", out)
	}
}
