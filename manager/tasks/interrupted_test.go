package tasks_test

import (
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/tasks"
)

// A task a previous run left running says what became of its work and
// what to run next.
func TestInterruptedError(t *testing.T) {
	on := func(op acliv1.TaskOperation) *acliv1.Task {
		return &acliv1.Task{Operation: op, Entities: []*acliv1.EntityRef{{Name: "x1"}}}
	}
	for _, tc := range []struct {
		pb   *acliv1.Task
		want string
	}{
		{on(acliv1.TaskOperation_kHostEnterMaintenanceMode), "the host stays EnteringMaintenanceMode — run host.enter_maintenance_mode x1 again to finish (or host.exit_maintenance_mode x1)"},
		{on(acliv1.TaskOperation_kHostExitMaintenanceMode), "run host.exit_maintenance_mode x1 again to bring back the others"},
		{on(acliv1.TaskOperation_kHaFailover), "during the HA restart of host x1's VMs; it resumes on start"},
		{on(acliv1.TaskOperation_kVmMigrate), "during the migration of vm x1; it stays on the host it is recorded on — retry it"},
		{&acliv1.Task{Operation: acliv1.TaskOperation_kVmPowerOn}, "clusterd restarted while the task was running; it did not complete and changed nothing — retry it"},
	} {
		if got := tasks.InterruptedError(tc.pb); !strings.Contains(got, tc.want) {
			t.Errorf("%v: %q, want it to contain %q", tc.pb.Operation, got, tc.want)
		}
	}
}
