package scheduler

import "fmt"

// NonMigratableAction is what maintenance does with VMs that cannot
// live-migrate (host affinity to the host only, passthrough device).
type NonMigratableAction int

const (
	// Block leaves them in place and reports them as blockers.
	Block NonMigratableAction = iota
	// AcpiShutdown shuts them down; they power on again when the host exits maintenance.
	AcpiShutdown
)

// Action is what a plan does with one VM.
type Action int

const (
	// ActionNone: the VM is off and stays where it is.
	ActionNone Action = iota
	// ActionMigrate: live-migrate to Target.
	ActionMigrate
	// ActionShutdown: ACPI shut-down (agent VMs, non-migratable VMs with acpi_shutdown).
	ActionShutdown
	// ActionBlocked: the VM cannot leave; see Reason.
	ActionBlocked
	// ActionRestart: power on at Target (HA).
	ActionRestart
)

func (a Action) String() string {
	switch a {
	case ActionNone:
		return "none"
	case ActionMigrate:
		return "migrate"
	case ActionShutdown:
		return "shutdown"
	case ActionBlocked:
		return "blocked"
	case ActionRestart:
		return "restart"
	}
	return "unknown"
}

// Step is what a plan does with one VM.
type Step struct {
	VM     VMRef
	Action Action
	// Target is the destination of ActionMigrate and ActionRestart.
	Target HostRef
	// Reason explains shutdowns, blocks and VMs left off.
	Reason string
	// Notes lists soft rules the target does not honour.
	Notes []string
}

// Blocker is one reason a host cannot be evacuated as asked.
type Blocker struct {
	VM VMRef
	// Reason names the VM and what holds it, e.g.
	// "vm db01 has host affinity to 127.20.0.21".
	Reason string
	// Override is the argument that lifts it, e.g.
	// "non_migratable_vm_action=acpi_shutdown"; empty when none does.
	Override string
}

// String renders the blocker as one line for the operator.
func (b Blocker) String() string {
	if b.Override == "" {
		return b.Reason
	}
	return b.Reason + " (use " + b.Override + ")"
}

// Plan is the whole evacuation of one host, computed before anything moves.
type Plan struct {
	Host HostRef
	// Steps are in execution order: migrations (largest VM first), then
	// shutdowns, then blocked VMs, then VMs that are off.
	Steps    []Step
	Blockers []Blocker
}

// OK reports whether nothing blocks the evacuation.
func (p *Plan) OK() bool { return len(p.Blockers) == 0 }

const overrideShutdown = "non_migratable_vm_action=acpi_shutdown or mode=power_off"

// overrideCold is the override of a VM that cannot live-migrate but that
// an offline move (cold maintenance) can take to another host.
const overrideCold = "mode=cold, " + overrideShutdown

