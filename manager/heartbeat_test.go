package manager_test

import (
	"strings"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager"
	"github.com/acli-dev/acli/manager/managertest"
)

func shortHeartbeat(cfg *manager.Config) { cfg.HeartbeatTimeout = 300 * time.Millisecond }

// Defect 6: heartbeats are received without the model lock, so a request
// holding it for several timeouts makes no host look silent.
func TestHeartbeatsNotBlockedByModelLock(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3, Manager: shortHeartbeat})
	c := newClients(h.Conn)
	vmOn(t, c, "v", 4*gib, "h2")
	// Writers one after another, each holding the model past the timeout.
	for range 8 {
		h.Manager.HoldModel(400 * time.Millisecond)
	}
	time.Sleep(600 * time.Millisecond) // two timeouts after the lock is free
	hosts, err := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, hh := range hosts.Hosts {
		if hh.NodeState == acliv1.NodeState_kNodeDown {
			t.Errorf("host %s marked down while the model was held", hh.Name)
		}
	}
	if v := getVm(t, c, "v"); v.PowerState != acliv1.PowerState_kOn || v.HostName != "h2" {
		t.Errorf("vm v is %s on %q", v.PowerState, v.HostName)
	}
}

// Defect 6: when most hosts go silent at once the manager suspects itself or
// its network: nothing is marked down and no VM is restarted or recorded off.
func TestMassSilenceFailsNothingOver(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3, Manager: func(cfg *manager.Config) { cfg.HeartbeatTimeout = time.Second }})
	c := newClients(h.Conn)
	vmOn(t, c, "v", 4*gib, "h2")
	ids := []string{getHost(t, c, "h2").Uuid, getHost(t, c, "h3").Uuid}
	for _, id := range ids { // within one heartbeat timeout
		if err := h.Driver.StopHost(id); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	for _, n := range []string{"h2", "h3"} {
		if hh := getHost(t, c, n); hh.NodeState == acliv1.NodeState_kNodeDown {
			t.Errorf("%s marked down while most hosts were silent", n)
		}
	}
	if v := getVm(t, c, "v"); v.PowerState != acliv1.PowerState_kOn || v.HostName != "h2" {
		t.Errorf("vm v is %s on %q", v.PowerState, v.HostName)
	}
	evs, err := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "cluster"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs.Events {
		found = found || strings.Contains(e.Message, "2 of 3 hosts stopped sending heartbeats at once")
	}
	if !found {
		t.Errorf("no event says the silence is suspected: %v", evs.Events)
	}
}
