package manager

import (
	"context"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// The task engine is manager/tasks' Engine; taskOwner is its view of the
// manager. The functions below delegate to it for the callers not yet
// moved to it.

// taskRec is a task of the engine (manager/tasks).
type taskRec = tasks.Task

// outcome is what a task's work produced (tasks.Outcome, with the root's
// write).
type outcome struct {
	writes  []write
	apply   func(rev int64)
	message string
	undo    func()
}

func (o outcome) engine() tasks.Outcome {
	out := tasks.Outcome{Apply: o.apply, Message: o.message, Undo: o.undo}
	for _, w := range o.writes {
		out.Writes = append(out.Writes, state.Write{Key: w.key, Msg: w.msg, Rev: w.rev})
	}
	return out
}

// work does a task's job (tasks.Work).
type work func(ctx context.Context, t *taskRec) (outcome, error)

func (w work) engine() tasks.Work {
	return func(ctx context.Context, t *taskRec) (tasks.Outcome, error) {
		o, err := w(ctx, t)
		return o.engine(), err
	}
}

// taskOwner is tasks.Owner over this manager.
type taskOwner struct{ m *Manager }

func (o taskOwner) Commit(ctx context.Context, ws []state.Write, holds func(tx *state.Tx) error) (int64, error) {
	out := make([]write, len(ws))
	for i, w := range ws {
		out[i] = write{key: w.Key, msg: w.Msg, rev: w.Rev}
	}
	return o.m.commitTx(ctx, out, false, holds)
}

func (o taskOwner) Publish(ev *acliv1.Event) { o.m.bus.Publish(ev) }

func (o taskOwner) LetGo(ids []string, release func()) {
	o.m.mu.Lock()
	defer o.m.mu.Unlock()
	o.m.letGoLocked(ids, release)
}

// letGoLocked follows a task letting go of ids: a VM's earlier host
// reports become stale (one it read too: a copy may have paused it);
// release frees its reservations.
func (m *Manager) letGoLocked(ids []string, release func()) {
	now := time.Now()
	for _, id := range ids {
		if r, ok := state.ReadOf(id); ok {
			id = r
		}
		m.settled.Settle(id, now)
	}
	if release != nil {
		release()
	}
}

func (m *Manager) newTaskLocked(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *taskRec {
	return m.tasks.Prepare(op, refs, locks...)
}

func (m *Manager) progress(t *taskRec, percent int32, format string, args ...any) {
	m.tasks.Progress(t, percent, format, args...)
}

func (m *Manager) launch(ctx context.Context, t *taskRec, w work) (*acliv1.Task, error) {
	return m.tasks.Launch(ctx, t, w.engine())
}

// forgetLocked drops a task that was never persisted (tasks.Engine.Drop),
// for a caller holding Manager.mu.
func (m *Manager) forgetLocked(t *taskRec) { m.letGoLocked(m.tasks.Drop(t)) }

// recoverTasks ends the tasks a previous run left running, but for the
// evacuations resumeTasks carries on.
func (m *Manager) recoverTasks(ctx context.Context) error {
	return m.tasks.Recover(ctx, func(pb *acliv1.Task) string {
		if maintenance.Resumable(pb) {
			return ""
		}
		return tasks.InterruptedError(pb)
	})
}
