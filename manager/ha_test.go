package manager_test

import (
	"strings"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager"
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
