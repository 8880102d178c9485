package commands

import (
	"context"
	"regexp"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/managertest"
)

// A command on several targets acts on all of them or on none: one target
// that does not exist fails the whole command before anything changes.
func TestMultiTargetCommandsActOnAllOrNone(t *testing.T) {
	conn, _ := managertest.Start(t, managertest.Options{Hosts: 3})
	c := client.New(conn)
	h := &harness{t: t, c: c}
	for _, line := range []string{"vm.create web01 memory=1G", "vm.create db01 memory=1G", "vm.on web01 host=h1", "vm.on db01 host=h1"} {
		if code, _, errOut := h.run(strings.Fields(line)...); code != 0 {
			t.Fatalf("%s: exit %d: %s", line, code, errOut)
		}
	}
	tasks := func() int {
		resp, err := c.Task.ListTasks(context.Background(), &acliv1.ListTasksRequest{IncludeCompleted: true})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.GetTasks())
	}
	before := tasks()
	// acli's "Unknown name:" lines go to stdout, which scripts grep.
	for _, s := range []struct{ line, stderr string }{
		{"vm.off web01 nosuch", `Error: VM "nosuch" not found; nothing was done` + "\n"},
		{"vm.off nosuch web01", `Error: VM "nosuch" not found; nothing was done` + "\n"},
		{"vm.off web01,web0", `Error: VM "web0" not found (did you mean "web01"?); nothing was done` + "\n"},
		{"vm.off web* nosuch other", `Error: VMs "nosuch" and "other" not found; nothing was done` + "\n"},
		{"-y vm.delete web01 nosuch", `Error: VM "nosuch" not found; nothing was done` + "\n"},
		// A host given as a positional rather than host=h2.
		{"vm.migrate web01 h2", `Error: VM "h2" not found (did you mean host=h2?); nothing was done` + "\n"},
		{"vm.migrate web01 db01 h2", `Error: VM "h2" not found (did you mean host=h2?); nothing was done` + "\n"},
		{"host.update h1 h9 schedulable=false", `Error: host "h9" not found (did you mean "h1", "h2" or "h3"?); nothing was done` + "\n"},
	} {
		code, out, errOut := h.run(strings.Fields(s.line)...)
		missing := regexp.MustCompile(`"([^"]+)" (and "([^"]+)" )?not found`).FindStringSubmatch(s.stderr)
		want := "Unknown name: " + missing[1] + "\n"
		if missing[3] != "" {
			want += "Unknown name: " + missing[3] + "\n"
		}
		if code != client.ExitNotFound || out != want || errOut != s.stderr {
			t.Errorf("%s: exit %d\nout: %q\nerr: %q\nwant err: %q", s.line, code, out, errOut, s.stderr)
		}
	}
	if n := tasks(); n != before {
		t.Fatalf("%d tasks ran for commands that should have done nothing", n-before)
	}
	for _, name := range []string{"web01", "db01"} {
		vm, err := c.Vm.GetVm(context.Background(), &acliv1.GetVmRequest{Vm: name})
		if err != nil {
			t.Fatal(err)
		}
		host, err := c.Host.GetHost(context.Background(), &acliv1.GetHostRequest{Host: "h1"})
		if err != nil {
			t.Fatal(err)
		}
		if vm.GetPowerState() != acliv1.PowerState_kOn || vm.GetHostUuid() != host.GetUuid() {
			t.Errorf("%s is %s on %s, want still on at h1", name, vm.GetPowerState(), vm.GetHostUuid())
		}
	}
	// Every target present: the command acts on all of them.
	if code, out, errOut := h.run("vm.off", "web01", "db01"); code != 0 || !strings.Contains(out, "VmPowerOff db01: complete") {
		t.Fatalf("vm.off web01 db01: exit %d\nout: %s\nerr: %s", code, out, errOut)
	}
}
