package image

import (
	"context"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

// deletion is an image or snapshot delete: a record with volumes of its
// own that nothing else changes meanwhile.
type deletion[R proto.Message] struct {
	op   acliv1.TaskOperation
	kind string
	// find resolves a reference (a name, or the UUID once held).
	find    func(tx *state.Tx, ref string) (R, error)
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
func deleteRecord[R proto.Message](ctx context.Context, s *Service, ref string, d deletion[R]) (*acliv1.Task, error) {
	var cur R
	var err error
	s.DB.View(func(tx *state.Tx) { cur, err = d.find(tx, ref) })
	if err != nil {
		return nil, err
	}
	e := d.ref(cur)
	q, err := s.Quick.Begin(ctx, d.kind, d.op, []*acliv1.EntityRef{e}, e.Uuid)
	if err != nil {
		return nil, err
	}
	// Read again once held: a task that held it before has ended.
	var rev int64
	s.DB.View(func(tx *state.Tx) {
		if cur, err = d.find(tx, e.Uuid); err == nil {
			rev = tx.Rev(d.key(cur))
		}
	})
	if err != nil {
		q.Drop()
		return nil, err
	}
	task, err := q.Commit(ctx, []state.Write{{Key: d.key(cur), Rev: rev}}, d.message(cur))
	if err == nil {
		s.Volumes.Remove(context.WithoutCancel(ctx), d.volumes(cur))
	}
	return task, err
}