// PlanEvacuation plans the evacuation of host hostUUID: every running VM is
// migrated, shut down or reported as blocked, and off VMs are listed as left
// alone. The plan places the largest VMs first, each on the best remaining
// host as the earlier moves leave it, so the remaining hosts stay balanced.
// It serves the maintenance check and the real run alike; run again on a
// fresh snapshot, it plans what is left.
func PlanEvacuation(s *Snapshot, hostUUID string, action NonMigratableAction, opt Options) (*Plan, error) {
	st, err := compile(s, opt)
	if err != nil {
		return nil, err
	}
	src, ok := st.byUUID[hostUUID]
	if !ok {
		return nil, fmt.Errorf("host %s is not in the snapshot", hostUUID)
	}
	plan := &Plan{Host: st.ref(src)}
	srcLabel := st.hostLabel(hostUUID)

	var migrate, shutdown, blocked, off, pinned []*VM
	reasons := map[*VM]string{}
	for i := range st.vms {
		v := &st.vms[i]
		if v.Host != hostUUID {
			continue
		}
		if !v.Running() {
			off = append(off, v)
			continue
		}
		why := ""
		switch {
		case v.Agent:
			reasons[v] = "agent VM"
			shutdown = append(shutdown, v)
			continue
		case v.Passthrough && !opt.Offline:
			why = fmt.Sprintf("vm %s has %s and cannot live-migrate", v.Name, v.pinnedBy())
		case len(v.HostAffinity) > 0 && !st.affinityElsewhere(v, src):
			why = fmt.Sprintf("vm %s has host affinity to %s", v.Name, st.hostLabels(v.HostAffinity))
			if !(len(v.HostAffinity) == 1 && v.HostAffinity[0] == hostUUID) {
				why += ", none of them available besides " + srcLabel
			}
		}
		if why == "" {
			migrate = append(migrate, v)
			continue
		}
		reasons[v] = why
		switch {
		case action == AcpiShutdown:
			shutdown = append(shutdown, v)
		case v.Passthrough && !opt.Offline:
			blocked, pinned = append(blocked, v), append(pinned, v)
		default:
			blocked = append(blocked, v)
			plan.Blockers = append(plan.Blockers, Blocker{VM: vmRefOf(v), Reason: why, Override: overrideShutdown})
		}
	}

	sortFunc(migrate, largerFirst)
	excl := make([]string, len(st.hosts))
	excl[src] = "host being evacuated"
	var noRoom []*VM
	for _, v := range migrate {
		hi, rej := st.place(v, excl)
		if hi < 0 {
			e := &NoEligibleHostError{VM: vmRefOf(v), Rejections: rej}
			reasons[v] = e.Error()
			noRoom = append(noRoom, v)
			continue
		}
		p := st.placement(hi, v)
		st.move(v, src, hi)
		plan.Steps = append(plan.Steps, Step{VM: vmRefOf(v), Action: ActionMigrate, Target: p.Host, Notes: p.Notes})
	}

	// A VM pinned by what it holds is lifted by cold maintenance when the
	// cold plan moves it (offline, to a host with what it needs).
	var cold *Plan
	if len(pinned) > 0 {
		copt := opt
		copt.Offline = true
		if cold, err = PlanEvacuation(s, hostUUID, action, copt); err != nil {
			return nil, err
		}
	}
	for _, v := range pinned {
		o := overrideShutdown
		for _, st := range cold.Steps {
			if st.VM.UUID == v.UUID && st.Action == ActionMigrate {
				o = overrideCold
			}
		}
		plan.Blockers = append(plan.Blockers, Blocker{VM: vmRefOf(v), Reason: reasons[v], Override: o})
	}

	sortFunc(shutdown, byName)
	for _, v := range shutdown {
		plan.Steps = append(plan.Steps, Step{VM: vmRefOf(v), Action: ActionShutdown, Reason: reasons[v]})
	}
	// A VM without room is blocked whatever the action: shutting down a VM
	// the operator expects to migrate is not ours to decide.
	for _, v := range noRoom {
		plan.Blockers = append(plan.Blockers, Blocker{VM: vmRefOf(v), Reason: reasons[v]})
	}
	blocked = append(blocked, noRoom...)
	for _, v := range blocked {
		plan.Steps = append(plan.Steps, Step{VM: vmRefOf(v), Action: ActionBlocked, Reason: reasons[v]})
	}
	sortFunc(off, byName)
	for _, v := range off {
		plan.Steps = append(plan.Steps, Step{VM: vmRefOf(v), Action: ActionNone, Reason: "off"})
	}
	sortFunc(plan.Blockers, func(a, b Blocker) bool {
		if a.VM.Name != b.VM.Name {
			return a.VM.Name < b.VM.Name
		}
		return a.VM.UUID < b.VM.UUID
	})
	return plan, nil
}

// affinityElsewhere reports whether v's affinity set holds a host other than
// src that is in service (capacity aside).
func (st *state) affinityElsewhere(v *VM, src int) bool {
	for _, u := range v.HostAffinity {
		hi, ok := st.byUUID[u]
		if !ok || hi == src {
			continue
		}
		if h := &st.hosts[hi]; h.State == NodeNormal && h.Schedulable {
			return true
		}
	}
	return false
}

func largerFirst(a, b *VM) bool {
	if a.MemoryBytes != b.MemoryBytes {
		return a.MemoryBytes > b.MemoryBytes
	}
	if a.VCPUs != b.VCPUs {
		return a.VCPUs > b.VCPUs
	}
	return byName(a, b)
}

func byName(a, b *VM) bool {
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.UUID < b.UUID
}
