package rulestest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
	"github.com/acli-dev/acli/manager/rulestest"
)

const gib = int64(1) << 30

type tc struct {
	t *testing.T
	rulestest.Clients
	ctx context.Context
}

func start(t *testing.T, opts managertest.Options) (*managertest.Harness, tc) {
	t.Helper()
	h := managertest.New(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return h, tc{t, rulestest.NewClients(h.Conn), ctx}
}

// ok runs a mutation to success.
func (c tc) ok(task *acliv1.Task, err error) *acliv1.Task {
	c.t.Helper()
	done, err := c.Run(c.ctx, task, err)
	if err != nil {
		c.t.Fatal(err)
	}
	return done
}

// try runs a mutation whatever its outcome.
func (c tc) try(task *acliv1.Task, err error) error {
	_, err = c.Run(c.ctx, task, err)
	return err
}

// refused reports whether a mutation was refused: by the RPC, or by its
// task failing.
func (c tc) refused(task *acliv1.Task, err error) bool {
	c.t.Helper()
	_, err = c.Run(c.ctx, task, err)
	return err != nil
}

func (c tc) host(name string) *acliv1.Host {
	c.t.Helper()
	h, err := c.Host.GetHost(c.ctx, &acliv1.GetHostRequest{Host: name})
	if err != nil {
		c.t.Fatal(err)
	}
	return h
}

func (c tc) vm(ref string) *acliv1.Vm {
	c.t.Helper()
	v, err := c.Vm.GetVm(c.ctx, &acliv1.GetVmRequest{Vm: ref})
	if err != nil {
		c.t.Fatal(err)
	}
	return v
}

// eventually polls cond until it holds or d passes.
func (c tc) eventually(d time.Duration, what string, cond func() bool) {
	c.t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			c.t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c tc) createOn(name string, mem int64, host string) *acliv1.Vm {
	c.t.Helper()
	task := c.ok(c.Vm.CreateVm(c.ctx, &acliv1.CreateVmRequest{Name: name, MemoryBytes: mem, NumVcpus: 1}))
	if host != "-" {
		c.ok(c.Vm.SetPowerState(c.ctx, &acliv1.SetPowerStateRequest{Vm: task.Entities[0].Uuid, Transition: acliv1.PowerTransition_kPowerOn, Host: host}))
	}
	return c.vm(task.Entities[0].Uuid)
}

func (c tc) enter(host string) (*acliv1.Task, error) {
	return c.Host.EnterMaintenanceMode(c.ctx, &acliv1.EnterMaintenanceModeRequest{Host: host})
}

func (c tc) sim(f func(context.Context, *acliv1.SimHostRequest, ...grpc.CallOption) (*acliv1.SimResponse, error), host string) {
	c.t.Helper()
	if _, err := f(c.ctx, &acliv1.SimHostRequest{Host: host}); err != nil {
		c.t.Fatal(err)
	}
}

func inMaintenance(h *acliv1.Host) bool {
	return h.NodeState == acliv1.NodeState_EnteringMaintenanceMode || h.NodeState == acliv1.NodeState_EnteredMaintenanceMode
}

// Defect 1: a host or CVM already out counts against the RF budget,
// whatever took it out.
func TestDefect1RFBudgetCountsHostsAlreadyOut(t *testing.T) {
	rulestest.SkipKnown(t, "defect 1")
	_, c := start(t, managertest.Options{Hosts: 3})
	c.ok(c.enter("h2"))
	c.sim(c.Sim.FailCvm, "h3")
	if !c.refused(c.enter("h3")) {
		t.Error("h3 entered maintenance on RF2 while h2 was in maintenance and h3's CVM was down")
	}
	c.sim(c.Sim.RecoverCvm, "h3")
	hs, err := c.Hosts(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range hs {
		if inMaintenance(h) || h.CvmState == acliv1.CvmState_kCvmMaintenance {
			out = append(out, h.Name)
		}
	}
	if len(out) > 1 {
		t.Errorf("hosts in maintenance on RF2: %v", out)
	}
	// A CVM already down counts too when the host it takes out is another.
	c.ok(c.Host.ExitMaintenanceMode(c.ctx, &acliv1.ExitMaintenanceModeRequest{Host: "h2"}))
	c.sim(c.Sim.FailCvm, "h1")
	if !c.refused(c.enter("h2")) {
		t.Error("h2 entered maintenance on RF2 while h1's CVM was down")
	}
	if !c.refused(c.Host.EnterCvmMaintenanceMode(c.ctx, &acliv1.CvmMaintenanceRequest{Host: "h3"})) {
		t.Error("h3's CVM entered maintenance on RF2 while h1's CVM was down")
	}
}

// Defect 2: the operator's maintenance and cordon survive host and CVM
// failures and manager restarts; only the operator ends them.
func TestDefect2IntentSurvivesFailuresAndRestarts(t *testing.T) {
	rulestest.SkipKnown(t, "defect 2")
	opts := managertest.Options{Hosts: 4, Dir: t.TempDir()}
	h, c := start(t, opts)
	c.ok(c.enter("h3"))
	c.ok(c.Host.EnterCvmMaintenanceMode(c.ctx, &acliv1.CvmMaintenanceRequest{Host: "h3"}))
	c.ok(c.Host.UpdateHost(c.ctx, &acliv1.UpdateHostRequest{Host: "h1", Schedulable: new(false), Reason: "cordoned"}))

	c.sim(c.Sim.FailHost, "h3")
	c.sim(c.Sim.FailHost, "h1")
	c.eventually(10*time.Second, "h1 and h3 marked down", func() bool {
		return c.host("h1").NodeState == acliv1.NodeState_kNodeDown && c.host("h3").NodeState == acliv1.NodeState_kNodeDown
	})
	c.sim(c.Sim.RecoverHost, "h3")
	c.sim(c.Sim.RecoverHost, "h1")
	c.eventually(10*time.Second, "h1 and h3 back", func() bool {
		return c.host("h1").NodeState != acliv1.NodeState_kNodeDown && c.host("h3").NodeState != acliv1.NodeState_kNodeDown
	})
	check := func(when string) {
		t.Helper()
		if h3 := c.host("h3"); h3.NodeState != acliv1.NodeState_EnteredMaintenanceMode || h3.Schedulable {
			t.Errorf("%s: h3 is %s schedulable=%v; want EnteredMaintenanceMode, unschedulable", when, h3.NodeState, h3.Schedulable)
		}
		if h3 := c.host("h3"); h3.CvmState != acliv1.CvmState_kCvmMaintenance {
			t.Errorf("%s: h3's CVM is %s; want kCvmMaintenance", when, h3.CvmState)
		}
		if h1 := c.host("h1"); h1.Schedulable {
			t.Errorf("%s: cordoned h1 is schedulable again (%s)", when, h1.NodeState)
		}
	}
	check("after h1 and h3 failed and recovered")

	c.sim(c.Sim.FailCvm, "h3")
	c.sim(c.Sim.RecoverCvm, "h3")
	check("after h3's CVM failed and recovered")

	h.Stop()
	h, c = start(t, opts)
	check("after a manager restart")
	_ = h
}

// Defect 3: an in-flight power-on counts like a migration; maintenance
// does not complete while a VM is starting on the host, or the power-on
// goes elsewhere.
func TestDefect3InFlightPowerOnBlocksMaintenance(t *testing.T) {
	rulestest.SkipKnown(t, "defect 3")
	_, c := start(t, managertest.Options{Hosts: 3, Speed: 1})
	p1 := c.createOn("p1", 2*gib, "-")
	on, err := c.Vm.SetPowerState(c.ctx, &acliv1.SetPowerStateRequest{Vm: p1.Uuid, Transition: acliv1.PowerTransition_kPowerOn, Host: "h2"})
	if err != nil {
		t.Fatal(err)
	}
	c.ok(c.enter("h2"))
	if _, err := c.Wait(c.ctx, on); err != nil {
		t.Fatal(err)
	}
	if v := c.vm("p1"); v.PowerState == acliv1.PowerState_kOn && v.HostName == "h2" {
		t.Errorf("p1 runs on h2, which is %s", c.host("h2").NodeState)
	}
}

// A cordon committed while a power-on is under way (its target checked,
// the VM starting) stops it: the power-on's commit re-checks its host, is
// refused, and the VM is stopped again rather than left on the host.
func TestCordonDuringPowerOnRefusedAtCommit(t *testing.T) {
	_, c := start(t, managertest.Options{Hosts: 3, Speed: 1})
	p1 := c.createOn("p1", 2*gib, "-")
	on, err := c.Vm.SetPowerState(c.ctx, &acliv1.SetPowerStateRequest{Vm: p1.Uuid, Transition: acliv1.PowerTransition_kPowerOn, Host: "h2"})
	if err != nil {
		t.Fatal(err)
	}
	c.eventually(10*time.Second, "the power-on past its target check", func() bool {
		cur, err := c.Task.GetTask(c.ctx, &acliv1.GetTaskRequest{Uuid: on.Uuid})
		return err == nil && strings.HasPrefix(cur.ProgressMessage, "powering on")
	})
	c.ok(c.Host.UpdateHost(c.ctx, &acliv1.UpdateHostRequest{Host: "h2", Schedulable: new(false), Reason: "cordoned"}))
	final, err := c.Wait(c.ctx, on)
	if err != nil {
		t.Fatal(err)
	}
	if final.Status != acliv1.TaskStatus_kFailed || len(final.Violations) == 0 || final.Violations[0].Type != "PLACEMENT" {
		t.Errorf("power-on ended %s (%s) with violations %v; want failed with a PLACEMENT violation", final.Status, final.Error, final.Violations)
	}
	if v := c.vm("p1"); v.PowerState != acliv1.PowerState_kOff || v.HostName != "" {
		t.Errorf("p1 is %s on %q; want off", v.PowerState, v.HostName)
	}
}

// Defect 4: a cordon, or the host going down, stops the migrations
// planned toward that host that have not started yet; each step checks its
// target when it starts.
func TestDefect4PlansRecheckedAtCommit(t *testing.T) {
	rulestest.SkipKnown(t, "defect 4")
	for _, tt := range []struct {
		name  string
		block func(c tc) // takes h2 out of the targets
	}{
		{"cordon", func(c tc) {
			c.ok(c.Host.UpdateHost(c.ctx, &acliv1.UpdateHostRequest{Host: "h2", Schedulable: new(false), Reason: "cordoned"}))
		}},
		{"down", func(c tc) { c.sim(c.Sim.FailHost, "h2") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, c := start(t, managertest.Options{Hosts: 4, Speed: 20})
			for i := range 9 {
				c.createOn("m"+string(rune('a'+i)), 8*gib, "h1")
			}
			// One migration at a time, each ~0.35 s: when h2 leaves the
			// targets at most one migration toward it has started.
			enter, err := c.Host.EnterMaintenanceMode(c.ctx, &acliv1.EnterMaintenanceModeRequest{Host: "h1", MaxConcurrentMigrations: 1})
			if err != nil {
				t.Fatal(err)
			}
			tt.block(c)
			last, err := c.Event.ListEvents(c.ctx, &acliv1.ListEventsRequest{Limit: 1})
			if err != nil || len(last.Events) != 1 {
				t.Fatal(last, err)
			}
			blocked := last.Events[0].Seq
			c.try(enter, nil)
			evs, err := c.Event.ListEvents(c.ctx, &acliv1.ListEventsRequest{Type: "migration", Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			toH2 := map[string]bool{}
			for _, e := range evs.Events {
				if e.Seq <= blocked {
					continue
				}
				var vm string
				h2 := false
				for _, r := range e.Entities {
					switch {
					case r.Kind == acliv1.EntityKind_kVm:
						vm = r.Name
					case r.Kind == acliv1.EntityKind_kHost && r.Name == "h2":
						h2 = true
					}
				}
				if h2 {
					toH2[vm] = true
				}
			}
			if len(toH2) > 1 {
				t.Errorf("after h2 left the targets (%s), migrations toward it went on for %d VMs: %v", tt.name, len(toH2), toH2)
			}
		})
	}
}

// Defect 5: a host failure racing an enter or exit of maintenance never
// records a dead host as in maintenance or in service.
func TestDefect5FailureRacingMaintenance(t *testing.T) {
	rulestest.SkipKnown(t, "defect 5")
	_, c := start(t, managertest.Options{Hosts: 3, Speed: 100})
	for i := range 4 {
		c.createOn(fmt.Sprintf("w%d", i), 2*gib, "h1")
	}
	for i := range 16 {
		exit := i%2 == 1
		if exit {
			c.ok(c.enter("h1"))
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if exit {
				c.try(c.Host.ExitMaintenanceMode(c.ctx, &acliv1.ExitMaintenanceModeRequest{Host: "h1"}))
			} else {
				c.try(c.enter("h1"))
			}
		}()
		time.Sleep(time.Duration(i/2) * 3 * time.Millisecond)
		c.sim(c.Sim.FailHost, "h1")
		wg.Wait()
		// The host is dead: once the manager has seen it (the heartbeat
		// timeout is at least 2 s) it must read down and stay so.
		c.eventually(10*time.Second, "h1 marked down", func() bool { return c.host("h1").NodeState == acliv1.NodeState_kNodeDown })
		time.Sleep(500 * time.Millisecond)
		if st := c.host("h1").NodeState; st != acliv1.NodeState_kNodeDown {
			t.Errorf("round %d (%s): dead h1 is recorded %s", i, map[bool]string{false: "enter", true: "exit"}[exit], st)
		}
		c.sim(c.Sim.RecoverHost, "h1")
		c.eventually(10*time.Second, "h1 back", func() bool { return c.host("h1").NodeState != acliv1.NodeState_kNodeDown })
		if inMaintenance(c.host("h1")) {
			c.try(c.Host.ExitMaintenanceMode(c.ctx, &acliv1.ExitMaintenanceModeRequest{Host: "h1"}))
		}
	}
}

// Defect 6: a request that works hard (a 1 MB name's suggestion over
// many VMs) is bounded and never makes hosts miss heartbeats: no host goes
// down and no running VM is recorded off.
func TestDefect6SlowRequestDoesNotFailHosts(t *testing.T) {
	rulestest.SkipKnown(t, "defect 6")
	_, c := start(t, managertest.Options{Hosts: 3, Speed: 10})
	for i := range 150 {
		host := "-"
		if i < 6 {
			host = []string{"h1", "h2", "h3"}[i%3]
		}
		c.createOn(strings.Repeat("v", 8)+string(rune('a'+i%26))+string(rune('a'+i/26)), gib, host)
	}
	huge := strings.Repeat("x", 1<<20)
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	codesSeen := make(chan codes.Code, 8)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Vm.DeleteVm(ctx, &acliv1.DeleteVmRequest{Vm: huge})
			codesSeen <- status.Code(err)
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Vm.GetVm(ctx, &acliv1.GetVmRequest{Vm: huge})
			codesSeen <- status.Code(err)
		}()
	}
	// Writers keep coming meanwhile, as they would in a busy cluster.
	stop := make(chan struct{})
	var writers sync.WaitGroup
	writers.Add(1)
	go func() {
		defer writers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			task, err := c.Vm.UpdateVm(ctx, &acliv1.UpdateVmRequest{Vm: "vvvvvvvvaa", Description: new(time.Now().String())})
			c.Run(ctx, task, err)
		}
	}()
	wg.Wait()
	close(stop)
	writers.Wait()
	close(codesSeen)
	for code := range codesSeen {
		if code != codes.InvalidArgument {
			t.Errorf("a 1 MB name answered %v; want InvalidArgument (too long)", code)
		}
	}
	time.Sleep(3 * time.Second) // past the heartbeat timeout
	c.ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hs, err := c.Hosts(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.NodeState == acliv1.NodeState_kNodeDown {
			t.Errorf("host %s marked down", h.Name)
		}
	}
	r, err := c.Vm.ListVms(c.ctx, &acliv1.ListVmsRequest{PowerState: acliv1.PowerState_kOn})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Vms) != 6 {
		t.Errorf("%d VMs on after the slow requests; want the 6 that ran", len(r.Vms))
	}
}

