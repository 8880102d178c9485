package image

import (
	"context"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// deletion is an image or snapshot delete: a record with volumes of its
// own that nothing else changes meanwhile.
type deletion[R proto.Message] struct {
	op      acliv1.TaskOperation
	kind    string
	find    func(tx *state.Tx) (R, error)
	ref     func(R) *acliv1.EntityRef
	key     func(R) string
	volumes func(R) []*acliv1.Disk
	message func(R) string
}

// deleteRecord resolves the record, refuses it while a task changes it or
// copies from it, and commits its removal as one quick task; its volumes
// are removed only then, so a failure leaves unused space, never a record
// without its data. Copies made from it are volumes of their own and keep
// working.
func deleteRecord[R proto.Message](ctx context.Context, s *Service, d deletion[R]) (*acliv1.Task, error) {
	var cur R
	var rev int64
	t, err := s.Tasks.Begin(ctx, func(h Held) (Start, error) {
		var err error
		s.DB.View(func(tx *state.Tx) {
			if cur, err = d.find(tx); err == nil {
				rev = tx.Rev(d.key(cur))
			}
		})
		if err != nil {
			return Start{}, err
		}
		e := d.ref(cur)
		if t := h.Holding(e.Uuid); t != nil {
			return Start{}, busy(d.kind, e.Name, t)
		}
		return Start{Op: d.op, Refs: []*acliv1.EntityRef{e}, Locks: []string{e.Uuid}}, nil
	})
	if err != nil {
		return nil, err
	}
	task, err := s.Tasks.Quick(ctx, t, func(ctx context.Context, t *tasks.Task) (Outcome, error) {
		return Outcome{
			Writes:  []state.Write{{Key: d.key(cur), Rev: rev}},
			Message: d.message(cur),
		}, nil
	})
	if err == nil {
		s.Volumes.Remove(context.WithoutCancel(ctx), d.volumes(cur))
	}
	return task, err
}
