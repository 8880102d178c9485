package maintenance_test

import (
	"testing"

	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/scheduler"
)

func TestPreflightListsEveryBlocker(t *testing.T) {
	h := maintenance.Host{Name: "h1", Label: "h1 (127.42.0.1)", Down: true, BusyWith: "running task t1 (kHostUpdate)",
		Targets:    []string{"running task t2 (kVmMigrate of web1)"},
		Redundancy: "cannot take out h1 (127.42.0.1): h2 is out already", RedundancySubject: "host:h2"}
	plan := &scheduler.Plan{Blockers: []scheduler.Blocker{
		{VM: scheduler.VMRef{UUID: "u1", Name: "db01"}, Reason: "vm db01 has host affinity to 127.42.0.1", Override: "non_migratable_vm_action=acpi_shutdown"},
		{VM: scheduler.VMRef{UUID: "u2", Name: "big"}, Reason: "no eligible host for vm big"},
	}}
	want := []maintenance.Blocker{
		{Type: maintenance.HostDown, Subject: "host:h1", Reason: "host h1 (127.42.0.1) is down"},
		{Type: maintenance.HostBusy, Subject: "host:h1", Reason: "host h1 (127.42.0.1) is busy with running task t1 (kHostUpdate); wait for it to finish"},
		{Type: maintenance.MigrationTarget, Subject: "host:h1", Reason: "host h1 (127.42.0.1) is the target of running task t2 (kVmMigrate of web1); wait for it to finish"},
		{Type: maintenance.Redundancy, Subject: "host:h2", Reason: "cannot take out h1 (127.42.0.1): h2 is out already"},
		{Type: maintenance.Blocked, Subject: "vm:db01", Reason: "vm db01 has host affinity to 127.42.0.1", Override: "non_migratable_vm_action=acpi_shutdown"},
		{Type: maintenance.Blocked, Subject: "vm:big", Reason: "no eligible host for vm big"},
	}
	got := maintenance.Preflight(h, plan)
	if len(got) != len(want) {
		t.Fatalf("blockers %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("blocker %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if s := got[4].String(); s != "vm db01 has host affinity to 127.42.0.1 (use non_migratable_vm_action=acpi_shutdown)" {
		t.Errorf("line %q", s)
	}
	if got := maintenance.Preflight(maintenance.Host{Name: "h3", Label: "h3"}, &scheduler.Plan{}); len(got) != 0 {
		t.Errorf("a free host: %v", got)
	}
}

// What is still on the host after a drain: a failed move's reason first,
// then the plan's blocker with its override, then why the rest stayed.
func TestRemaining(t *testing.T) {
	f := &fakeHost{on: []string{"a", "b"}, outcome: map[string][]maintenance.Result{"a": {maintenance.Failed}, "b": {maintenance.Failed}}}
	d := f.drain(1)
	if err := d.Run(t.Context(), f.plan()); err != nil {
		t.Fatal(err)
	}
	plan := &scheduler.Plan{
		Steps: []scheduler.Step{
			step("a", scheduler.ActionMigrate), step("db01", scheduler.ActionBlocked), step("agent", scheduler.ActionShutdown),
			step("web", scheduler.ActionMigrate), step("off", scheduler.ActionNone),
		},
		Blockers: []scheduler.Blocker{{VM: scheduler.VMRef{UUID: "db01", Name: "db01"}, Reason: "vm db01 has host affinity", Override: "non_migratable_vm_action=acpi_shutdown"}},
	}
	plan.Steps[2].Reason = "agent VM"
	got := d.Remaining(plan, "h1 (127.42.0.1)")
	want := []string{
		"a cannot move",
		"vm db01 has host affinity (use non_migratable_vm_action=acpi_shutdown)",
		"vm agent (agent VM) is shut down only once every other VM can leave",
		"vm web is still running on h1 (127.42.0.1)",
	}
	if len(got) != len(want) {
		t.Fatalf("remaining %v", got)
	}
	for i, w := range want {
		if got[i].String() != w || got[i].Type != maintenance.Blocked {
			t.Errorf("remaining %d: %+v, want %q", i, got[i], w)
		}
	}
}
