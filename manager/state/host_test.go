package state

import (
	"errors"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

func host(name string) *acliv1.Host {
	return &acliv1.Host{Uuid: "uuid-" + name, Name: name, HypervisorIp: "127.41.0." + name[1:],
		NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp, Schedulable: true}
}

func apply(t *testing.T, h *acliv1.Host, cs ...HostChange) *acliv1.Host {
	t.Helper()
	for _, c := range cs {
		next, err := TransitionHost(h, c)
		if err != nil {
			t.Fatalf("%s on %s/%s: %v", c, h.NodeState, h.CvmState, err)
		}
		h = next
	}
	return h
}

// Defect 2: maintenance (node and CVM) survives a failure and a recovery.
func TestMaintenanceSurvivesFailure(t *testing.T) {
	h := apply(t, host("h3"), EnterMaintenance, MaintenanceEntered, HostDown, HostUp)
	if h.NodeState != acliv1.NodeState_EnteredMaintenanceMode || !h.MaintenanceRequested {
		t.Fatalf("after fail and recover: %s requested=%v, want EnteredMaintenanceMode", h.NodeState, h.MaintenanceRequested)
	}
	h = apply(t, host("h3"), EnterMaintenance, HostDown, HostUp)
	if h.NodeState != acliv1.NodeState_EnteredMaintenanceMode {
		t.Fatalf("failed while entering, recovered: %s", h.NodeState)
	}
	if r := Recovered(h, 1); r.NodeState != acliv1.NodeState_EnteringMaintenanceMode || h.NodeState != acliv1.NodeState_EnteredMaintenanceMode {
		t.Fatalf("recovered with a VM recorded there: %s (record given %s); want EnteringMaintenanceMode, the record untouched", r.NodeState, h.NodeState)
	}
	if r := Recovered(h, 0); r != h {
		t.Fatalf("recovered with nothing there: %s, want the record as is", r.NodeState)
	}
	if n := apply(t, host("h4"), HostDown, HostUp); Recovered(n, 2) != n {
		t.Fatalf("a host in service recovered with VMs there: %s, want it as is", Recovered(n, 2).NodeState)
	}
	c := apply(t, host("h2"), EnterCvmMaintenance, CvmDown, CvmUp)
	if c.CvmState != acliv1.CvmState_kCvmMaintenance {
		t.Fatalf("cvm maintenance after cvm fail and recover: %s", c.CvmState)
	}
	c = apply(t, host("h2"), EnterCvmMaintenance, HostDown, HostUp)
	if c.CvmState != acliv1.CvmState_kCvmMaintenance {
		t.Fatalf("cvm maintenance after host fail and recover: %s", c.CvmState)
	}
	// Only the operator ends it.
	c = apply(t, c, ExitCvmMaintenance)
	if c.CvmState != acliv1.CvmState_kCvmUp || c.CvmMaintenanceRequested {
		t.Fatalf("after exit: %s requested=%v", c.CvmState, c.CvmMaintenanceRequested)
	}
	h = apply(t, h, ExitMaintenance)
	if h.NodeState != acliv1.NodeState_AcropolisNormal || h.MaintenanceRequested {
		t.Fatalf("after exit: %s requested=%v", h.NodeState, h.MaintenanceRequested)
	}
}

// Defect 5: a host that went down is never recorded in or out of
// maintenance by a task that raced the failure.
func TestDownHostIsNotMovedByTasks(t *testing.T) {
	for _, c := range []HostChange{EnterMaintenance, MaintenanceEntered, ExitMaintenance, EnterCvmMaintenance, ExitCvmMaintenance} {
		down := apply(t, host("h1"), EnterMaintenance, HostDown)
		_, err := TransitionHost(down, c)
		var te *TransitionError
		if !errors.As(err, &te) {
			t.Errorf("%s on a down host: err %v, want a TransitionError", c, err)
		}
	}
	// The evacuation ends only while the intent stands.
	h := apply(t, host("h1"), EnterMaintenance, ExitMaintenance)
	if _, err := TransitionHost(h, MaintenanceEntered); err == nil {
		t.Fatal("maintenance entered after the operator ended it")
	}
}

func TestObservationsAreIdempotent(t *testing.T) {
	h := host("h1")
	for _, c := range []HostChange{HostUp, CvmUp} {
		if next, _ := TransitionHost(h, c); next != h {
			t.Errorf("%s on a healthy host changed it", c)
		}
	}
	d := apply(t, h, HostDown)
	for _, c := range []HostChange{HostDown, CvmDown, CvmUp} {
		if next, _ := TransitionHost(d, c); next != d {
			t.Errorf("%s on a down host changed it", c)
		}
	}
}

// Defect 1: a host whose CVM failed is out; it gets no pass to enter
// maintenance while another host is out on RF2, so the failure's recovery
// cannot leave two hosts in maintenance.
func TestRedundancyCountsFailures(t *testing.T) {
	h1, h2, h3 := host("h1"), host("h2"), host("h3")
	h2 = apply(t, h2, EnterMaintenance, MaintenanceEntered)
	h3 = apply(t, h3, CvmDown)
	next := apply(t, h3, EnterMaintenance)
	err := CheckRedundancy(2, []*acliv1.Host{h1, h2, h3}, h3, next)
	var re *RedundancyError
	if !errors.As(err, &re) || len(re.Out) != 1 || re.Out[0] != "h2 (127.41.0.2) [EnteredMaintenanceMode]" {
		t.Fatalf("h3 (cvm down) entering maintenance with h2 in maintenance on RF2: %v", err)
	}
	// A down host counts too.
	h2 = host("h2")
	h2d := apply(t, h2, HostDown)
	n1 := apply(t, h1, EnterMaintenance)
	if err := CheckRedundancy(2, []*acliv1.Host{h1, h2d, host("h3")}, h1, n1); err == nil {
		t.Fatal("maintenance allowed while another host is down on RF2")
	}
	// RF3 has room for two.
	if err := CheckRedundancy(3, []*acliv1.Host{h1, h2d, host("h3")}, h1, n1); err != nil {
		t.Fatalf("RF3, one down: %v", err)
	}
	// A host out by the operator's intent may change how it is out.
	m := apply(t, host("h1"), EnterMaintenance, MaintenanceEntered)
	mc := apply(t, m, EnterCvmMaintenance)
	if err := CheckRedundancy(2, []*acliv1.Host{m, h2d, host("h3")}, m, mc); err != nil {
		t.Fatalf("cvm maintenance of a host already in maintenance: %v", err)
	}
	// Ending maintenance or observing a failure is never refused.
	if err := CheckRedundancy(2, []*acliv1.Host{m, h2d}, m, apply(t, m, ExitMaintenance)); err != nil {
		t.Fatal(err)
	}
}

// Records written before intent was stored are read with it.
func TestWithIntent(t *testing.T) {
	old := host("h1")
	old.NodeState = acliv1.NodeState_EnteredMaintenanceMode
	old.CvmState = acliv1.CvmState_kCvmMaintenance
	h := apply(t, old, HostDown, HostUp)
	if h.NodeState != acliv1.NodeState_EnteredMaintenanceMode || h.CvmState != acliv1.CvmState_kCvmMaintenance {
		t.Fatalf("old record after fail and recover: %s/%s", h.NodeState, h.CvmState)
	}
	if n := host("h2"); WithIntent(n) != n {
		t.Fatal("a record without maintenance was copied")
	}
}
