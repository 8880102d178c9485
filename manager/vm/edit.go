package vm

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// Edit is the shape of a quick change of one VM's record, for every
// feature that makes one: resolve ref in the committed state, begin op
// through st holding the VM, let change build the next record from the
// committed one, read once the task holds it, and commit that with the
// task's end. A refusal by change or at the commit leaves no task.
func Edit(ctx context.Context, st tasks.Starter, db *state.DB, ref string, op acliv1.TaskOperation, change func(cur *acliv1.Vm) (*acliv1.Vm, string, error)) (*acliv1.Task, error) {
	q, cur, rev, err := Begin(ctx, st, db, ref, op)
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

// Edit is vm.Edit through the service's tasks and state.
func (s *Service) Edit(ctx context.Context, ref string, op acliv1.TaskOperation, change func(cur *acliv1.Vm) (*acliv1.Vm, string, error)) (*acliv1.Task, error) {
	return Edit(ctx, s.tasks, s.db, ref, op, change)
}

// Begin resolves ref and begins a quick task of op through st holding the
// VM and locks (another task holding one refuses it as the VM being busy).
// It reads the VM again once it is held, as cur at rev: a task that held
// it before has committed its change by then.
func Begin(ctx context.Context, st tasks.Starter, db *state.DB, ref string, op acliv1.TaskOperation, locks ...string) (q tasks.Quick, cur *acliv1.Vm, rev int64, err error) {
	var v *acliv1.Vm
	db.View(func(tx *state.Tx) { v, err = Resolve(tx, "vm", ref) })
	if err != nil {
		return nil, nil, 0, err
	}
	return begin(ctx, st, db, v, op, locks...)
}

// begin is Begin for a VM already resolved.
func begin(ctx context.Context, st tasks.Starter, db *state.DB, v *acliv1.Vm, op acliv1.TaskOperation, locks ...string) (tasks.Quick, *acliv1.Vm, int64, error) {
	return beginNaming(ctx, st, db, v, op, nil, locks...)
}

// beginNaming is begin with more entities named by the task (a copy's
// source, which a busy refusal of its lock names).
func beginNaming(ctx context.Context, st tasks.Starter, db *state.DB, v *acliv1.Vm, op acliv1.TaskOperation, more []*acliv1.EntityRef, locks ...string) (tasks.Quick, *acliv1.Vm, int64, error) {
	q, err := st.Begin(ctx, "vm", op, append([]*acliv1.EntityRef{state.VmRef(v)}, more...), append([]string{v.Uuid}, locks...)...)
	if err != nil {
		return nil, nil, 0, err
	}
	var cur *acliv1.Vm
	var rev int64
	db.View(func(tx *state.Tx) { cur, rev = tx.Vm(v.Uuid), tx.Rev(state.VmKey(v.Uuid)) })
	if cur == nil {
		q.Drop()
		return nil, nil, 0, apierr.NotFound("vm", v.Name, nil)
	}
	return q, cur, rev, nil
}
