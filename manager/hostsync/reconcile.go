package hostsync

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/tasks"
)

// Reconciler applies what hosts report they run (driver.VmStates) to the
// VM records (Drifts). VMs a task is working on are skipped: the task's
// result is authoritative and the next report tells the truth again. So
// are reports read before a task last let go of the VM, or before the
// report last applied to it: the driver reads a host some time before it
// is applied, and a report of the domain a vm.off just destroyed, arriving
// after it, would otherwise record the VM running again (and the next
// vm.on would find it "already on" and start nothing), or fence a copy a
// task has just started.
type Reconciler struct {
	DB      *state.DB // the committed VM and host records
	Settled *Settled  // when each VM last changed through clusterd
	Manager Manager
	Hosts   PowerOffer // powers off a fenced copy (the driver)
	Log     *slog.Logger
}

// PowerOffer stops a VM on a host at once (driver.Driver.PowerOff).
type PowerOffer interface {
	PowerOff(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error
}

// Manager is what reconciling needs of the rest of the manager: the lock
// under which tasks take and let go of VMs, and the task engine.
type Manager interface {
	// Read runs fn holding the manager's lock for reading.
	Read(fn func(r Reader))
	// Locked runs fn holding the manager's lock: no task takes or lets go
	// of a VM until it returns.
	Locked(fn func(l Locked))
	// Launch persists t and runs w in the background; w's text closes the
	// task.
	Launch(t *tasks.Task, w func(ctx context.Context) (string, error)) error
	// Progress sets a running task's percent and progress line.
	Progress(t *tasks.Task, percent int32, format string, args ...any)
	// Publish sends a warning event about refs.
	Publish(refs []*acliv1.EntityRef, msg string)
}

// Reader is what may be read under the manager's lock.
type Reader interface {
	// Busy says whether a task holds VM vm (or copies from it): a report
	// does not change it then. It is asked inside a state.DB View, so it
	// must open none (a View inside a View deadlocks once a commit waits
	// for the write lock between the two).
	Busy(vm string) bool
}

// Locked is what may be read and done under the manager's lock.
type Locked interface {
	Reader
	// Record commits next over the VM's record, which must still be at
	// rev (a store conflict otherwise), as observed (the placement rules
	// judge decisions only).
	Record(ctx context.Context, next *acliv1.Vm, rev int64) error
	// Begin starts a task of op on refs holding locks; nil when the
	// manager is closing.
	Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *tasks.Task
}

// Apply records the VMs as host ev.HostUUID reports them, and fences the
// copies it runs of VMs that run elsewhere.
func (r *Reconciler) Apply(ctx context.Context, ev driver.HostEvent) error {
	var todo []Drift
	var host *acliv1.Host
	r.Manager.Read(func(l Reader) {
		r.DB.View(func(tx *state.Tx) {
			host = tx.Host(ev.HostUUID)
			todo = Drifts(tx, ev, r.reportable(l))
		})
	})
	for _, d := range todo {
		if d.Fence {
			r.fence(host, d)
			continue
		}
		if err := r.record(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// reportable says whether a host report read at at (zero: unknown) may
// change VM vm: no task holds it and nothing changed it through clusterd
// since. It opens no View.
func (r *Reconciler) reportable(l Reader) func(vm string, at time.Time) bool {
	return func(vm string, at time.Time) bool { return !l.Busy(vm) && !r.Settled.Stale(vm, at) }
}

// current is the VM's record when it is still the one d was found against
// and the report may still change it; nil otherwise.
func (r *Reconciler) current(l Reader, d Drift) *acliv1.Vm {
	var v *acliv1.Vm
	var rev int64
	r.DB.View(func(tx *state.Tx) { v, rev = tx.Vm(d.VM), tx.Rev(state.VmKey(d.VM)) })
	if v == nil || rev != d.Rev || !r.reportable(l)(d.VM, d.At) {
		return nil
	}
	return v
}

// record commits the VM as the host reports it. The manager's lock is held
// across the commit, so no task can take the VM in between and then find
// its record changed under it.
func (r *Reconciler) record(ctx context.Context, d Drift) error {
	var err error
	applied := false
	r.Manager.Locked(func(l Locked) {
		if r.current(l, d) == nil {
			return // changed since the report was compared; the next one tells
		}
		err = l.Record(ctx, d.Next, d.Rev)
		if applied = err == nil; applied {
			r.Settled.Settle(d.VM, d.At) // reports from other hosts read before this one are older news
		}
	})
	if store.IsConflict(err) {
		return nil // changed meanwhile; the next report says how things are
	}
	if !applied {
		return err
	}
	refs := []*acliv1.EntityRef{state.VmRef(d.Next)}
	var h *acliv1.Host
	r.DB.View(func(tx *state.Tx) { h = tx.Host(d.Next.HostUuid) })
	if h != nil {
		refs = append(refs, state.HostRef(h))
	}
	r.Manager.Publish(refs, d.Msg)
	r.Log.Warn("vm state reconciled from its host", "vm", d.Next.Name, "msg", d.Msg)
	return nil
}

// fence powers off the copy of a VM on h: the VM is recorded running on
// another host, which runs it too. It is a task on the VM, so no other
// task moves or starts the VM while the copy is being removed.
func (r *Reconciler) fence(h *acliv1.Host, d Drift) {
	var vm *acliv1.Vm
	var t *tasks.Task
	r.Manager.Locked(func(l Locked) {
		vm = r.current(l, d)
		if vm == nil || vm.HostUuid == h.Uuid {
			return // changed since the report; the next one tells
		}
		t = l.Begin(acliv1.TaskOperation_kVmPowerOff, []*acliv1.EntityRef{state.VmRef(vm), state.HostRef(h)}, vm.Uuid)
	})
	if t == nil {
		return
	}
	err := r.Manager.Launch(t, func(ctx context.Context) (string, error) {
		r.Manager.Progress(t, 10, "powering off the stale copy of vm %s on host %s; it runs on %s", vm.Name, label(h), vm.HostName)
		if err := r.Hosts.PowerOff(ctx, h, vm); err != nil {
			return "", fmt.Errorf("vm %s runs on %s and also on host %s; powering off the copy on %s failed: %w", vm.Name, vm.HostName, label(h), h.Name, err)
		}
		r.Log.Warn("fenced a stale copy of a vm", "vm", vm.Name, "host", h.Name, "runs_on", vm.HostName)
		return fmt.Sprintf("vm %s runs on %s; its stale copy on host %s (left when HA restarted it) was powered off", vm.Name, vm.HostName, label(h)), nil
	})
	if err != nil {
		r.Log.Warn("cannot fence a stale copy of a vm", "vm", vm.Name, "host", h.Name, "err", err)
	}
}
