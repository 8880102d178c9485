package manager_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

// vmOn creates a VM and powers it on, on host (or where placement says).
func vmOn(t *testing.T, c clients, name string, mem int64, host string, mods ...func(*acliv1.CreateVmRequest)) *acliv1.Vm {
	t.Helper()
	req := &acliv1.CreateVmRequest{Name: name, MemoryBytes: mem, NumVcpus: 2}
	for _, f := range mods {
		f(req)
	}
	task := succeed(t, c)(c.vm.CreateVm(bg, req))
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: task.Entities[0].Uuid, Transition: acliv1.PowerTransition_kPowerOn, Host: host}))
	return getVm(t, c, task.Entities[0].Uuid)
}

func getVm(t *testing.T, c clients, ref string) *acliv1.Vm {
	t.Helper()
	v, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: ref})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func getHost(t *testing.T, c clients, ref string) *acliv1.Host {
	t.Helper()
	h, err := c.host.GetHost(bg, &acliv1.GetHostRequest{Host: ref})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func agent(r *acliv1.CreateVmRequest) { r.AgentVm = true }

func enter(c clients, host string, action acliv1.NonMigratableVmAction) (*acliv1.Task, error) {
	return c.host.EnterMaintenanceMode(bg, &acliv1.EnterMaintenanceModeRequest{Host: host, NonMigratableVmAction: action})
}

// checkInvariants asserts the cluster rules: memory is never
// over-committed and every running VM runs on exactly the host it is
// recorded on, in the simulator too.
func checkInvariants(t *testing.T, h *managertest.Harness) {
	t.Helper()
	c := newClients(h.Conn)
	hosts, _ := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	running := map[string]string{} // VM -> host per the simulator
	for _, hh := range hosts.Hosts {
		if hh.MemoryUsedBytes > hh.MemoryBytes {
			t.Fatalf("host %s over-committed: %d > %d", hh.Name, hh.MemoryUsedBytes, hh.MemoryBytes)
		}
		for _, id := range h.Driver.Running(hh.Uuid) {
			if other, dup := running[id]; dup {
				t.Fatalf("vm %s runs on two hosts: %s and %s", id, other, hh.Name)
			}
			running[id] = hh.Uuid
		}
	}
	vms, _ := c.vm.ListVms(bg, &acliv1.ListVmsRequest{})
	for _, v := range vms.Vms {
		if v.PowerState == acliv1.PowerState_kOn {
			if running[v.Uuid] != v.HostUuid {
				t.Fatalf("vm %s recorded on %s (%s) but the simulator runs it on %q", v.Name, v.HostName, v.HostUuid, running[v.Uuid])
			}
		} else if _, ok := running[v.Uuid]; ok {
			t.Fatalf("vm %s is recorded %s but runs in the simulator", v.Name, v.PowerState)
		}
		delete(running, v.Uuid)
	}
	if len(running) > 0 {
		t.Fatalf("the simulator runs VMs the manager does not know: %v", running)
	}
}

func messages(task *acliv1.Task) string { return strings.Join(task.Messages, "\n") }

// TestMaintenanceRunbook replays the planned-maintenance runbook on a
// 3-host RF2 cluster: check, enter (block, then acpi_shutdown), a second
// host refused, exit, and every VM back on its original host.
func TestMaintenanceRunbook(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c := newClients(h.Conn)
	var web []*acliv1.Vm
	for _, n := range []string{"web1", "web2", "web3", "web4"} {
		web = append(web, vmOn(t, c, n, 8*gib, "h1"))
	}
	db := vmOn(t, c, "db01", 16*gib, "h1")
	succeed(t, c)(c.vm.SetAffinity(bg, &acliv1.SetAffinityRequest{Vm: "db01", Hosts: []string{"h1"}}))
	vmOn(t, c, "nsx-agent", 2*gib, "h1", agent)
	createVm(t, c, "cold", gib)
	other := vmOn(t, c, "elsewhere", 4*gib, "h3")

	// The check reports the affinity blocker with its override, and the plan.
	chk, err := c.host.EnterMaintenanceModeCheck(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	if chk.Ok || len(chk.Blockers) != 1 || chk.Blockers[0].Reason != "vm db01 has host affinity to 127.20.0.21" ||
		chk.Blockers[0].Override != "non_migratable_vm_action=acpi_shutdown or mode=power_off" {
		t.Fatalf("check: ok=%v blockers %v", chk.Ok, chk.Blockers)
	}
	actions := map[string]string{}
	for _, s := range chk.Plan {
		actions[s.Vm.Name] = s.Action
		if s.Action == "migrate" && (s.TargetHost == nil || s.TargetHost.Name == "h1") {
			t.Fatalf("plan step %v", s)
		}
	}
	if actions["web1"] != "migrate" || actions["nsx-agent"] != "shutdown" || actions["db01"] != "blocked" || len(actions) != 6 {
		t.Fatalf("plan actions %v", actions)
	}
	chk, _ = c.host.EnterMaintenanceModeCheck(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h1", NonMigratableVmAction: acliv1.NonMigratableVmAction_kAcpiShutdown})
	if !chk.Ok || len(chk.Blockers) != 0 {
		t.Fatalf("check with acpi_shutdown: %v", chk.Blockers)
	}
	if hh := getHost(t, c, "h1"); hh.NodeState != acliv1.NodeState_AcropolisNormal || hh.NumVms != 6 {
		t.Fatalf("the check changed the host: %v", hh)
	}

	// Enter, blocked: the migratable VMs leave, the host stays entering, exit 5.
	task, err := enter(c, "h1", acliv1.NonMigratableVmAction_kBlock)
	final := wait(t, c, task, err)
	if final.Status != acliv1.TaskStatus_kFailed || codes.Code(final.ErrorCode) != codes.FailedPrecondition ||
		!strings.Contains(final.Error, "vm db01 has host affinity to 127.20.0.21 (use non_migratable_vm_action=acpi_shutdown or mode=power_off)") {
		t.Fatalf("blocked enter: %v %s %q", final.Status, codes.Code(final.ErrorCode), final.Error)
	}
	// The blockers are typed in the task record, for clients to list.
	typed := false
	for _, v := range final.Violations {
		typed = typed || (v.Type == "BLOCKED" && v.Subject == "vm:db01" && strings.Contains(v.Description, "has host affinity"))
	}
	if !typed {
		t.Fatalf("blocked enter: violations %v", final.Violations)
	}
	if hh := getHost(t, c, "h1"); hh.NodeState != acliv1.NodeState_EnteringMaintenanceMode || hh.Schedulable {
		t.Fatalf("h1 after blocked enter: %v", hh)
	}
	for _, w := range web {
		if v := getVm(t, c, w.Uuid); v.HostName == "h1" || v.OriginalHostUuid != w.HostUuid || v.PowerState != acliv1.PowerState_kOn {
			t.Fatalf("vm %s after blocked enter: host %s original %s", v.Name, v.HostName, v.OriginalHostUuid)
		}
	}
	if v := getVm(t, c, "nsx-agent"); v.PowerState != acliv1.PowerState_kOn || v.HostName != "h1" {
		t.Fatalf("agent VM shut down although the evacuation is blocked: %v", v)
	}
	checkInvariants(t, h)

	// A second host is refused while h1 is out, naming h1.
	st := wantCode(t, errOf(enter(c, "h2", 0)), codes.FailedPrecondition, "127.20.0.21")
	if pf := detail[*errdetails.PreconditionFailure](t, st); pf.Violations[0].Type != "REDUNDANCY" || pf.Violations[0].Subject != "host:h1" {
		t.Fatalf("violations %v", pf.Violations)
	}
	wantCode(t, errOf(c.host.EnterCvmMaintenanceMode(bg, &acliv1.CvmMaintenanceRequest{Host: "h3"})), codes.FailedPrecondition, "h1 (127.20.0.21) [EnteringMaintenanceMode] is already out")

	// Enter again with acpi_shutdown: db01 and the agent VM shut down.
	final = succeed(t, c)(enter(c, "h1", acliv1.NonMigratableVmAction_kAcpiShutdown))
	if last := final.Messages[len(final.Messages)-1]; !strings.HasPrefix(last, "host h1 (127.20.0.21) entered maintenance mode") {
		t.Fatalf("closing message %q", last)
	}
	hh := getHost(t, c, "h1")
	if hh.NodeState != acliv1.NodeState_EnteredMaintenanceMode || hh.NumVms != 0 || hh.MemoryUsedBytes != 0 {
		t.Fatalf("h1 in maintenance: %v", hh)
	}
	for _, n := range []string{"db01", "nsx-agent"} {
		if v := getVm(t, c, n); v.PowerState != acliv1.PowerState_kOff || v.OriginalHostUuid != hh.Uuid {
			t.Fatalf("vm %s: %v original %q", n, v.PowerState, v.OriginalHostUuid)
		}
	}
	checkInvariants(t, h)
	// Entering again succeeds and says so.
	again := succeed(t, c)(enter(c, "h1", 0))
	if !strings.Contains(messages(again), "host h1 (127.20.0.21) is already in maintenance mode") {
		t.Fatalf("repeat enter: %v", again.Messages)
	}
	chk, _ = c.host.EnterMaintenanceModeCheck(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h1"})
	if !chk.Ok || !chk.AlreadyInMaintenance {
		t.Fatalf("check in maintenance: %v", chk)
	}
	// Nothing powers on there meanwhile.
	wantCode(t, errOf(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "cold", Transition: acliv1.PowerTransition_kPowerOn, Host: "h1"})),
		codes.FailedPrecondition, "host is in maintenance mode")

	// Exit: every VM comes home, the shut-down ones power on.
	out := succeed(t, c)(c.host.ExitMaintenanceMode(bg, &acliv1.ExitMaintenanceModeRequest{Host: "h1"}))
	if !strings.Contains(messages(out), "4 VM(s) migrated back, 2 powered on") {
		t.Fatalf("exit messages:\n%s", messages(out))
	}
	if hh := getHost(t, c, "h1"); hh.NodeState != acliv1.NodeState_AcropolisNormal || !hh.Schedulable || hh.NumVms != 6 {
		t.Fatalf("h1 after exit: %v", hh)
	}
	for _, v := range append(web, db) {
		if got := getVm(t, c, v.Uuid); got.HostName != "h1" || got.PowerState != acliv1.PowerState_kOn || got.OriginalHostUuid != "" {
			t.Fatalf("vm %s after exit: %v on %s original %q", got.Name, got.PowerState, got.HostName, got.OriginalHostUuid)
		}
	}
	if v := getVm(t, c, "nsx-agent"); v.HostName != "h1" || v.PowerState != acliv1.PowerState_kOn {
		t.Fatalf("agent after exit: %v", v)
	}
	if v := getVm(t, c, "cold"); v.PowerState != acliv1.PowerState_kOff {
		t.Fatalf("a VM that was off powered on: %v", v)
	}
	if v := getVm(t, c, other.Uuid); v.HostName != "h3" {
		t.Fatalf("an unrelated VM moved: %v", v)
	}
	checkInvariants(t, h)
	// Now h2 may go: the budget is free again.
	succeed(t, c)(enter(c, "h2", 0))
	succeed(t, c)(c.host.ExitMaintenanceMode(bg, &acliv1.ExitMaintenanceModeRequest{Host: "h2"}))

	evs, _ := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Limit: 1000})
	var kinds = map[string]int{}
	for _, e := range evs.Events {
		switch {
		case strings.Contains(e.Message, "is entering maintenance mode"):
			kinds["entering"]++
		case strings.Contains(e.Message, "entered maintenance mode") && e.Type == "host":
			kinds["entered"]++
		case strings.Contains(e.Message, "exited maintenance mode") && e.Type == "host":
			kinds["exited"]++
		case e.Type == "migration" && strings.Contains(e.Message, " migrated from "):
			kinds["migrated"]++
		}
	}
	if kinds["entering"] < 2 || kinds["entered"] < 2 || kinds["exited"] < 2 || kinds["migrated"] < 8 {
		t.Fatalf("events %v", kinds)
	}
}

