package tasks

import (
	"context"
	"slices"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// Begin is Starter's: a quick task op on refs holding locks (a
// state.Read key reads its entity), refused as busy when another task
// holds one (or reads one it is to hold), and started by its own commit.
func (e *Engine) Begin(ctx context.Context, kind string, op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) (Quick, error) {
	for _, l := range locks {
		holder := ""
		if id, ok := state.ReadOf(l); ok {
			l, holder = id, e.db.Holder(id) // readers share it
		} else if holder = e.db.Holder(l); holder == "" {
			if rs := e.db.Readers(l); len(rs) > 0 {
				holder = rs[0]
			}
		}
		if holder == "" {
			continue
		}
		name := refs[0].Name
		if i := slices.IndexFunc(refs, func(r *acliv1.EntityRef) bool { return r.Uuid == l }); i > 0 {
			kind, name = Noun(refs[i].Kind), refs[i].Name
		}
		opName := ""
		if h := e.Get(holder); h != nil {
			opName = h.PB().Operation.String()
		}
		return nil, apierr.Busy(kind, name, holder, opName)
	}
	t := e.Prepare(op, refs, locks...)
	e.StartedBy(ctx, t)
	if err := e.Start(ctx, t, kind); err != nil {
		e.Forget(t)
		return nil, err
	}
	return &quick{e: e, t: t}, nil
}

// quick is a task begun by Begin.
type quick struct {
	e *Engine
	t *Task
}

// Hold takes lock in a commit of its own, where the busy rule is checked
// as at a task's start.
func (q *quick) Hold(lock string) (string, bool) {
	_, err := q.e.db.Update(q.e.ctx, func(tx *state.Tx) error {
		tx.Take(q.t.PB().Uuid, lock)
		return nil
	})
	if _, holder, ok := state.Busy(err); ok {
		return holder, false
	}
	if err != nil {
		q.e.log.Error("taking a hold", "task", q.t.PB().Uuid, "hold", lock, "err", err)
		return "", false
	}
	q.t.AddLock(lock)
	return "", true
}

func (q *quick) Commit(ctx context.Context, ws []state.Write, message string) (*acliv1.Task, error) {
	pb, err := q.e.Complete(ctx, q.t, Outcome{Writes: ws, Message: message}, nil)
	if err != nil {
		q.e.Forget(q.t)
	}
	return pb, err
}

func (q *quick) Drop() { q.e.Forget(q.t) }
