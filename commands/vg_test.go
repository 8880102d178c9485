package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/managertest"
)

const client1 = "iqn.1994-05.com.redhat:client1"

func TestParseVGInitiator(t *testing.T) {
	reg := Default()
	ok := []struct{ line, want string }{
		{"vg.attach_external data " + client1, client1},
		{"vg.attach_external data initiator_name=" + client1, client1},
		{"vg.attach_external data IQN.1994-05.COM.RedHat:Client1", client1},
		{"vg.attach_external data " + client1 + " initiator_name=IQN.1994-05.com.redhat:client1", client1},
		{"vg.detach_external data eui.02004567a425678d", "eui.02004567A425678D"},
		{"vg.attach_external data iqn.2001-04.com.example", "iqn.2001-04.com.example"},
	}
	for _, c := range ok {
		inv, err := reg.Parse(strings.Fields(c.line))
		if err != nil {
			t.Errorf("%s: %v", c.line, err)
			continue
		}
		if got, err := initiatorOf(inv); err != nil || got != c.want {
			t.Errorf("%s: initiator %q %v, want %q", c.line, got, err, c.want)
		}
	}
	bad := []struct{ line, want string }{
		{"vg.attach_external data", "missing initiator: give its IQN as the second argument or initiator_name="},
		{"vg.attach_external data iqn:2024-01.com.example:h1", "did you mean iqn.2024-01.com.example:h1?); expected iqn.YYYY-MM.reversed.domain[:id] or eui.<16 hex digits>"},
		{"vg.attach_external data iqn.2024-13.com.example", "month 01-12"},
		{"vg.attach_external data eui.1234", "needs exactly 16 hexadecimal digits"},
		{"vg.attach_external data host1", "must start with iqn. or eui."},
		{"vg.attach_external data " + client1 + " initiator_name=iqn.1994-05.com.redhat:client2", "two initiators given"},
		{"vg.attach_external data a b c", "unexpected argument"},
		{"vg.attach_external data* " + client1, `patterns like "data*" are not allowed`},
		{"vg.disk_create data", "missing required key create_size=<size>, e.g. create_size=100G"},
		{"vg.disk_create data create_size=0", "create_size=0: a vDisk needs a positive size, e.g. create_size=100G"},
		{"vg.disk_create data create_size=-1G", "not a size"},
		{"vg.disk_create data create_size=100", "add a unit: 100M or 100G"},
		{"vg.disk_delete data", "missing required key index=<int>, e.g. index=1"},
		{"vg.disk_delete data index=-1", "out of range"},
		{"vg.update data", "nothing to change; give at least one of name=, load_balance_vm_attachments=, description="},
		{"vg.create data load_balance_vm_attachment=true", `did you mean "load_balance_vm_attachments"?`},
		{"vg.attach_to_vm data", "missing vm"},
		{"vg.list_sessions a b", "unexpected argument"},
		{"event.list type=iscsii", `did you mean "iscsi"?`},
		{"event.watch since_seq=-1", "out of range"},
		{"event.watch types=iscsi", `did you mean "type"?`},
	}
	for _, c := range bad {
		_, err := reg.Parse(strings.Fields(c.line))
		if err == nil || !strings.Contains(err.Error(), c.want) || client.ExitCode(err) != client.ExitUsage {
			t.Errorf("%s: error %v (exit %d), want exit 2 with %q", c.line, err, client.ExitCode(err), c.want)
		}
	}
}

// Bad IQNs and sizes exit 2 before anything is sent.
func TestVGBadInputSendsNothing(t *testing.T) {
	h := newHarness(t)
	for _, line := range []string{
		"vg.attach_external data iqn.2024-01.com.example:h_1",
		"vg.detach_external data initiator_name=eui.xyz",
		"vg.disk_create data create_size=0",
	} {
		code, out, errOut := h.run(strings.Fields(line)...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "Error: ") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", line, code, out, errOut)
		}
	}
	for _, m := range []string{"AttachExternal", "DetachExternal", "CreateVgDisk", "GetVolumeGroup", "ListVolumeGroups"} {
		if n := h.fake.Calls(m); n != 0 {
			t.Errorf("%s called %d times", m, n)
		}
	}
}

// vgFixture: a 3-disk VG attached to an external initiator and a VM-attached
// VG, on the fake's three hosts.
func vgFixture(t *testing.T) *harness {
	h := newHarness(t)
	for _, line := range []string{
		"vm.create db01 memory=4G",
		"vm.on db01 host=node-2",
		"vg.create data description=logs",
		"vg.disk_create data create_size=100G",
		"vg.disk_create data create_size=100G",
		"vg.disk_create data create_size=1T container=ssd",
		"vg.attach_external data " + client1,
		"vg.create dbvg iscsi_target_prefix=db",
		"vg.disk_create dbvg create_size=20G",
		"vg.attach_to_vm dbvg db01",
	} {
		if code, _, errOut := h.run(strings.Fields(line)...); code != 0 {
			t.Fatalf("fixture %q: exit %d: %s", line, code, errOut)
		}
	}
	return h
}

