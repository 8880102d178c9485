package scheduler

import "fmt"

// HAPlan is where the running VMs of failed hosts restart.
type HAPlan struct {
	// Restarts are ActionRestart steps in the order to power on: HA priority
	// (higher first), then larger VMs first.
	Restarts []Step
	// NotRestarted lists the VMs left off and why (no room, affinity, agent
	// VM, negative priority), in the same order.
	NotRestarted []Step
}

// PlanHARestart places the VMs that were running on the failed hosts onto the
// hosts still in service, higher HA priority first, as capacity allows. The
// failed hosts are never targets, whatever state the snapshot gives them.
// Agent VMs stay with their host and VMs with a negative priority are never
// restarted; both are listed in NotRestarted with the VMs that did not fit.
func PlanHARestart(s *Snapshot, failedHosts []string, opt Options) (*HAPlan, error) {
	st, err := compile(s, opt)
	if err != nil {
		return nil, err
	}
	excl := make([]string, len(st.hosts))
	for _, u := range failedHosts {
		hi, ok := st.byUUID[u]
		if !ok {
			return nil, fmt.Errorf("failed host %s is not in the snapshot", u)
		}
		excl[hi] = "failed"
	}
	var victims []*VM
	for i := range st.vms {
		v := &st.vms[i]
		if v.Running() && excl[st.byUUID[v.Host]] != "" {
			victims = append(victims, v)
		}
	}
	sortFunc(victims, func(a, b *VM) bool {
		if a.HAPriority != b.HAPriority {
			return a.HAPriority > b.HAPriority
		}
		return largerFirst(a, b)
	})
	plan := &HAPlan{}
	for _, v := range victims {
		src := st.byUUID[v.Host]
		switch {
		case v.Agent:
			plan.NotRestarted = append(plan.NotRestarted, Step{VM: vmRefOf(v), Action: ActionNone, Reason: "agent VM stays with its host"})
			continue
		case v.HAPriority < 0:
			plan.NotRestarted = append(plan.NotRestarted, Step{VM: vmRefOf(v), Action: ActionNone,
				Reason: fmt.Sprintf("HA priority %d: never restarted", v.HAPriority)})
			continue
		}
		hi, rej := st.place(v, excl)
		if hi < 0 {
			e := &NoEligibleHostError{VM: vmRefOf(v), Rejections: rej}
			plan.NotRestarted = append(plan.NotRestarted, Step{VM: vmRefOf(v), Action: ActionNone, Reason: e.Error()})
			continue
		}
		p := st.placement(hi, v)
		st.move(v, src, hi)
		plan.Restarts = append(plan.Restarts, Step{VM: vmRefOf(v), Action: ActionRestart, Target: p.Host, Notes: p.Notes})
	}
	return plan, nil
}
