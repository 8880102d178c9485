package manager

import (
	"context"
	"fmt"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/ha"
	"github.com/acli-dev/acli/manager/scheduler"
)

// HA lives in manager/ha: its controller watches the heartbeats (m.beats)
// and has silent hosts marked down here; ha.Failover restarts a down
// host's VMs as a task through haManager, this manager's side of it.

// newHA assembles the HA controller, which marks a host down after timeout
// of silence; startOps runs it.
func (m *Manager) newHA(timeout time.Duration) *ha.Controller {
	failover := &ha.Failover{DB: m.db, M: haManager{m}, Driver: m.drv}
	return &ha.Controller{
		Timeout: timeout,
		Beats:   &m.beats,
		MarkDown: func(id string, silent time.Duration, now time.Time) {
			reason := fmt.Sprintf("no heartbeat for %v (timeout %v)", silent.Round(time.Millisecond), timeout)
			if err := m.hostEv.Apply(context.Background(), driver.HostEvent{Kind: driver.HostDown, HostUUID: id, Time: now, Reason: reason}); err != nil && m.ctx.Err() == nil {
				m.log.Error("marking a silent host down", "host", id, "err", err)
			}
		},
		Suspect: func(silent, live int) {
			m.log.Warn("most hosts are silent at once; suspecting the manager or its network, no host is marked down", "silent", silent, "of", live)
			m.publish("cluster", "warning", "", nil, "%d of %d hosts stopped sending heartbeats at once: suspecting clusterd or its network, no host is marked down and HA does not restart VMs", silent, live)
		},
		Launch: failover.Launch,
	}
}

// haManager is ha.Manager over this manager.
type haManager struct{ m *Manager }

// haLocked is what a restart reads, begins and counts under Manager.mu.
type haLocked struct{ m *Manager }

func (c haManager) Locked(fn func(l ha.Locked) error) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	return fn(haLocked(c))
}

func (c haManager) Launch(t *taskRec, w func(ctx context.Context) (string, error)) error {
	_, err := c.m.launch(c.m.ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		msg, err := w(ctx)
		return outcome{message: msg}, err
	})
	if err != nil {
		c.m.log.Error("starting HA", "task", t.PB().Uuid, "err", err)
	}
	return err
}

func (c haManager) Claim(ctx context.Context, t *taskRec, id string) (*acliv1.Vm, int64, error) {
	r, err := c.m.lockVm(ctx, t, id)
	if err != nil || r == nil {
		return nil, 0, err
	}
	return r.pb, r.rev, nil
}

func (c haManager) Arrive(host string) (func(), error) { return c.m.ops.moves.Arrive(host) }

func (c haManager) WithDevicesOn(vm *acliv1.Vm, host string) (*acliv1.Vm, error) {
	return c.m.db.StartOn(vm, host)
}

func (c haManager) Record(ctx context.Context, next *acliv1.Vm, rev int64, done func()) error {
	return c.m.putVm(ctx, next, rev, done)
}

func (c haManager) Progress(t *taskRec, percent int32, format string, args ...any) {
	c.m.progress(t, percent, format, args...)
}

func (c haManager) Message(t *taskRec, percent int32, format string, args ...any) {
	c.m.tasks.Message(t, percent, format, args...)
}

func (c haManager) Publish(t *taskRec, severity string, refs []*acliv1.EntityRef, format string, args ...any) {
	task := ""
	if t != nil {
		task = t.PB().Uuid
	}
	c.m.publish("ha", severity, task, refs, format, args...)
}

func (l haLocked) Closing() bool                 { return l.m.closing }
func (l haLocked) Snapshot() *scheduler.Snapshot { return l.m.haSettings.Snapshot() }
func (l haLocked) LetGo(t *taskRec, id string)   { l.m.releaseLocked(t, id) }
func (l haLocked) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef) *taskRec {
	return l.m.newTaskLocked(op, refs)
}