// Defect 8: names follow one alphabet and never parse as a UUID, so name
// and UUID resolution is never ambiguous.
func TestDefect8Names(t *testing.T) {
	rulestest.SkipKnown(t, "defect 8")
	_, c := start(t, managertest.Options{Hosts: 3})
	a := c.createOn("a1", gib, "-")
	for _, bad := range []string{
		"=5",
		a.Uuid,
		"0f8fad5b-d9cb-469f-a165-70867728950e",
		"web\u202e10",
		"web\u200b01",
		strings.Repeat("n", 4096),
		"",
	} {
		if _, err := c.Vm.CreateVm(c.ctx, &acliv1.CreateVmRequest{Name: bad, MemoryBytes: gib, NumVcpus: 1}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("vm.create %.40q: %v; want InvalidArgument", bad, err)
		}
		if bad == "" {
			continue
		}
		if _, err := c.Vm.UpdateVm(c.ctx, &acliv1.UpdateVmRequest{Vm: a.Uuid, Name: &bad}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("vm.update %s name=%.40q: %v; want InvalidArgument", a.Uuid, bad, err)
		}
		if _, err := c.Vg.CreateVolumeGroup(c.ctx, &acliv1.CreateVolumeGroupRequest{Name: bad}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("vg.create %.40q: %v; want InvalidArgument", bad, err)
		}
	}
	// Deleting by a's UUID deletes a, and nothing else.
	c.createOn("b1", gib, "-")
	c.ok(c.Vm.DeleteVm(c.ctx, &acliv1.DeleteVmRequest{Vm: a.Uuid}))
	if _, err := c.Vm.GetVm(c.ctx, &acliv1.GetVmRequest{Vm: "b1"}); err != nil {
		t.Errorf("b1 after deleting a1 by UUID: %v", err)
	}
}

