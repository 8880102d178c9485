package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/auth"
	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/tasks"
)

// taskRec is a task in the manager's table (manager/tasks), guarded by
// Manager.mu.
type taskRec = tasks.Task

// outcome is what a task's work produced: the store writes that record it,
// applied together with the task's final state, and the in-memory update to
// run (under Manager.mu) once they are committed.
type outcome struct {
	writes []write
	apply  func(rev int64)
	// message is the task's closing line and the event text.
	message string
	// undo, when the writes are refused, removes what the work made
	// outside the store (copied volumes).
	undo func()
}

// work does a task's job. Quick work only builds the outcome; driver work
// calls the driver first. It runs without Manager.mu.
type work func(ctx context.Context, t *taskRec) (outcome, error)

// newTaskLocked registers a running task of op on refs that will hold
// locks (entity UUIDs and claims), noting the revisions of the records its
// request read. Nothing is taken yet: the task's start commit takes them
// (launch, startQuick), where the busy rule is checked.
func (m *Manager) newTaskLocked(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *taskRec {
	t := m.taskTab.Begin(op, refs, locks...)
	m.db.View(func(tx *state.Tx) { t.Seen = tx.Seen(locks...) })
	return t
}

// systemPrincipal starts the tasks no caller asked for (HA restarts,
// reconciliation).
const systemPrincipal = "clusterd"

// startedByLocked records on a task not yet persisted who starts it: the
// authenticated caller of ctx, else clusterd itself.
func (m *Manager) startedByLocked(ctx context.Context, t *taskRec) *acliv1.Task {
	who := auth.UserFromContext(ctx)
	if who == "" {
		who = systemPrincipal
	}
	m.principals.Store(t.PB.Uuid, who)
	pb := proto.Clone(t.PB).(*acliv1.Task)
	pb.Principal = who
	return t.Replace(pb)
}

// progress reports a running task's percent and current line.
func (m *Manager) progress(t *taskRec, percent int32, format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t.Update(func(pb *acliv1.Task) {
		pb.Percent = percent
		if format != "" {
			pb.ProgressMessage = fmt.Sprintf(format, args...)
		}
	})
}

// quick runs a task whose work touches only the model: its entity changes
// and its (already final) record are committed in one transaction. If the
// commit fails nothing changed, the task is forgotten and the RPC fails.
func (m *Manager) quick(ctx context.Context, t *taskRec, w work) (*acliv1.Task, error) {
	m.mu.Lock()
	m.startedByLocked(ctx, t)
	m.mu.Unlock()
	if err := m.startQuick(ctx, t, ""); err != nil {
		m.mu.Lock()
		m.forgetLocked(t)
		m.mu.Unlock()
		return nil, err
	}
	out, err := w(ctx, t)
	if err == nil {
		var pb *acliv1.Task
		pb, err = m.complete(ctx, t, out, nil)
		if err == nil {
			return pb, nil
		}
	}
	m.mu.Lock()
	m.forgetLocked(t)
	m.mu.Unlock()
	return nil, err
}

// launch persists a running task, returns it to the caller and does the
// work in the background.
func (m *Manager) launch(ctx context.Context, t *taskRec, w work) (*acliv1.Task, error) {
	m.mu.Lock()
	if m.closing {
		m.forgetLocked(t)
		m.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "clusterd is shutting down")
	}
	m.wg.Add(1)
	wctx, stop := context.WithCancelCause(m.ctx)
	if t.PB.Cancellable {
		t.Stop = stop
	}
	pb := m.startedByLocked(ctx, t)
	locks, seen := t.Locks, t.Seen
	m.mu.Unlock()
	m.beforeStart(pb)
	// Its entities are taken with its start, if its request's reads hold.
	rev, err := m.commitHolding(ctx, []write{{key: taskKey(pb.Uuid), msg: pb, rev: 0}}, func(tx *state.Tx) error {
		if err := tx.Unchanged(seen); err != nil {
			return err
		}
		tx.Take(pb.Uuid, locks...)
		return nil
	})
	if err != nil {
		m.mu.Lock()
		m.forgetLocked(t)
		m.mu.Unlock()
		m.wg.Done()
		stop(nil)
		return nil, m.startRefusal(t, "", err)
	}
	m.mu.Lock()
	t.Rev = rev
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		out, err := w(wctx, t)
		err = tasks.CancelledResult(wctx, err)
		stop(nil)
		if _, cerr := m.complete(m.ctx, t, out, err); cerr != nil {
			m.log.Error("recording task result", "task", pb.Uuid, "err", cerr)
		}
	}()
	return pb, nil
}

