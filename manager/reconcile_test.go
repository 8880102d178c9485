package manager_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
)

// reportingDriver is the sim with host reports (VmStates) injected by the
// test, as the libvirt driver sends them, and a record of the copies it was
// asked to power off on hosts that do not run the VM.
type reportingDriver struct {
	*sim.Driver
	reports chan driver.HostEvent

	mu     sync.Mutex
	fenced []string // "vm@host"
}

func (d *reportingDriver) Start(ctx context.Context, hosts []*acliv1.Host, vms []*acliv1.Vm) (<-chan driver.HostEvent, error) {
	in, err := d.Driver.Start(ctx, hosts, vms)
	if err != nil {
		return nil, err
	}
	out := make(chan driver.HostEvent)
	go func() {
		defer close(out)
		for {
			select {
			case ev, ok := <-in:
				if !ok {
					return
				}
				out <- ev
			case ev := <-d.reports:
				out <- ev
			}
		}
	}()
	return out, nil
}

func (d *reportingDriver) PowerOff(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	if h.Uuid != vm.HostUuid { // a copy the sim does not have
		d.mu.Lock()
		d.fenced = append(d.fenced, vm.Name+"@"+h.Name)
		d.mu.Unlock()
		return nil
	}
	return d.Driver.PowerOff(ctx, h, vm)
}

func (d *reportingDriver) fences() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.fenced...)
}

type reportCluster struct {
	t     *testing.T
	c     clients
	drv   *reportingDriver
	hosts map[string]string // name -> UUID
}

func startReporting(t *testing.T) *reportCluster {
	t.Helper()
	cfg := sim.ForHosts(3)
	cfg.Speed = 1000
	s, err := sim.New(cfg, sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	drv := &reportingDriver{Driver: s, reports: make(chan driver.HostEvent)}
	h := managertest.New(t, managertest.Options{Driver: drv})
	rc := &reportCluster{t: t, c: newClients(h.Conn), drv: drv, hosts: map[string]string{}}
	hosts, err := rc.c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts.Hosts {
		rc.hosts[h.Name] = h.Uuid
	}
	return rc
}

// report hands the manager what a host was read to run at time at.
func (rc *reportCluster) report(host string, at time.Time, complete bool, vms ...driver.VmObservation) {
	rc.drv.reports <- driver.HostEvent{Kind: driver.VmStates, HostUUID: rc.hosts[host], Time: at, Vms: vms, Complete: complete}
}

// settle sends a fresh report that starts the VM sentinel "outside clusterd"
// and waits until it is recorded: reports are applied in order, so every
// report sent before has been applied too.
func (rc *reportCluster) settle(sentinel *acliv1.Vm, host string) {
	rc.t.Helper()
	rc.report(host, time.Now(), false, driver.VmObservation{VmUUID: sentinel.Uuid, PowerState: acliv1.PowerState_kOn})
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := rc.c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: sentinel.Uuid})
		if err != nil {
			rc.t.Fatal(err)
		}
		if v.PowerState == acliv1.PowerState_kOn && v.HostName == host {
			break
		}
		if time.Now().After(deadline) {
			rc.t.Fatalf("a fresh report of %s running on %s is not reflected: %s on %q", sentinel.Name, host, v.PowerState, v.HostName)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Off again, through clusterd, for the next round.
	succeed(rc.t, rc.c)(power(rc.c, sentinel.Uuid, acliv1.PowerTransition_kPowerOff))
}

func (rc *reportCluster) state(vm string) (acliv1.PowerState, string) {
	rc.t.Helper()
	v, err := rc.c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: vm})
	if err != nil {
		rc.t.Fatal(err)
	}
	return v.PowerState, v.HostName
}

