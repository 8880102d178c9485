package commands

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/managertest"
)

// Against the real manager in-process: the basic commands, in the
// order an operator runs them, with their exit codes.
func TestAgainstManager(t *testing.T) {
	conn, _ := managertest.Start(t, managertest.Options{Hosts: 3})
	c := client.New(conn)
	run := (&harness{t: t, c: c}).run // in-process, against the real manager
	steps := []struct {
		line string
		code int
		want string // substring of stdout (or stderr when code != 0)
	}{
		{"cluster.get", 0, "Redundancy factor:"},
		{"host.list", 0, "AcropolisNormal"},
		{"net.create vlan100 vlan=100", 0, "NetworkCreate: complete"},
		{"net.create vlan100 vlan=100", 5, "vlan100"},
		{"vm.create web[01..03] memory=1G num_vcpus=2", 0, "VmCreate web03: complete"},
		{"vm.list", 0, "web02"},
		{"vm.nic_create web01 network=vlan100", 0, "VmNicCreate: complete"},
		{"vm.disk_create web01 create_size=10G", 0, "DiskCreate: complete"},
		{"vm.disk_list web01", 0, "scsi"},
		{"vm.nic_list web01", 0, "vlan100"},
		{"vm.on web*", 0, "VmPowerOn web01: complete"},
		{"vm.list power_state=on", 0, "web03"},
		{"-y vm.delete web01", 5, ""},
		{"vm.update web02 memory=2G", 0, "VmUpdate: complete"},
		{"vm.reboot web02", 0, "VmReboot: complete"},
		{"vm.off web02,web03", 0, "VmPowerOff web03: complete"},
		{"vm.get nosuchvm", 3, "nosuchvm"},
		{"-y vm.delete web02", 0, "VmDelete: complete"},
		{"task.list include_completed=true limit=5", 0, "Task UUID"},
		{"-y net.delete vlan100", 5, ""},
	}
	for _, s := range steps {
		code, out, errOut := run(strings.Fields(s.line)...)
		if code != s.code {
			t.Fatalf("%s: exit %d, want %d\nout: %s\nerr: %s", s.line, code, s.code, out, errOut)
		}
		text := out
		if code != 0 {
			text = errOut
		}
		if !strings.Contains(text, s.want) {
			t.Fatalf("%s: output lacks %q:\n%s", s.line, s.want, text)
		}
	}
	// A task UUID from wait=false can be waited for, and read.
	code, out, _ := run("vm.create", "late", "memory=1G", "wait=false")
	uuid := strings.TrimSpace(out)
	if code != 0 || len(uuid) != 36 {
		t.Fatalf("wait=false: %d %q", code, out)
	}
	if code, out, errOut := run("task.wait", uuid); code != 0 || !strings.Contains(out, "VmCreate: complete") {
		t.Fatalf("task.wait: %d %s %s", code, out, errOut)
	}
	if code, out, _ := run("-o", "json", "task.get", uuid); code != 0 || !json.Valid([]byte(out)) || !strings.Contains(out, `"status":"kSucceeded"`) {
		t.Fatalf("task.get: %d %s", code, out)
	}
}