// A host that fails during its evacuation, with a VM HA leaves recorded
// there, comes back entering maintenance, not in it: "entered" means
// nothing runs there (the soak's placement rule saw a VM on a host that
// had entered maintenance this way).
func TestRecoveredHostWithVmsIsNotInMaintenance(t *testing.T) {
	_, c := start(t, managertest.Options{Hosts: 3})
	c.createOn("stay", 2*gib, "h1")
	for _, h := range []string{"h2", "h3"} {
		c.ok(c.Host.UpdateHost(c.ctx, &acliv1.UpdateHostRequest{Host: h, Schedulable: new(false), Reason: "cordoned"}))
	}
	c.ok(c.Cluster.UpdateHaConfig(c.ctx, &acliv1.UpdateHaConfigRequest{EnableFailover: new(false)}))
	if err := c.try(c.enter("h1")); err == nil {
		t.Fatal("h1 entered maintenance with vm stay on it and nowhere to move it")
	}
	c.sim(c.Sim.FailHost, "h1")
	c.eventually(10*time.Second, "h1 marked down", func() bool { return c.host("h1").NodeState == acliv1.NodeState_kNodeDown })
	c.sim(c.Sim.RecoverHost, "h1")
	c.eventually(10*time.Second, "h1 back", func() bool { return c.host("h1").NodeState != acliv1.NodeState_kNodeDown })
	// h1 comes back empty and says so; until its report is applied, stay
	// is still recorded running there, and h1 must not be "entered"
	// meanwhile.
	c.eventually(10*time.Second, "vm stay recorded off", func() bool {
		v, st := c.vm("stay"), c.host("h1").NodeState
		if v.HostName == "h1" && v.PowerState == acliv1.PowerState_kOn && st != acliv1.NodeState_EnteringMaintenanceMode {
			t.Fatalf("h1 runs vm stay and is %s; want EnteringMaintenanceMode", st)
		}
		return v.PowerState == acliv1.PowerState_kOff
	})
	// The maintenance asked goes on by itself, by a task of clusterd's
	// that the operator sees, once h1 reported what it runs.
	c.eventually(20*time.Second, "h1 in maintenance", func() bool {
		return c.host("h1").NodeState == acliv1.NodeState_EnteredMaintenanceMode
	})
	r, err := c.Task.ListTasks(c.ctx, &acliv1.ListTasksRequest{IncludeCompleted: true, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var ran []string
	for _, task := range r.Tasks {
		if task.Operation == acliv1.TaskOperation_kHostEnterMaintenanceMode {
			ran = append(ran, fmt.Sprintf("%s %s %s", task.Principal, task.Status, task.ProgressMessage))
		}
	}
	if len(ran) != 2 || !strings.HasPrefix(ran[0], "clusterd kSucceeded") && !strings.HasPrefix(ran[1], "clusterd kSucceeded") {
		t.Fatalf("host.enter_maintenance_mode tasks: %q; want the operator's and a succeeded one of clusterd's", ran)
	}
}
