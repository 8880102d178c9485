package manager_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
)

// haTask waits for the HA task of a host and returns its final state.
func haTask(t *testing.T, c clients, host string) *acliv1.Task {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ts, _ := c.task.ListTasks(bg, &acliv1.ListTasksRequest{IncludeCompleted: true, Entity: host})
		for _, task := range ts.Tasks {
			if task.Operation == acliv1.TaskOperation_kHaFailover {
				return wait(t, c, task, nil)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no HA task for %s", host)
	return nil
}

func prio(p int32) func(*acliv1.CreateVmRequest) {
	return func(r *acliv1.CreateVmRequest) { r.HaPriority = p }
}

// TestHostFailureRestartsByPriority: when a host fails, its VMs restart
// elsewhere, highest HA priority first; those that do not fit stay off and
// are listed; the host is usable again when it returns.
func TestHostFailureRestartsByPriority(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c := newClients(h.Conn)
	vmOn(t, c, "fill1", 150*gib, "h1")
	vmOn(t, c, "fill3", 150*gib, "h3")
	// 106 GiB free on h1 and h3: room for two of the three big VMs.
	vmOn(t, c, "low", 80*gib, "h2", prio(1))
	vmOn(t, c, "high", 80*gib, "h2", prio(10))
	vmOn(t, c, "mid", 80*gib, "h2", prio(5))
	vmOn(t, c, "small", gib, "h2", prio(-1))

	if _, err := c.sim.FailHost(bg, &acliv1.SimHostRequest{Host: "h2"}); err != nil {
		t.Fatal(err)
	}
	final := haTask(t, c, "h2")
	if final.Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("HA task %v: %s", final.Status, final.Error)
	}
	for _, n := range []string{"high", "mid"} {
		if v := getVm(t, c, n); v.PowerState != acliv1.PowerState_kOn || v.HostName == "h2" || v.HostName == "" {
			t.Fatalf("vm %s after HA: %v on %q", n, v.PowerState, v.HostName)
		}
	}
	for _, n := range []string{"low", "small"} {
		if v := getVm(t, c, n); v.PowerState != acliv1.PowerState_kOff || v.HostUuid != "" {
			t.Fatalf("vm %s after HA: %v on %q", n, v.PowerState, v.HostName)
		}
	}
	msg := messages(final)
	if !strings.Contains(msg, "no eligible host for vm low") || !strings.Contains(msg, "HA priority -1: never restarted") ||
		strings.Index(msg, "vm high restarted") > strings.Index(msg, "vm mid restarted") {
		t.Fatalf("HA task messages:\n%s", msg)
	}
	checkInvariants(t, h)
	evs, _ := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "ha"})
	if len(evs.Events) != 4 {
		t.Fatalf("ha events %v", evs.Events)
	}
	// The host returns and takes VMs again.
	c.sim.RecoverHost(bg, &acliv1.SimHostRequest{Host: "h2"})
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "low", Transition: acliv1.PowerTransition_kPowerOn}))
	if v := getVm(t, c, "low"); v.HostName != "h2" {
		t.Fatalf("low powered on on %s, want the recovered h2", v.HostName)
	}
	checkInvariants(t, h)
}

// TestMissedHeartbeatsMarkHostDown: a host that dies silently is marked
// down by the heartbeat timeout and its VMs restart elsewhere.
func TestMissedHeartbeatsMarkHostDown(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3, Manager: func(cfg *manager.Config) {
		cfg.HeartbeatTimeout = 300 * time.Millisecond
	}})
	c := newClients(h.Conn)
	vmOn(t, c, "v", 4*gib, "h3")
	hostUUID := getHost(t, c, "h3").Uuid
	if err := h.Driver.StopHost(hostUUID); err != nil {
		t.Fatal(err)
	}
	final := haTask(t, c, "h3")
	if hh := getHost(t, c, "h3"); hh.NodeState != acliv1.NodeState_kNodeDown || hh.Connected {
		t.Fatalf("h3: %v", hh)
	}
	if v := getVm(t, c, "v"); v.PowerState != acliv1.PowerState_kOn || v.HostName == "h3" {
		t.Fatalf("vm after HA: %v (%s)", v, messages(final))
	}
	evs, _ := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "host"})
	if !strings.Contains(evs.Events[0].Message, "is down: no heartbeat for") {
		t.Fatalf("host events %v", evs.Events)
	}
	checkInvariants(t, h)
	c.sim.RecoverHost(bg, &acliv1.SimHostRequest{Host: "h3"})
	if hh := getHost(t, c, "h3"); hh.NodeState != acliv1.NodeState_AcropolisNormal {
		t.Fatalf("h3 after recovery: %v", hh.NodeState)
	}
}

// cutOff is the sim with one host cut off from the manager: a VM there
// cannot be powered off (as on a libvirt host whose daemon is gone while
// its QEMUs run on), and only its storage (driver.VmFencer), once proven
// is set, can fence it.
type cutOff struct {
	*sim.Driver
	host   atomic.Value // UUID of the cut-off host
	proven atomic.Bool
}

func (d *cutOff) PowerOff(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	if id, _ := d.host.Load().(string); id == h.GetUuid() {
		return errors.New("host unreachable")
	}
	return d.Driver.PowerOff(ctx, h, vm)
}

func (d *cutOff) FenceVm(context.Context, *acliv1.Host, *acliv1.Vm) error {
	if d.proven.Load() {
		return nil
	}
	return errors.New("sessions still open")
}

// TestHARestartsOnlyFencedVms: HA restarts a VM of a down host only once
// its copy there is fenced. Until then the VM stays recorded on the down
// host and an event says why; a fence proven later lets the restart go on.
func TestHARestartsOnlyFencedVms(t *testing.T) {
	cfg := sim.ForHosts(3)
	cfg.Speed = 1000
	s, err := sim.New(cfg, sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	drv := &cutOff{Driver: s}
	h := managertest.New(t, managertest.Options{Driver: drv})
	h.Driver = s // for checkInvariants
	c := newClients(h.Conn)
	vmOn(t, c, "v", 4*gib, "h3")
	h3 := getHost(t, c, "h3")
	drv.host.Store(h3.Uuid)
	if _, err := c.sim.FailHost(bg, &acliv1.SimHostRequest{Host: "h3"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "ha"})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs.Events) > 0 {
			if m := evs.Events[0].Message; len(evs.Events) != 1 || !strings.Contains(m, "HA does not restart vm v yet: its copy on h3") ||
				!strings.Contains(m, "not fenced (power-off: host unreachable; storage: sessions still open)") {
				t.Fatalf("ha events: %v", evs.Events)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no ha event after h3 failed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Retries keep it there, with no second event.
	time.Sleep(2500 * time.Millisecond)
	if v := getVm(t, c, "v"); v.PowerState != acliv1.PowerState_kOn || v.HostName != "h3" {
		t.Fatalf("vm v not fenced, yet recorded %v on %q", v.PowerState, v.HostName)
	}
	if evs, _ := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "ha"}); len(evs.Events) != 1 {
		t.Fatalf("ha events: %v", evs.Events)
	}
	drv.proven.Store(true)
	final := haTask(t, c, "h3")
	if final.Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("HA task %v: %s", final.Status, final.Error)
	}
	if v := getVm(t, c, "v"); v.PowerState != acliv1.PowerState_kOn || v.HostName == "h3" || v.HostName == "" {
		t.Fatalf("vm v after its fence: %v on %q (%s)", v.PowerState, v.HostName, messages(final))
	}
	checkInvariants(t, h)
}
