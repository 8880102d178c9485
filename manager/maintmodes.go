package manager

import (
	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
)

// Maintenance modes (acli's host.enter_maintenance_mode mode=): live
// migrates the VMs away (the default); cold moves them offline, off on
// the host and on again on their target; power_off shuts every VM down,
// to power on again here when the host exits maintenance mode.

const powerOffReason = "mode=power_off"

func maintenanceMode(mode acliv1.MaintenanceMode) (acliv1.MaintenanceMode, error) {
	switch mode {
	case acliv1.MaintenanceMode_MAINTENANCE_MODE_UNSPECIFIED, acliv1.MaintenanceMode_kMaintenanceLive:
		return acliv1.MaintenanceMode_kMaintenanceLive, nil
	case acliv1.MaintenanceMode_kMaintenanceCold, acliv1.MaintenanceMode_kMaintenancePowerOff:
		return mode, nil
	}
	return 0, apierr.BadField("mode", "mode %d is unknown; use live, cold or power_off", mode)
}

// planFor plans a host's evacuation in a mode: with power_off every VM
// that would move, or could not, is shut down instead, so nothing blocks.
func planFor(s *scheduler.Snapshot, host string, action scheduler.NonMigratableAction, mode acliv1.MaintenanceMode) (*scheduler.Plan, error) {
	if mode == acliv1.MaintenanceMode_kMaintenancePowerOff {
		action = scheduler.AcpiShutdown
	}
	plan, err := scheduler.PlanEvacuation(s, host, action, scheduler.Options{})
	if err != nil || mode != acliv1.MaintenanceMode_kMaintenancePowerOff {
		return plan, err
	}
	for i, st := range plan.Steps {
		if st.Action == scheduler.ActionMigrate || st.Action == scheduler.ActionBlocked {
			plan.Steps[i] = scheduler.Step{VM: st.VM, Action: scheduler.ActionShutdown, Reason: powerOffReason}
		}
	}
	plan.Blockers = nil
	return plan, nil
}

// offline is how a cold move reads in the task log.
type offline struct{}

func (offline) String() string { return "offline" }
