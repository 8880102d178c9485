package manager

import (
	"context"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/hostsync"
	"github.com/acli-dev/acli/manager/state"
)

var timeNow = time.Now

// newHostEvents wires manager/hostsync's host report applier to this
// manager: commits, events, iSCSI failover and HA; VM reports go to its
// Reconciler.
func (m *Manager) newHostEvents() *hostsync.Events {
	vms := &hostsync.Reconciler{DB: m.db, Settled: m.settled, Manager: reconcileManager{m}, Hosts: m.drv, Log: m.log}
	return &hostsync.Events{
		DB: m.db, Beats: &m.beats, Now: timeNow, Log: m.log,
		Commit: func(ctx context.Context, next *acliv1.Host, rev int64) error {
			_, err := m.commit(ctx, []write{{key: state.HostKey(next.Uuid), msg: next, rev: rev}})
			return err
		},
		VmStates: func(ctx context.Context, ev driver.HostEvent) error {
			err := vms.Apply(ctx, ev)
			if ev.Complete {
				m.maint.Reported(ev.HostUUID)
			}
			return err
		},
		Publish: func(c hostsync.Change) {
			m.publish(c.Type, c.Severity, "", []*acliv1.EntityRef{state.HostRef(c.Next)}, "%s", c.Message)
			m.log.Info("host state changed", "host", c.Next.Name, "event", c.Event.Kind.String(), "reason", c.Event.Reason)
		},
		Changed: func(c hostsync.Change) {
			if c.Prev.CvmState != c.Next.CvmState {
				m.vgs.CvmChanged(m.ctx, c.Prev, c.Next) // iSCSI failover and failback
			}
			if c.Event.Kind == driver.HostDown {
				m.ha.HostDown(c.Next)
			}
			if c.Event.Kind == driver.HostUp && c.Next.NodeState == acliv1.NodeState_EnteringMaintenanceMode {
				m.maint.HostBack(m.ctx, c.Next.Uuid) // its evacuation goes on
			}
		},
	}
}

// reconcileManager is manager/hostsync's Reconciler's view of the manager
// (hostsync.Manager); reconcileLocked is what it reads and does under
// Manager.mu.
type reconcileManager struct{ m *Manager }

type reconcileLocked struct{ m *Manager }

func (c reconcileManager) Read(fn func(r hostsync.Reader)) {
	c.m.mu.RLock()
	defer c.m.mu.RUnlock()
	fn(reconcileLocked(c))
}

func (c reconcileManager) Locked(fn func(l hostsync.Locked)) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	fn(reconcileLocked(c))
}

func (c reconcileManager) Launch(t *taskRec, w func(ctx context.Context) (string, error)) error {
	_, err := c.m.launch(c.m.ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		msg, err := w(ctx)
		return outcome{message: msg}, err
	})
	return err
}

func (c reconcileManager) Progress(t *taskRec, percent int32, format string, args ...any) {
	c.m.progress(t, percent, format, args...)
}

func (c reconcileManager) Publish(refs []*acliv1.EntityRef, msg string) {
	c.m.publish("vm", "warning", "", refs, "%s", msg)
}

// Busy reads the holds and the readers of copies only: it is asked
// inside a View.
func (l reconcileLocked) Busy(vm string) bool { return l.m.heldLocked(vm) != nil }

func (l reconcileLocked) Record(ctx context.Context, next *acliv1.Vm, rev int64) error {
	_, err := l.m.commitObserved(ctx, []write{{key: state.VmKey(next.Uuid), msg: next, rev: rev}})
	return err
}

func (l reconcileLocked) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *taskRec {
	if l.m.closing {
		return nil
	}
	return l.m.newTaskLocked(op, refs, locks...)
}