func TestMaintenanceRefusals(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	wantCode(t, errOf(enter(c, "h9", 0)), codes.NotFound, `host "h9" not found`)
	wantCode(t, errOf(enter(c, "h1", 7)), codes.InvalidArgument, "use block or acpi_shutdown")
	wantCode(t, errOf(c.host.EnterMaintenanceMode(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h1", MaxConcurrentMigrations: 9})),
		codes.InvalidArgument, "use 1 to 2")
	// Exit on a host in service succeeds and says so.
	out := succeed(t, c)(c.host.ExitMaintenanceMode(bg, &acliv1.ExitMaintenanceModeRequest{Host: "h2"}))
	if !strings.Contains(messages(out), "is not in maintenance mode") {
		t.Fatalf("exit of a normal host: %v", out.Messages)
	}
	// A host that cannot be evacuated for lack of room: blocked, listed per host.
	for _, n := range []string{"a", "b", "c"} {
		vmOn(t, c, n, 200*gib, "")
	}
	chk, _ := c.host.EnterMaintenanceModeCheck(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h1", NonMigratableVmAction: acliv1.NonMigratableVmAction_kAcpiShutdown})
	if chk.Ok || len(chk.Blockers) != 1 || !strings.Contains(chk.Blockers[0].Reason, "insufficient memory") {
		t.Fatalf("check of a full cluster: %v", chk.Blockers)
	}
	// A down host cannot enter.
	c.sim.FailHost(bg, &acliv1.SimHostRequest{Host: "h3"})
	wantCode(t, errOf(enter(c, "h3", 0)), codes.FailedPrecondition, "host h3 (127.20.0.23) is down")
}

// TestCvmMaintenance: a CVM in maintenance counts against the budget.
func TestCvmMaintenance(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	succeed(t, c)(c.host.EnterCvmMaintenanceMode(bg, &acliv1.CvmMaintenanceRequest{Host: "h2"}))
	if hh := getHost(t, c, "h2"); hh.CvmState != acliv1.CvmState_kCvmMaintenance || hh.NodeState != acliv1.NodeState_AcropolisNormal {
		t.Fatalf("h2: %v", hh)
	}
	again := succeed(t, c)(c.host.EnterCvmMaintenanceMode(bg, &acliv1.CvmMaintenanceRequest{Host: "h2"}))
	if !strings.Contains(messages(again), "already in maintenance mode") {
		t.Fatalf("repeat: %v", again.Messages)
	}
	wantCode(t, errOf(enter(c, "h1", 0)), codes.FailedPrecondition, "h2 (127.20.0.22) [kCvmMaintenance] is already out")
	// The host of the CVM in maintenance may itself enter maintenance.
	succeed(t, c)(enter(c, "h2", 0))
	succeed(t, c)(c.host.ExitMaintenanceMode(bg, &acliv1.ExitMaintenanceModeRequest{Host: "h2"}))
	succeed(t, c)(c.host.ExitCvmMaintenanceMode(bg, &acliv1.CvmMaintenanceRequest{Host: "h2"}))
	if hh := getHost(t, c, "h2"); hh.CvmState != acliv1.CvmState_kCvmUp {
		t.Fatalf("h2 after exit: %v", hh)
	}
	succeed(t, c)(enter(c, "h1", 0))
	evs, _ := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "cvm"})
	if len(evs.Events) < 2 {
		t.Fatalf("cvm events %v", evs.Events)
	}
}

// TestRestartMidEvacuation stops clusterd while a host is being evacuated:
// after the restart each VM runs on exactly one host, the task is failed
// with a clear message, and a retry finishes the job.
func TestRestartMidEvacuation(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3, Speed: 20}) // an 8 GiB migration takes ~0.35 s
	c := newClients(h.Conn)
	var vms []*acliv1.Vm
	for _, n := range []string{"m1", "m2", "m3", "m4", "m5", "m6"} {
		vms = append(vms, vmOn(t, c, n, 8*gib, "h1"))
	}
	task, err := enter(c, "h1", 0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		hh := getHost(t, c, "h1")
		if hh.NumVms <= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no VM left h1")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.Stop()

	h2 := managertest.New(t, managertest.Options{Dir: h.Dir})
	c = newClients(h2.Conn)
	checkInvariants(t, h2)
	got, _ := c.task.GetTask(bg, &acliv1.GetTaskRequest{Uuid: task.Uuid})
	if got.Status != acliv1.TaskStatus_kFailed || !strings.Contains(got.Error, "clusterd stopped while the task was running") {
		t.Fatalf("interrupted task: %v %q", got.Status, got.Error)
	}
	if hh := getHost(t, c, "h1"); hh.NodeState != acliv1.NodeState_EnteringMaintenanceMode {
		t.Fatalf("h1 after restart: %v", hh.NodeState)
	}
	succeed(t, c)(enter(c, "h1", 0))
	if hh := getHost(t, c, "h1"); hh.NodeState != acliv1.NodeState_EnteredMaintenanceMode || hh.NumVms != 0 {
		t.Fatalf("h1 after retry: %v", hh)
	}
	checkInvariants(t, h2)
	succeed(t, c)(c.host.ExitMaintenanceMode(bg, &acliv1.ExitMaintenanceModeRequest{Host: "h1"}))
	for _, v := range vms {
		if got := getVm(t, c, v.Uuid); got.HostName != "h1" {
			t.Fatalf("vm %s on %s after exit", got.Name, got.HostName)
		}
	}
	checkInvariants(t, h2)
}

