package scheduler

import (
	"fmt"
	"strings"
)

// PlanReturn plans the way back when host hostUUID exits maintenance. The
// caller lists the VMs that left it (moved away, or shut down by the
// maintenance). Each is checked against the host as the earlier steps leave
// it: agent VMs power on first, then VMs running elsewhere live-migrate back
// (largest first), then the other VMs that are off power on there. A VM that
// can no longer go back (memory, affinity changed, passthrough) gets an
// ActionNone step with the reason and stays where it is. The host must
// already be AcropolisNormal and schedulable in the snapshot.
func PlanReturn(s *Snapshot, hostUUID string, vmUUIDs []string, opt Options) (*Plan, error) {
	st, err := compile(s, opt)
	if err != nil {
		return nil, err
	}
	hi, ok := st.byUUID[hostUUID]
	if !ok {
		return nil, fmt.Errorf("host %s is not in the snapshot", hostUUID)
	}
	var agents, migrate, power []*VM
	for _, u := range vmUUIDs {
		i, ok := st.vmIdx[u]
		if !ok {
			return nil, fmt.Errorf("vm %s is not in the snapshot", u)
		}
		v := &st.vms[i]
		switch {
		case v.Running() && v.Host == hostUUID:
			// Already back (e.g. a retry after a restart): nothing to do.
		case v.Running():
			migrate = append(migrate, v)
		case v.Agent:
			agents = append(agents, v)
		default:
			power = append(power, v)
		}
	}
	sortFunc(agents, byName)
	sortFunc(migrate, largerFirst)
	sortFunc(power, byName)
	plan := &Plan{Host: st.ref(hi)}
	var stay []Step
	place := func(v *VM, a Action) {
		if a == ActionMigrate {
			if err := CanLiveMigrate(v); err != nil {
				stay = append(stay, Step{VM: vmRefOf(v), Action: ActionNone, Reason: err.Error()})
				return
			}
		}
		if ok, reasons := st.check(hi, v, nil, true); !ok {
			stay = append(stay, Step{VM: vmRefOf(v), Action: ActionNone,
				Reason: fmt.Sprintf("vm %s cannot return to %s: %s", v.Name, st.ref(hi), strings.Join(reasons, ", "))})
			return
		}
		p := st.placement(hi, v)
		from := -1
		if v.Running() {
			from = st.byUUID[v.Host]
		}
		st.move(v, from, hi)
		plan.Steps = append(plan.Steps, Step{VM: vmRefOf(v), Action: a, Target: p.Host, Notes: p.Notes})
	}
	for _, v := range agents {
		place(v, ActionRestart)
	}
	for _, v := range migrate {
		place(v, ActionMigrate)
	}
	for _, v := range power {
		place(v, ActionRestart)
	}
	plan.Steps = append(plan.Steps, stay...)
	return plan, nil
}
