package tasks

import (
	"fmt"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// InterruptedError is the error of a task that a previous run of
// clusterd left running. Most tasks commit their changes with their end, so
// they changed nothing; the long operations commit each VM as it moves, so
// the model is consistent but partly done, and a retry finishes the job.
func InterruptedError(pb *acliv1.Task) string {
	name := ""
	if len(pb.Entities) > 0 {
		name = pb.Entities[0].Name
	}
	switch pb.Operation {
	case acliv1.TaskOperation_kHostEnterMaintenanceMode:
		return fmt.Sprintf("clusterd restarted during the evacuation of host %s; the VMs that had moved are recorded on their new hosts and the host stays EnteringMaintenanceMode — run host.enter_maintenance_mode %s again to finish (or host.exit_maintenance_mode %s)", name, name, name)
	case acliv1.TaskOperation_kHostExitMaintenanceMode:
		return fmt.Sprintf("clusterd restarted while VMs were returning to host %s; the host is in service and the VMs that had returned are recorded there — run host.exit_maintenance_mode %s again to bring back the others", name, name)
	case acliv1.TaskOperation_kHaFailover:
		return fmt.Sprintf("clusterd restarted during the HA restart of host %s's VMs; it resumes on start", name)
	case acliv1.TaskOperation_kVmMigrate:
		return fmt.Sprintf("clusterd restarted during the migration of vm %s; it stays on the host it is recorded on — retry it", name)
	}
	return "clusterd restarted while the task was running; it did not complete and changed nothing — retry it"
}
