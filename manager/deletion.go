package manager

import (
	"context"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// deletion is an image or snapshot delete: a record with volumes of its
// own that nothing else changes meanwhile.
type deletion[R proto.Message] struct {
	op      acliv1.TaskOperation
	find    func() (R, int64, error) // the record and its revision, under Manager.mu
	ref     func(R) *acliv1.EntityRef
	key     func(R) string
	forget  func(R) // drops the record from the model, under Manager.mu
	volumes func(R) []*acliv1.Disk
	message func(R) string
}

// deleteRecord resolves the record, refuses it while a task changes it,
// and commits its removal as one quick task; its volumes are removed only
// then, so a failure leaves unused space, never a record without its data.
// Copies made from it are volumes of their own and keep working.
func deleteRecord[R proto.Message](ctx context.Context, m *Manager, kind string, d deletion[R]) (*acliv1.Task, error) {
	m.mu.Lock()
	cur, rev, err := d.find()
	var e *acliv1.EntityRef
	if err == nil {
		e = d.ref(cur)
		err = m.checkBusyLocked(kind, e.Name, e.Uuid)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	t := m.newTaskLocked(d.op, []*acliv1.EntityRef{e}, e.Uuid)
	m.mu.Unlock()
	task, err := m.quick(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: d.key(cur), rev: rev}},
			apply:   func(int64) { d.forget(cur) },
			message: d.message(cur),
		}, nil
	})
	if err == nil {
		m.removeVolumes(context.WithoutCancel(ctx), d.volumes(cur))
	}
	return task, err
}
