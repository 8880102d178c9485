package commands

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/managertest"
)

// task.cancel against the real manager: a live migration stops and the VM
// stays; ended tasks are refused (exit 5); Ctrl-C while following a
// cancellable task says how to stop it.
func TestTaskCancel(t *testing.T) {
	conn, _ := managertest.Start(t, managertest.Options{Hosts: 3, Speed: 2}) // an 8 GiB migration takes ~3.5 s
	h := &harness{t: t, c: client.New(conn)}
	for _, line := range []string{"vm.create slow memory=8G", "vm.on slow host=h1"} {
		if code, _, errOut := h.run(strings.Fields(line)...); code != 0 {
			t.Fatalf("%s: exit %d: %s", line, code, errOut)
		}
	}
	code, out, errOut := h.run("vm.migrate", "slow", "host=h2", "wait=false")
	uuid := strings.TrimSpace(out)
	if code != 0 || len(uuid) != 36 {
		t.Fatalf("vm.migrate wait=false: %d %q %q", code, out, errOut)
	}
	code, out, errOut = h.run("task.cancel", uuid, "reason=wrong host")
	if code != 0 || errOut != "" || !regexp.MustCompile(`\nVmMigrate: aborted: cancelled \(wrong host\): .+\n$`).MatchString("\n"+out) {
		t.Fatalf("task.cancel: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ := h.run("--jq", ".[0].host_name", "vm.list", "slow"); code != 0 || out != "h1\n" {
		t.Fatalf("the vm moved: %d %q", code, out)
	}
	code, _, errOut = h.run("task.cancel", uuid)
	if want := "Error: task " + uuid + " (kVmMigrate) has already ended (kAborted)\n"; code != 5 || !strings.HasPrefix(errOut, want) {
		t.Fatalf("cancel of an ended task: exit %d %q, want %q", code, errOut, want)
	}
	if code, out, _ := h.run("task.wait", uuid); code != 1 || !strings.Contains(out, "VmMigrate: aborted: cancelled (wrong host)") {
		t.Fatalf("task.wait of a cancelled task: exit %d %q", code, out)
	}

	// Ctrl-C while following: the migration goes on, and can be stopped.
	f, _, errb := h.factory()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	code = f.Execute(ctx, []string{"vm.migrate", "slow", "host=h2"})
	m := regexp.MustCompile(`^Error: interrupted; VmMigrate goes on as task (\S+) on clusterd \(see: acli task.wait (\S+); to stop it, try: acli task.cancel (\S+)\)\n$`).FindStringSubmatch(errb.String())
	if code != 7 || m == nil || m[1] != m[2] || m[1] != m[3] {
		t.Fatalf("Ctrl-C: exit %d %q", code, errb.String())
	}
	if code, out, errOut := h.run("task.cancel", m[1]); code != 0 || !strings.Contains(out, "VmMigrate: aborted: cancelled") {
		t.Fatalf("task.cancel after Ctrl-C: exit %d %q %q", code, out, errOut)
	}
}
