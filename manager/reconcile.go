package manager

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/vm"
)

// Drivers with real hosts (libvirt) report what the hosts run (VmStates
// events). A VM changed outside clusterd — powered off or started with
// virsh, shut down by its guest, crashed, migrated by hand — is reflected
// in the model, not fought. The one exception is a second copy of a
// running VM: a host that was unreachable while HA restarted its VMs
// elsewhere still runs the old copies when it returns, and those are
// powered off (fenced), since a VM runs on exactly one host.
//
// VMs a task is working on are skipped: the task's result is authoritative
// and the next report tells the truth again. So are reports read before a
// task last let go of the VM, or before the report last applied to it: the
// driver reads a host some time before the manager applies what it read,
// and a report of the domain a vm.off just destroyed, arriving after it,
// would otherwise record the VM running again (and the next vm.on would
// find it "already on" and start nothing), or fence a copy a task has just
// started.

// drift is one difference between the record and a host's report.
type drift struct {
	vm   string
	rev  int64      // the record's revision the drift was found against
	at   time.Time  // when the host was read
	next *acliv1.Vm // nil with fence
	// fence: the host runs a copy of a VM that runs elsewhere; power it off.
	fence bool
	msg   string
}

func (m *Manager) applyVmStates(ctx context.Context, ev driver.HostEvent) error {
	m.mu.RLock()
	hr := m.hosts[ev.HostUUID]
	if hr == nil {
		m.mu.RUnlock()
		return nil
	}
	host := hr.pb
	var todo []drift
	seen := make(map[string]bool, len(ev.Vms))
	for _, o := range ev.Vms {
		seen[o.VmUUID] = true
		r := m.vms[o.VmUUID]
		if r == nil || !m.reportableLocked(r, ev.Time) {
			continue // not an acli VM, a task is on it, or the report is stale
		}
		if d, ok := vmDrift(r.pb, host, o, m.hosts); ok {
			d.rev, d.at = r.rev, ev.Time
			todo = append(todo, d)
		}
	}
	if ev.Complete {
		// Recorded here but not on the host at all: it is gone.
		for id, r := range m.vms {
			if !seen[id] && placed(r.pb) && r.pb.HostUuid == host.Uuid && m.reportableLocked(r, ev.Time) {
				d := offDrift(r.pb, host, "is no longer on host")
				d.rev, d.at = r.rev, ev.Time
				todo = append(todo, d)
			}
		}
	}
	m.mu.RUnlock()
	for _, d := range todo {
		if d.fence {
			m.fence(host, d)
			continue
		}
		if err := m.applyDrift(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// reportableLocked says whether a host report read at the given time may
// change the VM: no task is on it and nothing changed it since.
func (m *Manager) reportableLocked(r *vmRec, at time.Time) bool {
	if m.heldLocked(r.pb.Uuid) != nil {
		return false
	}
	return at.IsZero() || !at.Before(r.settled)
}

// vmDrift compares a VM record with what host h reports about it.
func vmDrift(cur *acliv1.Vm, h *acliv1.Host, o driver.VmObservation, hosts map[string]*hostRec) (drift, bool) {
	label := hostLabel(h)
	if o.PowerState == acliv1.PowerState_kOff {
		if placed(cur) && cur.HostUuid == h.Uuid {
			return offDrift(cur, h, "was found off on host"), true
		}
		return drift{}, false
	}
	next := proto.Clone(cur).(*acliv1.Vm)
	next.PowerState, next.HostUuid, next.HostName = o.PowerState, h.Uuid, h.Name
	switch {
	case placed(cur) && cur.HostUuid == h.Uuid:
		if cur.PowerState == o.PowerState {
			return drift{}, false
		}
		return drift{vm: cur.Uuid, next: next, msg: fmt.Sprintf("vm %s is %s on host %s (changed outside clusterd)", cur.Name, vm.PowerWord(o.PowerState), label)}, true
	case placed(cur) && slices.Contains(o.RunningElsewhere, cur.HostUuid):
		return drift{vm: cur.Uuid, fence: true}, true
	case placed(cur):
		from := cur.HostName
		if r := hosts[cur.HostUuid]; r != nil {
			from = hostLabel(r.pb)
		}
		return drift{vm: cur.Uuid, next: next, msg: fmt.Sprintf("vm %s was found %s on host %s, not on %s (moved outside clusterd)", cur.Name, vm.PowerWord(o.PowerState), label, from)}, true
	}
	return drift{vm: cur.Uuid, next: next, msg: fmt.Sprintf("vm %s was found %s on host %s (started outside clusterd)", cur.Name, vm.PowerWord(o.PowerState), label)}, true
}

func offDrift(cur *acliv1.Vm, h *acliv1.Host, what string) drift {
	next := proto.Clone(cur).(*acliv1.Vm)
	next.PowerState, next.HostUuid, next.HostName = acliv1.PowerState_kOff, "", ""
	return drift{vm: cur.Uuid, next: next, msg: fmt.Sprintf("vm %s %s %s (powered off outside clusterd)", cur.Name, what, hostLabel(h))}
}

// applyDrift records the VM as the host reports it. It holds Manager.mu
// across the commit, so no task can take the VM in between and then find
// its record changed under it.
func (m *Manager) applyDrift(ctx context.Context, d drift) error {
	m.mu.Lock()
	r := m.vms[d.vm]
	if r == nil || r.rev != d.rev || !m.reportableLocked(r, d.at) {
		m.mu.Unlock()
		return nil // changed since the report was compared; the next one tells
	}
	next := d.next
	rev, err := m.commitObserved(ctx, []write{{key: vmKey(d.vm), msg: next, rev: r.rev}})
	if err == nil {
		m.putVmLocked(next, rev)
		if d.at.After(r.settled) {
			r.settled = d.at // reports from other hosts read before this one are older news
		}
	}
	m.mu.Unlock()
	if store.IsConflict(err) {
		return nil // changed meanwhile; the next report says how things are
	}
	if err != nil {
		return err
	}
	refs := []*acliv1.EntityRef{vmRef(next)}
	if h := m.hostOf(next); h != nil {
		refs = append(refs, hostRef(h))
	}
	m.publish("vm", "warning", "", refs, "%s", d.msg)
	m.log.Warn("vm state reconciled from its host", "vm", next.Name, "msg", d.msg)
	return nil
}

func (m *Manager) hostOf(v *acliv1.Vm) *acliv1.Host {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if r := m.hosts[v.HostUuid]; r != nil {
		return r.pb
	}
	return nil
}

// fence powers off the copy of a VM on h: the VM is recorded running on
// another host, which runs it too. It is a task on the VM, so no other
// task moves or starts the VM while the copy is being removed.
func (m *Manager) fence(h *acliv1.Host, d drift) {
	m.mu.Lock()
	r := m.vms[d.vm]
	if m.closing || r == nil || r.rev != d.rev || !m.reportableLocked(r, d.at) || r.pb.HostUuid == h.Uuid {
		m.mu.Unlock()
		return // changed since the report; the next one tells
	}
	vm := r.pb
	t := m.newTaskLocked(acliv1.TaskOperation_kVmPowerOff, []*acliv1.EntityRef{vmRef(vm), hostRef(h)}, vm.Uuid)
	m.mu.Unlock()
	_, err := m.launch(m.ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		m.progress(t, 10, "powering off the stale copy of vm %s on host %s; it runs on %s", vm.Name, hostLabel(h), vm.HostName)
		if err := m.drv.PowerOff(ctx, h, vm); err != nil {
			return outcome{}, fmt.Errorf("vm %s runs on %s and also on host %s; powering off the copy on %s failed: %w", vm.Name, vm.HostName, hostLabel(h), h.Name, err)
		}
		m.log.Warn("fenced a stale copy of a vm", "vm", vm.Name, "host", h.Name, "runs_on", vm.HostName)
		return outcome{message: fmt.Sprintf("vm %s runs on %s; its stale copy on host %s (left when HA restarted it) was powered off", vm.Name, vm.HostName, hostLabel(h))}, nil
	})
	if err != nil {
		m.log.Warn("cannot fence a stale copy of a vm", "vm", vm.Name, "host", h.Name, "err", err)
	}
}
