package manager_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

// Defect 1: a host whose CVM failed counts against the RF budget and gets
// no pass to enter maintenance while another host is out; so its recovery
// cannot leave two hosts in maintenance on RF2.
func TestRedundancyCountsHostsOutByFailure(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	succeed(t, c)(enter(c, "h2", 0))
	if _, err := c.sim.FailCvm(bg, &acliv1.SimHostRequest{Host: "h3"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, errOf(enter(c, "h3", 0)), codes.FailedPrecondition, "h2 (127.20.0.22) [EnteredMaintenanceMode] is already out")
	if _, err := c.sim.RecoverCvm(bg, &acliv1.SimHostRequest{Host: "h3"}); err != nil {
		t.Fatal(err)
	}
	if h3 := getHost(t, c, "h3"); h3.NodeState != acliv1.NodeState_AcropolisNormal {
		t.Fatalf("h3 is %s after its CVM recovered", h3.NodeState)
	}
	// The other way round: h1's CVM down, h3 may not take its CVM out.
	succeed(t, c)(c.host.ExitMaintenanceMode(bg, &acliv1.ExitMaintenanceModeRequest{Host: "h2"}))
	if _, err := c.sim.FailCvm(bg, &acliv1.SimHostRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, errOf(c.host.EnterCvmMaintenanceMode(bg, &acliv1.CvmMaintenanceRequest{Host: "h3"})), codes.FailedPrecondition, "h1 (127.20.0.21) [kCvmDown] is already out")
	wantCode(t, errOf(enter(c, "h2", 0)), codes.FailedPrecondition, "h1 (127.20.0.21) [kCvmDown] is already out")
}

// Defect 2: maintenance of the node and of the CVM survive the host's
// failure, its CVM's failure and a restart of the manager.
func TestMaintenanceSurvivesFailuresAndRestart(t *testing.T) {
	opts := managertest.Options{Hosts: 4, Dir: t.TempDir()}
	h := managertest.New(t, opts)
	c := newClients(h.Conn)
	succeed(t, c)(enter(c, "h3", 0))
	succeed(t, c)(c.host.EnterCvmMaintenanceMode(bg, &acliv1.CvmMaintenanceRequest{Host: "h3"}))
	check := func(when string) {
		t.Helper()
		h3 := getHost(t, c, "h3")
		if h3.NodeState != acliv1.NodeState_EnteredMaintenanceMode || h3.CvmState != acliv1.CvmState_kCvmMaintenance || h3.Schedulable {
			t.Fatalf("%s: h3 is %s, CVM %s, schedulable=%v", when, h3.NodeState, h3.CvmState, h3.Schedulable)
		}
	}
	for _, f := range []func() error{
		func() error { _, err := c.sim.FailHost(bg, &acliv1.SimHostRequest{Host: "h3"}); return err },
		func() error { _, err := c.sim.RecoverHost(bg, &acliv1.SimHostRequest{Host: "h3"}); return err },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	check("after the host failed and recovered")
	if _, err := c.sim.FailCvm(bg, &acliv1.SimHostRequest{Host: "h3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.sim.RecoverCvm(bg, &acliv1.SimHostRequest{Host: "h3"}); err != nil {
		t.Fatal(err)
	}
	check("after the CVM failed and recovered")
	h.Stop()
	h = managertest.New(t, opts)
	c = newClients(h.Conn)
	check("after a restart")
	succeed(t, c)(c.host.ExitCvmMaintenanceMode(bg, &acliv1.CvmMaintenanceRequest{Host: "h3"}))
	succeed(t, c)(c.host.ExitMaintenanceMode(bg, &acliv1.ExitMaintenanceModeRequest{Host: "h3"}))
	if h3 := getHost(t, c, "h3"); h3.NodeState != acliv1.NodeState_AcropolisNormal || h3.CvmState != acliv1.CvmState_kCvmUp || !h3.Schedulable {
		t.Fatalf("after the operator ended both: %s, CVM %s, schedulable=%v", h3.NodeState, h3.CvmState, h3.Schedulable)
	}
}

// Defect 8: one alphabet for names; a reference no name can have is
// refused before any lookup.
func TestNamesAlphabet(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	a := createVm(t, c, "a1", gib)
	for _, bad := range []string{"=5", a.Uuid, "web\u202e10", "web\u200b01", "a,b", strings.Repeat("n", 256)} {
		wantCode(t, errOf(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: bad, MemoryBytes: gib, NumVcpus: 1})), codes.InvalidArgument, "name")
		wantCode(t, errOf(c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: a.Uuid, Name: &bad})), codes.InvalidArgument, "name")
	}
	huge := strings.Repeat("x", 64<<10) // past any name, within the request size limit
	wantCode(t, errOf(c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: huge})), codes.InvalidArgument, "bytes")
	wantCode(t, errOf(c.host.GetHost(bg, &acliv1.GetHostRequest{Host: huge})), codes.InvalidArgument, "bytes")
}
