package maintenance_test

import (
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/scheduler"
)

func budgetHosts(mut map[string]func(*acliv1.Host)) []*acliv1.Host {
	var out []*acliv1.Host
	for _, n := range []string{"h1", "h2", "h3"} {
		h := &acliv1.Host{Uuid: "uuid-" + n, Name: n, HypervisorIp: "127.42.0." + n[1:], Schedulable: true,
			NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp}
		if f := mut[n]; f != nil {
			f(h)
		}
		out = append(out, h)
	}
	return out
}

func nothing(string) maintenance.Taking { return maintenance.TakingNothing }

// The RF-1 budget counts a host or CVM out whatever took it out — the
// operator, a failure, or a running task about to — against host and CVM
// maintenance alike (issue 12, defect 1).
func TestBudgetCountsEveryWayOut(t *testing.T) {
	cvmDown := func(h *acliv1.Host) { h.CvmState = acliv1.CvmState_kCvmDown }
	hostMaint := func(h *acliv1.Host) {
		h.NodeState, h.MaintenanceRequested = acliv1.NodeState_EnteredMaintenanceMode, true
	}
	cvmMaint := func(h *acliv1.Host) {
		h.CvmState, h.CvmMaintenanceRequested = acliv1.CvmState_kCvmMaintenance, true
	}
	down := func(h *acliv1.Host) { h.NodeState, h.CvmState = acliv1.NodeState_kNodeDown, acliv1.CvmState_kCvmDown }
	takingH2 := func(op acliv1.TaskOperation) func(string) maintenance.Taking {
		return func(id string) maintenance.Taking {
			if id == "uuid-h2" {
				return maintenance.TakingOp(op)
			}
			return maintenance.TakingNothing
		}
	}
	tests := []struct {
		name    string
		rf      int
		mut     map[string]func(*acliv1.Host)
		taking  func(string) maintenance.Taking
		cvm     bool
		subject string // "" when allowed
	}{
		{"all in service, host", 2, nil, nothing, false, ""},
		{"all in service, cvm", 2, nil, nothing, true, ""},
		{"a cvm down blocks host maintenance", 2, map[string]func(*acliv1.Host){"h2": cvmDown}, nothing, false, "host:h2"},
		{"a host in maintenance blocks cvm maintenance", 2, map[string]func(*acliv1.Host){"h2": hostMaint}, nothing, true, "host:h2"},
		{"a cvm in maintenance blocks cvm maintenance", 2, map[string]func(*acliv1.Host){"h2": cvmMaint}, nothing, true, "host:h2"},
		{"a down host blocks cvm maintenance", 2, map[string]func(*acliv1.Host){"h3": down}, nothing, true, "host:h3"},
		{"a task entering host maintenance counts", 2, nil, takingH2(acliv1.TaskOperation_kHostEnterMaintenanceMode), true, "host:h2"},
		{"a task entering cvm maintenance counts", 2, nil, takingH2(acliv1.TaskOperation_kCvmEnterMaintenanceMode), false, "host:h2"},
		{"other tasks do not", 2, nil, takingH2(acliv1.TaskOperation_kHostExitMaintenanceMode), true, ""},
		{"RF3 allows two out", 3, map[string]func(*acliv1.Host){"h2": cvmMaint}, nothing, true, ""},
		{"RF3 allows no third", 3, map[string]func(*acliv1.Host){"h2": cvmMaint, "h3": down}, nothing, false, "host:h2"},
		// Already out by the operator's intent: changing how is no new way out.
		{"h1 in maintenance may also take its cvm out", 2, map[string]func(*acliv1.Host){"h1": hostMaint, "h2": cvmDown}, nothing, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts := budgetHosts(tt.mut)
			vs := maintenance.Budget(tt.rf, hosts, tt.taking, hosts[0], tt.cvm, "take out")
			switch {
			case tt.subject == "" && vs != nil:
				t.Fatalf("refused: %v", vs)
			case tt.subject != "" && len(vs) != 1:
				t.Fatalf("violations %v, want one naming %s", vs, tt.subject)
			case tt.subject != "" && (vs[0].Type != maintenance.Redundancy || vs[0].Subject != tt.subject):
				t.Fatalf("violation %+v, want REDUNDANCY on %s", vs[0], tt.subject)
			}
		})
	}
	// The line names the host, the budget and what is out.
	hosts := budgetHosts(map[string]func(*acliv1.Host){"h2": cvmDown})
	vs := maintenance.Budget(2, hosts, nothing, hosts[0], true, "take out the CVM of")
	want := "cannot take out the CVM of h1 (127.42.0.1): redundancy factor 2 allows 1 host out at a time and h2 (127.42.0.2) [kCvmDown] is already out"
	if len(vs) != 1 || vs[0].Description != want {
		t.Fatalf("description %q\nwant        %q", vs[0].Description, want)
	}
}

func TestModesAndPlans(t *testing.T) {
	if m, err := maintenance.Mode(0); err != nil || m != acliv1.MaintenanceMode_kMaintenanceLive {
		t.Fatalf("unspecified mode: %v %v", m, err)
	}
	if _, err := maintenance.Mode(99); err == nil {
		t.Fatal("mode 99 accepted")
	}
	if _, err := maintenance.NonMigratableAction(99); err == nil {
		t.Fatal("action 99 accepted")
	}
	const gib = 1 << 30
	snap := &scheduler.Snapshot{
		Hosts: []scheduler.Host{
			{UUID: "uuid-h1", Name: "h1", Cores: 8, MemoryBytes: 16 * gib, Schedulable: true},
			{UUID: "uuid-h2", Name: "h2", Cores: 8, MemoryBytes: 16 * gib, Schedulable: true},
		},
		VMs: []scheduler.VM{
			{UUID: "uuid-web", Name: "web", VCPUs: 1, MemoryBytes: gib, Host: "uuid-h1", Power: scheduler.PowerOn},
			{UUID: "uuid-db", Name: "db", VCPUs: 1, MemoryBytes: gib, Host: "uuid-h1", Power: scheduler.PowerOn, HostAffinity: []string{"uuid-h1"}},
		},
	}
	live, err := maintenance.Plan(snap, "uuid-h1", scheduler.Block, acliv1.MaintenanceMode_kMaintenanceLive)
	if err != nil || len(live.Blockers) != 1 {
		t.Fatalf("live plan: %+v %v, want db blocked", live, err)
	}
	off, err := maintenance.Plan(snap, "uuid-h1", scheduler.Block, acliv1.MaintenanceMode_kMaintenancePowerOff)
	if err != nil || len(off.Blockers) != 0 || len(off.Steps) != 2 {
		t.Fatalf("power_off plan: %+v %v", off, err)
	}
	for _, s := range off.Steps {
		if s.Action != scheduler.ActionShutdown || s.VM.Name == "web" && s.Reason != maintenance.PowerOffReason {
			t.Errorf("power_off step %+v, want a shutdown for %s", s, maintenance.PowerOffReason)
		}
	}
	steps := maintenance.PlanSteps(live)
	if len(steps) != 2 || steps[0].Vm.Name == "" {
		t.Fatalf("API steps %v", steps)
	}
}
