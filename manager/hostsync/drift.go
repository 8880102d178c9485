package hostsync

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
)

// Drivers with real hosts (libvirt) report what the hosts run (VmStates
// events). A VM changed outside clusterd — powered off or started with
// virsh, shut down by its guest, crashed, migrated by hand — is reflected
// in the records, not fought. The one exception is a second copy of a
// running VM: a host that was unreachable while HA restarted its VMs
// elsewhere still runs the old copies when it returns, and those are
// powered off (fenced), since a VM runs on exactly one host.

// Drift is one difference between a VM's record and a host's report.
type Drift struct {
	VM   string
	Rev  int64      // the record's revision the drift was found against
	At   time.Time  // when the host was read
	Next *acliv1.Vm // the record as the host reports it; nil with Fence
	// Fence: the host runs a copy of a VM that runs elsewhere; power it off.
	Fence bool
	Msg   string
}

// Drifts compares a host's report (ev) with the committed VM records.
// reportable says whether a report read at a time may change a VM: the
// caller skips VMs a task works on (its result is authoritative) and
// reports read before the VM last changed.
func Drifts(tx *state.Tx, ev driver.HostEvent, reportable func(vm string, at time.Time) bool) []Drift {
	h := tx.Host(ev.HostUUID)
	if h == nil {
		return nil
	}
	var out []Drift
	add := func(cur *acliv1.Vm, d Drift) {
		d.Rev, d.At = tx.Rev(state.VmKey(cur.Uuid)), ev.Time
		out = append(out, d)
	}
	seen := make(map[string]bool, len(ev.Vms))
	for _, o := range ev.Vms {
		seen[o.VmUUID] = true
		cur := tx.Vm(o.VmUUID)
		if cur == nil || !reportable(cur.Uuid, ev.Time) {
			continue // not an acli VM, a task is on it, or the report is stale
		}
		from := ""
		if other := tx.Host(cur.HostUuid); other != nil {
			from = label(other)
		}
		if d, ok := Compare(cur, h, o, from); ok {
			add(cur, d)
		}
	}
	if ev.Complete {
		// Recorded here but not on the host at all: it is gone.
		for _, cur := range tx.VmsOn(h.Uuid) {
			if !seen[cur.Uuid] && reportable(cur.Uuid, ev.Time) {
				add(cur, off(cur, h, "is no longer on host"))
			}
		}
	}
	return out
}

// Compare is the drift of VM record cur from what host h reports of it
// (o); from labels the host the record places it on.
func Compare(cur *acliv1.Vm, h *acliv1.Host, o driver.VmObservation, from string) (Drift, bool) {
	where := label(h)
	if o.PowerState == acliv1.PowerState_kOff {
		if state.Placed(cur) && cur.HostUuid == h.Uuid {
			return off(cur, h, "was found off on host"), true
		}
		return Drift{}, false
	}
	next := proto.Clone(cur).(*acliv1.Vm)
	next.PowerState, next.HostUuid, next.HostName = o.PowerState, h.Uuid, h.Name
	switch {
	case state.Placed(cur) && cur.HostUuid == h.Uuid:
		if cur.PowerState == o.PowerState {
			return Drift{}, false
		}
		return Drift{VM: cur.Uuid, Next: next, Msg: fmt.Sprintf("vm %s is %s on host %s (changed outside clusterd)", cur.Name, state.PowerWord(o.PowerState), where)}, true
	case state.Placed(cur) && slices.Contains(o.RunningElsewhere, cur.HostUuid):
		return Drift{VM: cur.Uuid, Fence: true}, true
	case state.Placed(cur):
		if from == "" {
			from = cur.HostName
		}
		return Drift{VM: cur.Uuid, Next: next, Msg: fmt.Sprintf("vm %s was found %s on host %s, not on %s (moved outside clusterd)", cur.Name, state.PowerWord(o.PowerState), where, from)}, true
	}
	return Drift{VM: cur.Uuid, Next: next, Msg: fmt.Sprintf("vm %s was found %s on host %s (started outside clusterd)", cur.Name, state.PowerWord(o.PowerState), where)}, true
}

func off(cur *acliv1.Vm, h *acliv1.Host, what string) Drift {
	next := proto.Clone(cur).(*acliv1.Vm)
	next.PowerState, next.HostUuid, next.HostName = acliv1.PowerState_kOff, "", ""
	return Drift{VM: cur.Uuid, Next: next, Msg: fmt.Sprintf("vm %s %s %s (powered off outside clusterd)", cur.Name, what, label(h))}
}

func label(h *acliv1.Host) string { return h.Name + " (" + h.HypervisorIp + ")" }