// beforeStart runs the tests' hook (startHook) on a task about to start.
func (m *Manager) beforeStart(pb *acliv1.Task) {
	if f := m.startHook.Load(); f != nil {
		(*f)(pb)
	}
}

// startQuick takes a quick task's entities, before its work, in a commit
// of their own (its end commits its records): its start.
func (m *Manager) startQuick(ctx context.Context, t *taskRec, kind string) error {
	m.mu.RLock()
	pb, locks, seen := t.PB, t.Locks, t.Seen
	m.mu.RUnlock()
	m.beforeStart(pb)
	_, err := m.db.Update(ctx, func(tx *state.Tx) error {
		if err := tx.Unchanged(seen); err != nil {
			return err
		}
		tx.Take(pb.Uuid, locks...)
		return nil
	})
	if err != nil {
		return m.startRefusal(t, kind, err)
	}
	return nil
}

// startRefusal is a request's answer when its task's start commit is
// refused because another task took one of its entities first, or a
// record the request read changed meanwhile: the answer of a request that
// finds the entity busy as it arrives (kind, "" for the word of the
// entity's kind), and no task.
func (m *Manager) startRefusal(t *taskRec, kind string, err error) error {
	id, holder, busy := state.Busy(err)
	changed := false
	if !busy {
		if id, changed = state.ChangedSince(err); !changed {
			return err
		}
	}
	ref := t.PB.Entities[0]
	for _, e := range t.PB.Entities {
		if e.Uuid == id {
			ref = e
		}
	}
	if kind == "" || ref != t.PB.Entities[0] {
		kind = tasks.Noun(ref.Kind)
	}
	if changed {
		return apierr.Changed(kind, ref.Name)
	}
	op := ""
	m.mu.RLock()
	if h := m.taskTab.Get(holder); h != nil {
		op = h.PB.Operation.String()
	}
	m.mu.RUnlock()
	return apierr.Busy(kind, ref.Name, holder, op)
}

// complete records a task's end. On success the outcome's writes and the
// final task are one transaction. A failure is recorded on the task (when
// it was persisted before). Locks and reservations are released either way.
func (m *Manager) complete(ctx context.Context, t *taskRec, out outcome, werr error) (*acliv1.Task, error) {
	m.mu.RLock()
	cur, rev, locks := t.PB, t.Rev, t.Locks
	m.mu.RUnlock()
	// Its holds are let go once its end is durable.
	letGo := func(tx *state.Tx) error { tx.LetGo(cur.Uuid, locks...); return nil }
	if werr == nil {
		final := tasks.Succeeded(cur, out.message)
		// Commit even if ctx was cancelled meanwhile: the work is done. The
		// rules (container capacity among them) are checked at this commit.
		newRev, err := m.commitHolding(context.WithoutCancel(ctx), append(out.writes, write{key: taskKey(cur.Uuid), msg: final, rev: rev}), letGo)
		if err == nil {
			m.mu.Lock()
			if out.apply != nil {
				out.apply(newRev)
			}
			t.Rev = newRev
			pb := t.Replace(final)
			// Published before watchers can act on the final state, so a
			// client that saw the task end finds its event.
			m.publishTask(pb, out.message)
			m.endLocked(t)
			m.mu.Unlock()
			return pb, nil
		}
		if out.undo != nil {
			out.undo()
		}
		if rev == 0 {
			return nil, err // never persisted: the caller forgets it
		}
		werr = fmt.Errorf("could not record the result: %w", err)
	}
	if rev == 0 {
		return nil, werr
	}
	if m.ctx.Err() != nil && errors.Is(werr, context.Canceled) {
		werr = errors.New("clusterd stopped while the task was running; retry it")
	}
	aborted := errors.As(werr, new(*tasks.Cancelled))
	m.mu.RLock()
	final := proto.Clone(t.PB).(*acliv1.Task)
	m.mu.RUnlock()
	tasks.Fail(final, werr, aborted)
	final.Revision++
	// The task holds its entities, and shows running, until its end is
	// committed: a task accepted on them meanwhile could be committed
	// first, and a manager dying in between would leave both running in
	// the store, ended together by the next leader as if they had
	// overlapped.
	newRev, err := m.commitHolding(context.WithoutCancel(ctx), []write{{key: taskKey(final.Uuid), msg: final, rev: rev}}, letGo)
	m.mu.Lock()
	if err == nil {
		t.Rev = newRev
	}
	pb := t.Replace(final)
	m.publishTask(pb, "")
	m.endLocked(t)
	m.mu.Unlock()
	return pb, err
}

