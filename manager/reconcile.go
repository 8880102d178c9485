package manager

import (
	"context"
	"fmt"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/hostsync"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store"
)

// VM reports (hostsync.Drifts) are applied here. VMs a task is working on
// are skipped: the task's result is authoritative and the next report
// tells the truth again. So are reports read before a task last let go of
// the VM, or before the report last applied to it: the driver reads a host
// some time before the manager applies what it read, and a report of the
// domain a vm.off just destroyed, arriving after it, would otherwise record
// the VM running again (and the next vm.on would find it "already on" and
// start nothing), or fence a copy a task has just started.

func (m *Manager) applyVmStates(ctx context.Context, ev driver.HostEvent) error {
	var todo []hostsync.Drift
	var host *acliv1.Host
	m.mu.RLock()
	m.db.View(func(tx *state.Tx) {
		host = tx.Host(ev.HostUUID)
		todo = hostsync.Drifts(tx, ev, func(id string, at time.Time) bool {
			// tx, not m.vmAt: a View inside a View deadlocks once a commit
			// waits for the write lock between the two.
			r := vmRecOf(tx, tx.Vm(id))
			return r != nil && m.reportableLocked(r, at)
		})
	})
	m.mu.RUnlock()
	for _, d := range todo {
		if d.Fence {
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
	return at.IsZero() || !at.Before(m.settled[r.pb.Uuid])
}

// currentLocked returns the VM's model record when the committed record is
// still the one a drift was found against.
func (m *Manager) currentLocked(d hostsync.Drift) *vmRec {
	var r *vmRec
	var rev int64
	m.db.View(func(tx *state.Tx) { r, rev = vmRecOf(tx, tx.Vm(d.VM)), tx.Rev(vmKey(d.VM)) })
	if r == nil || rev != d.Rev || !m.reportableLocked(r, d.At) {
		return nil
	}
	return r
}

// applyDrift records the VM as the host reports it. It holds Manager.mu
// across the commit, so no task can take the VM in between and then find
// its record changed under it.
func (m *Manager) applyDrift(ctx context.Context, d hostsync.Drift) error {
	m.mu.Lock()
	r := m.currentLocked(d)
	if r == nil {
		m.mu.Unlock()
		return nil // changed since the report was compared; the next one tells
	}
	next := d.Next
	_, err := m.commitObserved(ctx, []write{{key: vmKey(d.VM), msg: next, rev: d.Rev}})
	if err == nil {
		m.settleLocked(d.VM, d.At) // reports from other hosts read before this one are older news
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
	m.publish("vm", "warning", "", refs, "%s", d.Msg)
	m.log.Warn("vm state reconciled from its host", "vm", next.Name, "msg", d.Msg)
	return nil
}

func (m *Manager) hostOf(v *acliv1.Vm) *acliv1.Host {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if r := m.hostAt(v.HostUuid); r != nil {
		return r.pb
	}
	return nil
}

// fence powers off the copy of a VM on h: the VM is recorded running on
// another host, which runs it too. It is a task on the VM, so no other
// task moves or starts the VM while the copy is being removed.
func (m *Manager) fence(h *acliv1.Host, d hostsync.Drift) {
	m.mu.Lock()
	r := m.currentLocked(d)
	if m.closing || r == nil || r.pb.HostUuid == h.Uuid {
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
