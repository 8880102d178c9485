package manager

import (
	"context"
	"fmt"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// resumeTasks carries on the tasks recoverTasks left running, once the
// driver reports the hosts. What cannot go on is failed with its reason.
func (m *Manager) resumeTasks() {
	m.mu.RLock()
	left := m.taskTab.Newest(m.taskRetention, func(pb *acliv1.Task) bool { return !tasks.Finished(pb.Status) && maintenance.Resumable(pb) })
	m.mu.RUnlock()
	for _, pb := range left {
		m.mu.RLock()
		t := m.taskTab.Get(pb.Uuid)
		m.mu.RUnlock()
		if t != nil {
			m.resumeEvacuation(t)
		}
	}
}

// resumeEvacuation plans again what is still on the host and runs the
// evacuation under the same task, so a client waiting on it sees it end.
// The commits check the rules as on the first run.
func (m *Manager) resumeEvacuation(t *taskRec) {
	hostID := t.PB.Entities[0].Uuid
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return
	}
	var h *acliv1.Host
	m.db.View(func(tx *state.Tx) { h = tx.Host(hostID) })
	busy := ""
	if o := m.busyLocked(hostID); o != nil {
		busy = o.PB.Uuid
	}
	why := maintenance.ResumeRefusal(t.PB.Entities[0].Name, h, busy)
	var plan *scheduler.Plan
	if why == nil {
		var err error
		if plan, err = scheduler.PlanEvacuation(m.snapshotLocked(), hostID, scheduler.Block, scheduler.Options{}); err != nil {
			why = fmt.Errorf("planning the rest of the evacuation: %w", err)
		}
	}
	m.wg.Add(1)
	wctx, stop := context.WithCancelCause(m.ctx)
	if t.PB.Cancellable {
		t.Stop = stop
	}
	var run func(context.Context) (maintenance.Done, error)
	if why == nil {
		m.lockMoreLocked(t, hostID)
		run = m.maint.Resume(m.maint.M.(*maintManager).lockedView(), t, h, plan)
	}
	m.mu.Unlock()
	m.log.Warn("resuming a task the previous leader left running", "task", t.PB.Uuid, "op", t.PB.Operation.String(), "err", why)
	go func() {
		defer m.wg.Done()
		var out outcome
		err := why
		if err == nil {
			m.addMessage(t, -1, "resumed by a new leader: %d VM(s) still on %s planned again", len(plan.Steps), hostLabel(h))
			var d maintenance.Done
			d, err = run(wctx)
			out, err = doneOutcome(d), tasks.CancelledResult(wctx, err)
		}
		stop(nil)
		if _, cerr := m.complete(m.ctx, t, out, err); cerr != nil {
			m.log.Error("recording task result", "task", t.PB.Uuid, "err", cerr)
		}
	}()
}
