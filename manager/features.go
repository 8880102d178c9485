package manager

import (
	"context"
	"slices"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// featureTasks runs a feature package's changes as the manager's quick
// tasks (tasks.Starter): the busy table, the task log and the model's
// copies stay here.
type featureTasks struct{ m *Manager }

type featureTask struct {
	m *Manager
	t *taskRec
}

func (f featureTasks) Begin(ctx context.Context, kind string, op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) (tasks.Quick, error) {
	m := f.m
	m.mu.Lock()
	var holds, reads []string
	for _, l := range locks {
		var t *taskRec
		if id, ok := state.ReadOf(l); ok {
			l, t = id, m.busyLocked(id) // readers share it
			reads = append(reads, id)
		} else {
			t = m.heldLocked(l)
			holds = append(holds, l)
		}
		if t != nil {
			name := refs[0].Name
			if i := slices.IndexFunc(refs, func(r *acliv1.EntityRef) bool { return r.Uuid == l }); i > 0 {
				kind, name = tasks.Noun(refs[i].Kind), refs[i].Name
			}
			m.mu.Unlock()
			return nil, apierr.Busy(kind, name, t.PB.Uuid, t.PB.Operation.String())
		}
	}
	t := m.newTaskLocked(op, refs, holds...)
	m.readLocked(t, reads...)
	m.startedByLocked(ctx, t)
	m.mu.Unlock()
	ft := &featureTask{m: m, t: t}
	if err := m.startQuick(ctx, t, kind); err != nil {
		ft.Drop()
		return nil, err
	}
	return ft, nil
}

func (ft *featureTask) Hold(lock string) (string, bool) {
	m := ft.m
	m.mu.Lock()
	defer m.mu.Unlock()
	holder, err := m.takeLocked(m.ctx, ft.t, nil, lock)
	if holder != "" || err != nil {
		return holder, false
	}
	ft.t.Locks = append(ft.t.Locks, lock)
	return "", true
}

func (ft *featureTask) Commit(ctx context.Context, ws []state.Write, message string) (*acliv1.Task, error) {
	m := ft.m
	out := outcome{message: message}
	for _, w := range ws {
		out.writes = append(out.writes, write{key: w.Key, msg: w.Msg, rev: w.Rev})
	}
	pb, err := m.complete(ctx, ft.t, out, nil)
	if err != nil {
		ft.Drop()
	}
	return pb, err
}

func (ft *featureTask) Drop() {
	ft.m.mu.Lock()
	defer ft.m.mu.Unlock()
	ft.m.forgetLocked(ft.t)
}