func TestGoldenVGViews(t *testing.T) {
	cases := []struct{ name, line string }{
		{"vg.list", "vg.list"},
		{"vg.get", "vg.get data"},
		{"vg.get.block", "-o block vg.get data"},
		{"vg.get.json", "-o json vg.get data"},
		{"vg.list.wide", "-o wide vg.list"},
		{"vg.get.vm", "vg.get dbvg"},
		{"vg.disk_list", "vg.disk_list data"},
		{"vg.list_sessions", "vg.list_sessions"},
		{"vg.list_sessions.one", "vg.list_sessions data"},
		{"vg.list_sessions.csv", "-o csv -c volume_group_name,initiator_iqn,target_iqn,disk_index,cvm_ip,port,state,since,preferred_cvm_ip vg.list_sessions data"},
		{"vg.get.yaml", "-o yaml vg.get data"},
		{"event.list", "event.list type=vg limit=4"},
		{"event.watch.none", "-o json --timeout 50ms event.watch type=iscsi"},
	}
	// Watches that replay events, cancelled (Ctrl-C) once they have.
	watches := []struct {
		name, line string
		lines      int
	}{
		{"event.watch", "event.watch type=vg since_seq=5", 3},
		{"event.watch.json", "-o json event.watch type=vg since_seq=6", 2},
	}
	for _, tty := range []bool{true, false} {
		mode := "pipe"
		if tty {
			mode = "tty"
		}
		h := vgFixture(t)
		h.tty = tty
		for _, c := range cases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				code, out, errOut := h.run(strings.Fields(c.line)...)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				golden(t, mode+"/"+c.name+".txt", out)
			})
		}
		for _, w := range watches {
			t.Run(mode+"/"+w.name, func(t *testing.T) {
				golden(t, mode+"/"+w.name+".txt", watchLines(t, h, w.lines, strings.Fields(w.line)...))
			})
		}
		// The CVM of node-1 down: its session is served elsewhere and
		// names the CVM it returns to.
		h.fake.SetHost(0, func(x *acliv1.Host) { x.CvmState = acliv1.CvmState_kCvmDown })
		t.Run(mode+"/vg.list_sessions.cvm_down", func(t *testing.T) {
			code, out, errOut := h.run("vg.list_sessions", "data")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, mode+"/vg.list_sessions.cvm_down.txt", out)
		})
	}
}

// event.watch -o json is NDJSON: one object per line, no envelope, and it
// ends cleanly when cancelled (Ctrl-C) as when --timeout passes.
func TestEventWatchStreams(t *testing.T) {
	h := vgFixture(t)
	f, _, errb := h.factory()
	out := &syncBuffer{}
	f.IO.Out = out
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- f.Execute(ctx, []string{"-o", "json", "event.watch", "type=iscsi"}) }()
	// Events published while the watch runs arrive, in order.
	deadline := time.Now().Add(10 * time.Second)
	for h.fake.Calls("WatchEvents") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watch never started")
		}
		time.Sleep(time.Millisecond)
	}
	h.fake.PublishEvent("iscsi", "warning", "session %s/0 moved 127.20.1.21 -> 127.20.1.22", client1)
	h.fake.PublishEvent("vm", "info", "not an iscsi event")
	h.fake.PublishEvent("iscsi", "info", "session %s/0 moved 127.20.1.22 -> 127.20.1.21", client1)
	var lines []string
	for len(lines) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("events not streamed: %q", lines)
		}
		time.Sleep(time.Millisecond)
		lines = strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if lines[0] == "" {
			lines = nil
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("cancelled watch: exit %d, stderr %q", code, errb.String())
	}
	lines = strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("NDJSON lines %q", lines)
	}
	for i, want := range []string{"127.20.1.21 -> 127.20.1.22", "127.20.1.22 -> 127.20.1.21"} {
		var e struct{ Type, Message, Severity string }
		if err := json.Unmarshal([]byte(lines[i]), &e); err != nil || e.Type != "iscsi" || !strings.HasSuffix(e.Message, want) {
			t.Fatalf("line %d %q: %v", i, lines[i], err)
		}
	}
}

// watchLines runs an event.watch until it has printed n lines, then
// cancels it as Ctrl-C would and returns its output.
func watchLines(t *testing.T, h *harness, n int, args ...string) string {
	t.Helper()
	f, _, errb := h.factory()
	out := &syncBuffer{}
	f.IO.Out = out
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- f.Execute(ctx, args) }()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(out.String(), "\n") < n {
		if time.Now().After(deadline) {
			t.Fatalf("%v printed %q", args, out.String())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, errb.String())
	}
	return out.String()
}