// endLocked releases a finished task's locks and reservations and prunes
// old tasks.
func (m *Manager) endLocked(t *taskRec) {
	m.db.LetGoNow(t.PB.Uuid, t.Locks...) // its end's commit let them go, unless it failed
	now := time.Now()
	for _, id := range t.Locks {
		m.settled.Settle(id, now)
	}
	t.Locks = nil
	t.Stop = nil
	if t.Release != nil {
		t.Release()
		t.Release = nil
	}
	m.taskTab.Ended()
	m.pruneLocked()
}

// forgetLocked drops a task that was never persisted.
func (m *Manager) forgetLocked(t *taskRec) {
	for _, id := range t.Locks {
		m.releaseLocked(t, id)
	}
	if t.Release != nil {
		t.Release()
		t.Release = nil
	}
	m.taskTab.Forget(t)
	m.principals.Delete(t.PB.Uuid)
}

// pruneLocked drops the oldest finished tasks beyond the retention and
// deletes them from the store in the background.
func (m *Manager) pruneLocked() {
	ids := m.taskTab.Prune()
	if len(ids) == 0 {
		return
	}
	for _, id := range ids {
		m.principals.Delete(id)
	}
	// Tracked by m.wg so Close waits for it before closing the store. Adding
	// is safe here: it runs at load or from a task that m.wg still counts.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ops := make([]store.Op, len(ids))
		for i, id := range ids {
			ops[i] = store.DeleteOp(taskKey(id))
		}
		if _, err := m.st.Txn(context.Background(), nil, ops); err != nil && !errors.Is(err, store.ErrClosed) {
			m.log.Warn("pruning old tasks", "err", err)
		}
	}()
}

// recoverTasks ends the tasks a previous run left queued or running. Their
// entity changes were never committed (they are written with the final
// state), so the model is consistent as loaded.
func (m *Manager) recoverTasks(ctx context.Context) error {
	ended := m.taskTab.Interrupted(int32(codes.Aborted), func(pb *acliv1.Task) string {
		if maintenance.Resumable(pb) {
			return ""
		}
		return tasks.InterruptedError(pb)
	})
	if len(ended) == 0 {
		m.pruneLocked()
		return nil
	}
	ws := make([]write, len(ended))
	for i, t := range ended {
		ws[i] = write{key: taskKey(t.PB.Uuid), msg: t.PB, rev: t.Rev}
	}
	rev, err := m.commit(ctx, ws)
	if err != nil {
		return fmt.Errorf("ending interrupted tasks: %w", err)
	}
	for _, t := range ended {
		t.Rev = rev
		m.log.Warn("task interrupted by restart marked failed", "task", t.PB.Uuid, "op", t.PB.Operation.String())
	}
	m.pruneLocked()
	return nil
}

// publishTask emits the event for a finished task.
func (m *Manager) publishTask(pb *acliv1.Task, message string) {
	typ, severity, text := tasks.Event(pb, message)
	m.publish(typ, severity, pb.Uuid, pb.Entities, "%s", text)
}