var _ = proto.Bool

// TestMaintenanceCheckTypedBlockers: the check lists every blocker with its
// type and the argument that overrides it, the host's own before its VMs'.
func TestMaintenanceCheckTypedBlockers(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	vmOn(t, c, "db01", 4*gib, "h1")
	succeed(t, c)(c.vm.SetAffinity(bg, &acliv1.SetAffinityRequest{Vm: "db01", Hosts: []string{"h1"}}))
	succeed(t, c)(enter(c, "h2", 0))
	chk, err := c.host.EnterMaintenanceModeCheck(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	if chk.Ok || len(chk.Blockers) != 2 {
		t.Fatalf("check: ok=%v blockers %v", chk.Ok, chk.Blockers)
	}
	rf, vm := chk.Blockers[0], chk.Blockers[1]
	if rf.Type != "REDUNDANCY" || rf.Override != "" || !strings.Contains(rf.Reason, "cannot take out h1 (127.20.0.21)") {
		t.Errorf("first blocker %v", rf)
	}
	if vm.Type != "BLOCKED" || vm.Vm.GetName() != "db01" || vm.Override != "non_migratable_vm_action=acpi_shutdown or mode=power_off" {
		t.Errorf("second blocker %v", vm)
	}
	// The enter refuses with the host's blocker, typed the same.
	_, err = enter(c, "h1", 0)
	if st, _ := status.FromError(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "cannot take out h1") {
		t.Fatalf("enter: %v", err)
	}
}
