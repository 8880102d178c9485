package vm

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

// Edit is the shape of a quick change of one VM's record: resolve ref,
// begin op holding the VM, let change build the next record from the committed one, read once the task
// holds it, and commit that with the task's end. A refusal by change or at
// the commit leaves no task.
func (s *Service) Edit(ctx context.Context, ref string, op acliv1.TaskOperation, change func(cur *acliv1.Vm) (*acliv1.Vm, string, error)) (*acliv1.Task, error) {
	v, _, err := s.resolve("vm", ref)
	if err != nil {
		return nil, err
	}
	q, cur, rev, err := s.begin(ctx, v, op)
	if err != nil {
		return nil, err
	}
	next, msg, err := change(cur)
	if err != nil {
		q.Drop()
		return nil, err
	}
	return q.Commit(ctx, []state.Write{put(next, rev)}, msg)
}