// A host report read before clusterd last changed a VM is stale: applied,
// it would undo the change (a VM just powered off recorded running again,
// so the next vm.on finds it "already on" and starts nothing), or fence a
// copy a task has just put in place. Fresh reports are still reflected.
func TestStaleHostReportsAreIgnored(t *testing.T) {
	rc := startReporting(t)
	c := rc.c
	web := createVm(t, c, "web", 64<<20)
	sentinel := createVm(t, c, "sentinel", 64<<20)
	on := func(vm, host string) *acliv1.Task {
		t.Helper()
		return succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: vm, Transition: acliv1.PowerTransition_kPowerOn, Host: host}))
	}

	// Read while web ran on h1, applied after vm.off.
	on("web", "h1")
	read := time.Now()
	succeed(t, c)(power(c, "web", acliv1.PowerTransition_kPowerOff))
	rc.report("h1", read, false, driver.VmObservation{VmUUID: web.Uuid, PowerState: acliv1.PowerState_kOn})
	rc.settle(sentinel, "h2")
	if st, h := rc.state("web"); st != acliv1.PowerState_kOff {
		t.Fatalf("a report read before vm.off recorded web %s on %q", st, h)
	}
	if task := on("web", "h1"); strings.Contains(messages(task), "already on") {
		t.Fatalf("vm.on after a stale report did nothing: %v", task.Messages)
	}

	// A full listing read before vm.on, without web: web stays on.
	succeed(t, c)(power(c, "web", acliv1.PowerTransition_kPowerOff))
	read = time.Now()
	on("web", "h1")
	rc.report("h1", read, true)
	rc.settle(sentinel, "h2")
	if st, h := rc.state("web"); st != acliv1.PowerState_kOn || h != "h1" {
		t.Fatalf("a listing read before vm.on recorded web %s on %q", st, h)
	}

	// A copy on h2 seen while a task acted on web: not fenced.
	read = time.Now()
	succeed(t, c)(power(c, "web", acliv1.PowerTransition_kReboot))
	stale := driver.VmObservation{VmUUID: web.Uuid, PowerState: acliv1.PowerState_kOn, RunningElsewhere: []string{rc.hosts["h1"]}}
	rc.report("h2", read, false, stale)
	rc.settle(sentinel, "h3")
	if f := rc.drv.fences(); len(f) != 0 {
		t.Fatalf("a report read before vm.reboot fenced %v", f)
	}
	if st, h := rc.state("web"); st != acliv1.PowerState_kOn || h != "h1" {
		t.Fatalf("after a stale report of a copy: web %s on %q", st, h)
	}

	// The same report read now: the copy on h2 is powered off, as a task.
	stale.RunningElsewhere = []string{rc.hosts["h1"]}
	rc.report("h2", time.Now(), false, stale)
	deadline := time.Now().Add(10 * time.Second)
	for len(rc.drv.fences()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a fresh report of a second copy on h2 was not fenced")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if f := rc.drv.fences(); len(f) != 1 || f[0] != "web@h2" {
		t.Fatalf("fenced %v, want web@h2", f)
	}
	// It is a task on web (nothing else moves web meanwhile), and it ends.
	for {
		tasks, err := c.task.ListTasks(bg, &acliv1.ListTasksRequest{IncludeCompleted: true, Entity: "web"})
		if err != nil {
			t.Fatal(err)
		}
		var fence *acliv1.Task
		for _, task := range tasks.Tasks {
			if task.Operation == acliv1.TaskOperation_kVmPowerOff && len(task.Entities) == 2 && task.Entities[1].Name == "h2" {
				fence = task
			}
		}
		if fence != nil && fence.Status == acliv1.TaskStatus_kSucceeded {
			if !strings.Contains(messages(fence), "its stale copy on host h2") {
				t.Fatalf("fencing task %+v", fence)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished kVmPowerOff task names the fenced copy on h2: %v", tasks.Tasks)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st, h := rc.state("web"); st != acliv1.PowerState_kOn || h != "h1" {
		t.Fatalf("after fencing the copy on h2: web %s on %q, want kOn on h1", st, h)
	}
}
