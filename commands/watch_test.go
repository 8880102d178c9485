package commands

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/managertest"
)

// --watch against the real manager: the listing, then one line per row
// that changes, on a terminal and in a pipe; Ctrl-C (ctx) ends it with 0.
func TestListWatch(t *testing.T) {
	conn, _ := managertest.Start(t, managertest.Options{Hosts: 3})
	h := &harness{t: t, c: client.New(conn)}
	for _, line := range []string{"vm.create web01,web02,db01 memory=1G"} {
		if code, _, errOut := h.run(strings.Fields(line)...); code != 0 {
			t.Fatalf("%s: exit %d: %s", line, code, errOut)
		}
	}
	// optional: a line that may or may not show (a state passed through
	// quickly); the watch ends once until is printed.
	var optional, until string
	watch := func(tty bool, args []string, change []string, want string) {
		t.Helper()
		h.tty = tty
		f, _, errb := h.factory()
		out := &syncBuffer{}
		f.IO.Out = out
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan int, 1)
		go func() { done <- f.Execute(ctx, args) }()
		waitOut := func(lines int) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for strings.Count(out.String(), "\n") < lines {
				if time.Now().After(deadline) {
					t.Fatalf("%v: %d lines, want %d:\n%s%s", args, strings.Count(out.String(), "\n"), lines, out.String(), errb.String())
				}
				time.Sleep(time.Millisecond)
			}
		}
		waitOut(strings.Count(want, "\n") - len(change) + strings.Count(strings.Join(change, ","), "db01 host"))
		for _, line := range change {
			n := strings.Count(out.String(), "\n")
			if code, _, errOut := h.run(strings.Fields(line)...); code != 0 {
				t.Fatalf("%s: exit %d: %s", line, code, errOut)
			}
			if !strings.HasPrefix(line, "vm.on db01") { // filtered out: no line
				waitOut(n + 1)
			}
		}
		for until != "" && !strings.Contains(out.String(), until) {
			time.Sleep(time.Millisecond)
		}
		cancel()
		code := <-done
		got := out.String()
		if optional != "" {
			got = strings.Replace(got, optional, "", 1)
		}
		if code != 0 || got != want || errb.String() != "" {
			t.Fatalf("%v: exit %d\n%s--- want ---\n%s--- stderr ---\n%s", args, code, out.String(), want, errb.String())
		}
	}
	// In a pipe: one line per change, in the first table's columns.
	watch(false, []string{"-c", "name,power_state,host", "vm.list", "--watch", "web*"},
		[]string{"vm.on web01 host=h1", "vm.on web02 host=h2", "vm.migrate web01 host=h3", "vm.on db01 host=h1", "vm.off web02", "-y vm.delete web02"},
		"VM name  Power state  Host\n"+
			"web01    kOff\n"+
			"web02    kOff\n"+
			"web01    kOn          h1\n"+
			"web02    kOn          h2\n"+
			"web01    kOn          h3\n"+
			"web02    kOff\n"+
			"web02    kOff               (deleted)\n")
	// A row that leaves the filter is marked so; JSON says why in "removed".
	watch(false, []string{"--jq", `.name + " " + (.removed // "listed")`, "vm.list", "-w", "power_state=on"},
		[]string{"vm.off web01"},
		"db01 listed\n"+
			"web01 listed\n"+
			"web01 filtered out\n")
	watch(false, []string{"-o", "csv", "-c", "name,power_state", "vm.list", "-w", "power_state=off"},
		[]string{"-y vm.delete web01"},
		"name,power_state\n"+
			"web01,kOff\n"+
			"web01,kOff,deleted\n")
	// On a terminal, the same lines; host.list by its -w shorthand.
	// (states that need attention in colour).
	optional, until = "h2               \x1b[33mEnteringMaintenanceMode\x1b[0m\n", "EnteredMaintenanceMode"
	watch(true, []string{"-w", "-c", "name,node_state", "host.list", "h[12]"},
		[]string{"host.enter_maintenance_mode h2"},
		"Hypervisor Name  Node state\n"+
			"h1               AcropolisNormal\n"+
			"h2               AcropolisNormal\n"+
			"h2               \x1b[33mEnteredMaintenanceMode\x1b[0m\n")
	optional, until = "", ""
	// Names: one per change.
	watch(false, []string{"-o", "name", "vm.list", "-w", "db01"}, []string{"vm.off db01"}, "db01\ndb01\n")

	if code, _, errOut := h.run("-w", "task.list"); code != 2 || errOut != "Error: --watch: task.list cannot watch; vm.list and host.list can\n" {
		t.Fatalf("task.list -w: %d %q", code, errOut)
	}
}
