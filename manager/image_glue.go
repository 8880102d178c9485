package manager

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/image"
	"github.com/acli-dev/acli/manager/tasks"
)

// The images and snapshots feature (manager/image) reaches the manager
// through these: its launched tasks (quick ones begin through the task
// engine) and the driver's storage.

func (m *Manager) imageService() *image.Service {
	return &image.Service{DB: m.db, Tasks: imageTasks{m}, Quick: m.tasks, Volumes: m.stor.containers}
}

type imageTasks struct{ m *Manager }

func (a imageTasks) Begin(ctx context.Context, plan func(image.Held) (image.Start, error)) (*tasks.Task, error) {
	m := a.m
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := plan(heldTable{m})
	if err != nil {
		return nil, err
	}
	t := m.newTaskLocked(s.Op, s.Refs, s.Locks...)
	t.SetCancellable(s.Cancellable)
	if len(s.Reads) > 0 {
		m.readLocked(t, s.Reads...)
	}
	return t, nil
}

func (a imageTasks) Launch(ctx context.Context, t *tasks.Task, w image.Work) (*acliv1.Task, error) {
	return a.m.launch(ctx, t, imageWork(w))
}

func (a imageTasks) Progress(t *tasks.Task, percent int32, line string) {
	a.m.progress(t, percent, "%s", line)
}

func (a imageTasks) PastReturn(t *tasks.Task) { t.PastReturn() }

func imageWork(w image.Work) work {
	return func(ctx context.Context, t *taskRec) (outcome, error) {
		o, err := w(ctx, t)
		ws := make([]write, len(o.Writes))
		for i, x := range o.Writes {
			ws[i] = write{key: x.Key, msg: x.Msg, rev: x.Rev}
		}
		return outcome{writes: ws, message: o.Message, undo: o.Undo}, err
	}
}

// heldTable is the busy table read under Manager.mu.
type heldTable struct{ m *Manager }

func (h heldTable) Changing(id string) *acliv1.Task {
	if t := h.m.busyLocked(id); t != nil {
		return t.PB()
	}
	return nil
}

func (h heldTable) Holding(id string) *acliv1.Task {
	if t := h.m.heldLocked(id); t != nil {
		return t.PB()
	}
	return nil
}

// CloneVm is the image feature's: a clone copies a VM's or a snapshot's
// vDisks.
func (s vmService) CloneVm(ctx context.Context, req *acliv1.CloneVmRequest) (*acliv1.Task, error) {
	return s.m.imageService().CloneVm(ctx, req)
}
