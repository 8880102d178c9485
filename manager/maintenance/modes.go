package maintenance

import (
	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
)

// Maintenance modes (acli's host.enter_maintenance_mode mode=): live
// migrates the VMs away (the default); cold moves them offline, off on
// the host and on again on their target; power_off shuts every VM down,
// to power on again here when the host exits maintenance mode.

// PowerOffReason is why a VM is shut down by mode=power_off.
const PowerOffReason = "mode=power_off"

// Mode checks a requested mode; unspecified is live.
func Mode(mode acliv1.MaintenanceMode) (acliv1.MaintenanceMode, error) {
	switch mode {
	case acliv1.MaintenanceMode_MAINTENANCE_MODE_UNSPECIFIED, acliv1.MaintenanceMode_kMaintenanceLive:
		return acliv1.MaintenanceMode_kMaintenanceLive, nil
	case acliv1.MaintenanceMode_kMaintenanceCold, acliv1.MaintenanceMode_kMaintenancePowerOff:
		return mode, nil
	}
	return 0, apierr.BadField("mode", "mode %d is unknown; use live, cold or power_off", mode)
}

// NonMigratableAction checks what to do with the VMs that cannot move;
// unspecified is block.
func NonMigratableAction(a acliv1.NonMigratableVmAction) (scheduler.NonMigratableAction, error) {
	switch a {
	case acliv1.NonMigratableVmAction_NON_MIGRATABLE_VM_ACTION_UNSPECIFIED, acliv1.NonMigratableVmAction_kBlock:
		return scheduler.Block, nil
	case acliv1.NonMigratableVmAction_kAcpiShutdown:
		return scheduler.AcpiShutdown, nil
	}
	return 0, apierr.BadField("non_migratable_vm_action", "non_migratable_vm_action %d is unknown; use block or acpi_shutdown", a)
}

// Plan plans a host's evacuation in a mode: cold moves VMs with passthrough
// devices too (offline, to a host with a free device of each); with
// power_off every VM that would move, or could not, is shut down instead,
// so nothing blocks.
func Plan(s *scheduler.Snapshot, host string, action scheduler.NonMigratableAction, mode acliv1.MaintenanceMode) (*scheduler.Plan, error) {
	if mode == acliv1.MaintenanceMode_kMaintenancePowerOff {
		action = scheduler.AcpiShutdown
	}
	// Cold moves are offline: VMs with passthrough devices move too.
	opt := scheduler.Options{Offline: mode == acliv1.MaintenanceMode_kMaintenanceCold}
	plan, err := scheduler.PlanEvacuation(s, host, action, opt)
	if err != nil || mode != acliv1.MaintenanceMode_kMaintenancePowerOff {
		return plan, err
	}
	for i, st := range plan.Steps {
		if st.Action == scheduler.ActionMigrate || st.Action == scheduler.ActionBlocked {
			plan.Steps[i] = scheduler.Step{VM: st.VM, Action: scheduler.ActionShutdown, Reason: PowerOffReason}
		}
	}
	plan.Blockers = nil
	return plan, nil
}

// PlanSteps is a plan as the API shows it.
func PlanSteps(p *scheduler.Plan) []*acliv1.PlanStep {
	steps := make([]*acliv1.PlanStep, 0, len(p.Steps))
	for _, s := range p.Steps {
		ps := &acliv1.PlanStep{
			Vm:     &acliv1.EntityRef{Kind: acliv1.EntityKind_kVm, Uuid: s.VM.UUID, Name: s.VM.Name},
			Action: s.Action.String(), Reason: s.Reason, Notes: s.Notes,
		}
		if s.Target.UUID != "" {
			ps.TargetHost = &acliv1.EntityRef{Kind: acliv1.EntityKind_kHost, Uuid: s.Target.UUID, Name: s.Target.Name}
		}
		steps = append(steps, ps)
	}
	return steps
}

// Violations are blockers as a refusal lists them.
func Violations(bs []Blocker) []apierr.Violation {
	vs := make([]apierr.Violation, len(bs))
	for i, b := range bs {
		vs[i] = apierr.Violation{Type: b.Type, Subject: b.Subject, Description: b.String()}
	}
	return vs
}
