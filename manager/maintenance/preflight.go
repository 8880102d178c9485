package maintenance

import (
	"fmt"

	"github.com/acli-dev/acli/manager/scheduler"
)

// Blocker types: what keeps a host from entering maintenance.
const (
	HostDown        = "HOST_DOWN"        // the host is down
	HostBusy        = "HOST_BUSY"        // another task holds the host
	MigrationTarget = "MIGRATION_TARGET" // a running task moves VMs onto it
	Redundancy      = "REDUNDANCY"       // the RF-1 budget of hosts out is spent
	Blocked         = "BLOCKED"          // a VM cannot leave
)

// Blocker is one thing that keeps a host from entering maintenance, with
// the argument that overrides it, the way kubectl drain lists the pods it
// cannot evict and the flag for each.
type Blocker struct {
	Type    string
	Subject string // "host:h1", "vm:db01"
	Reason  string
	// Override is the argument that lifts it, e.g.
	// "non_migratable_vm_action=acpi_shutdown"; empty when none does
	// (wait, or bring another host back).
	Override string
}

// String renders the blocker as one line for the operator, as the
// evacuation planner's blockers read.
func (b Blocker) String() string {
	return scheduler.Blocker{Reason: b.Reason, Override: b.Override}.String()
}

// Host is what the preflight knows of the host to take out.
type Host struct {
	Name  string
	Label string // "h1 (127.20.0.21)"
	Down  bool
	// BusyWith names the running task that holds the host, e.g.
	// "task 5d1c… (kHostExitMaintenanceMode)"; "" when none does.
	BusyWith string
	// Targets names the running tasks that move VMs onto the host.
	Targets []string
	// Redundancy is why the redundancy budget refuses taking the host out
	// ("" when it does not), naming the host already out as its subject.
	Redundancy        string
	RedundancySubject string
}

// Preflight lists every blocker of taking host out for maintenance:
// the host's own (down, held by a task, a migration target, the budget),
// then each VM of plan that cannot leave, with its override. plan may be
// nil (the host's blockers only).
func Preflight(h Host, plan *scheduler.Plan) []Blocker {
	subject := "host:" + h.Name
	var out []Blocker
	if h.Down {
		out = append(out, Blocker{Type: HostDown, Subject: subject, Reason: fmt.Sprintf("host %s is down", h.Label)})
	}
	if h.BusyWith != "" {
		out = append(out, Blocker{Type: HostBusy, Subject: subject,
			Reason: fmt.Sprintf("host %s is busy with %s; wait for it to finish", h.Label, h.BusyWith)})
	}
	for _, t := range h.Targets {
		out = append(out, Blocker{Type: MigrationTarget, Subject: subject,
			Reason: fmt.Sprintf("host %s is the target of %s; wait for it to finish", h.Label, t)})
	}
	if h.Redundancy != "" {
		s := h.RedundancySubject
		if s == "" {
			s = subject
		}
		out = append(out, Blocker{Type: Redundancy, Subject: s, Reason: h.Redundancy})
	}
	if plan != nil {
		for _, b := range plan.Blockers {
			out = append(out, Blocker{Type: Blocked, Subject: "vm:" + b.VM.Name, Reason: b.Reason, Override: b.Override})
		}
	}
	return out
}

// Remaining lists what keeps the host from EnteredMaintenanceMode after
// the drain, plan being the host's evacuation planned again now: each VM
// still to leave, with why (its failed move, the plan's blocker and its
// override, or a VM to shut down only once every other VM can leave).
func (d *Drain) Remaining(plan *scheduler.Plan, label string) []Blocker {
	blocked := map[string]scheduler.Blocker{}
	for _, b := range plan.Blockers {
		blocked[b.VM.UUID] = b
	}
	var out []Blocker
	for _, s := range plan.Steps {
		if s.Action == scheduler.ActionNone {
			continue
		}
		b := Blocker{Type: Blocked, Subject: "vm:" + s.VM.Name, Reason: d.Failure(s.VM.UUID)}
		if pb, ok := blocked[s.VM.UUID]; b.Reason == "" && ok {
			b.Reason, b.Override = pb.Reason, pb.Override
		}
		if b.Reason == "" && s.Action == scheduler.ActionShutdown {
			// Not a blocker itself: it is shut down only once the others can leave.
			b.Reason = fmt.Sprintf("vm %s (%s) is shut down only once every other VM can leave", s.VM, s.Reason)
		}
		if b.Reason == "" {
			b.Reason = fmt.Sprintf("vm %s is still running on %s", s.VM, label)
		}
		out = append(out, b)
	}
	return out
}