// syncBuffer is a buffer one goroutine writes while another reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The commands against the real manager in-process, with a CVM failure
// through the sim: sessions move and come back, the VM's disks follow.
func TestVGAgainstManager(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c := client.New(h.Conn)
	run := (&harness{t: t, c: c}).run // in-process, against the real manager
	steps := []struct {
		line string
		code int
		want string // substring of stdout (or stderr when code != 0)
	}{
		{"vg.create data", 0, "VgCreate: complete"},
		{"vg.create data", 5, "volume group names are unique"},
		{"vg.disk_create data create_size=100G", 0, "VgDiskCreate: complete"},
		{"vg.disk_create data create_size=100G", 0, "VgDiskCreate: complete"},
		{"vg.disk_create data create_size=100G", 0, "VgDiskCreate: complete"},
		{"vg.attach_external data " + client1, 0, "VgAttachExternal: complete"},
		{"vg.attach_external data initiator_name=" + client1, 5, "already attached"},
		{"vg.list", 0, "data "},
		{"vg.list_sessions data", 0, "127.20.0.33  3205"},
		{"vg.get nosuch", 3, `volume group "nosuch" not found`},
		{"vg.disk_delete data index=7", 2, "pass -y"},
		{"-y vg.disk_delete data index=7", 3, `vg disk "7" not found`},
		{"-y vg.delete data", 5, "detach: vg.detach_external data " + client1},
		{"vm.create db memory=1G", 0, "VmCreate: complete"},
		{"vm.disk_create db create_size=10G", 0, "DiskCreate: complete"},
		{"vg.create dbvg", 0, "VgCreate: complete"},
		{"vg.disk_create dbvg create_size=20G", 0, "VgDiskCreate: complete"},
		{"vg.attach_to_vm dbvg db", 0, "VgAttachToVm: complete"},
		{"vm.on db host=h1", 0, "VmPowerOn: complete"},
		{"vg.update data description=logs", 0, "VgUpdate: complete"},
	}
	for _, s := range steps {
		code, out, errOut := run(strings.Fields(s.line)...)
		text := out
		if code != 0 {
			text = errOut
		}
		if code != s.code || !strings.Contains(text, s.want) {
			t.Fatalf("%s: exit %d (want %d), output lacks %q:\nout: %s\nerr: %s", s.line, code, s.code, s.want, out, errOut)
		}
	}
	sessionsOn := func(vg string) map[string]int {
		t.Helper()
		code, out, errOut := run("-o", "json", "vg.list_sessions", vg)
		if code != 0 {
			t.Fatalf("list_sessions: %d %s", code, errOut)
		}
		var env struct {
			Data []struct {
				CvmIp string `json:"cvm_ip"`
				State string `json:"state"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(out), &env); err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, s := range env.Data {
			if s.State != "kSessionActive" {
				t.Fatalf("session state %s", s.State)
			}
			n[s.CvmIp]++
		}
		return n
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("not so: %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("dbvg served by the local cvm", func() bool { return sessionsOn("dbvg")["127.20.0.31"] == 1 })
	if n := sessionsOn("data"); len(n) != 3 {
		t.Fatalf("sessions not on all three CVMs: %v", n)
	}
	diskPaths := func() string {
		_, out, _ := run("--no-headers", "-o", "csv", "-c", "served_by_cvm_ip,path", "vm.disk_list", "db")
		var paths []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Split(l, ",")
			paths = append(paths, f[len(f)-2]+" "+f[len(f)-1])
		}
		return strings.Join(paths, "; ")
	}
	if p := diskPaths(); p != "127.20.0.31 local; 127.20.0.31 local" {
		t.Fatalf("vm.disk_list before: %s", p)
	}

	if _, err := c.Sim.FailCvm(context.Background(), &acliv1.SimHostRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	if n := sessionsOn("data"); n["127.20.0.31"] != 0 || n["127.20.0.32"]+n["127.20.0.33"] != 3 {
		t.Fatalf("after failing cvm 127.20.0.31: %v", n)
	}
	if p := diskPaths(); strings.Contains(p, "127.20.0.31") || strings.Count(p, "redirected") != 2 {
		t.Fatalf("vm.disk_list during: %s", p)
	}
	code, out, _ := run("event.list", "type=iscsi")
	if code != 0 || !strings.Contains(out, "session "+client1+"/0 moved 127.20.0.31 -> 127.20.0.3") ||
		!strings.Contains(out, "vm db disks redirected 127.20.0.31 -> ") {
		t.Fatalf("event.list:\n%s", out)
	}
	if _, err := c.Sim.RecoverCvm(context.Background(), &acliv1.SimHostRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	if n := sessionsOn("data"); len(n) != 3 || n["127.20.0.31"] != 1 {
		t.Fatalf("after recovery: %v", n)
	}
	if p := diskPaths(); p != "127.20.0.31 local; 127.20.0.31 local" {
		t.Fatalf("vm.disk_list after: %s", p)
	}
	// Detached, the VG can be deleted.
	for _, line := range []string{"vg.detach_external data " + client1, "-y vg.delete data"} {
		if code, _, errOut := run(strings.Fields(line)...); code != 0 {
			t.Fatalf("%s: %d %s", line, code, errOut)
		}
	}
}
