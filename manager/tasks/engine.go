package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/auth"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store"
)

// Prefix is where tasks are stored: Prefix + UUID.
const Prefix = "/tasks/"

// Key is the store key of task id.
func Key(id string) string { return Prefix + id }

// SystemPrincipal starts the tasks no caller asked for (HA restarts,
// reconciliation).
const SystemPrincipal = "clusterd"

// Outcome is what a task's work produced: the writes that record it,
// committed with the task's final state, and what to run once they are.
type Outcome struct {
	Writes []state.Write
	// Apply runs once the writes are committed, with their revision.
	Apply func(rev int64)
	// Message is the task's closing line and the event text.
	Message string
	// Undo, when the writes are refused, removes what the work made
	// outside the store (copied volumes).
	Undo func()
}

// Work does a task's job. Quick work only builds the outcome; driver work
// calls the driver first.
type Work func(ctx context.Context, t *Task) (Outcome, error)

// Owner is what the engine needs of the manager that runs it.
type Owner interface {
	// Commit applies writes through the one transaction path, with holds
	// (which may be nil) taking or letting go of a task's entities in the
	// same transaction; an error from holds refuses the commit.
	Commit(ctx context.Context, ws []state.Write, holds func(tx *state.Tx) error) (int64, error)
	// Publish sends an event.
	Publish(ev *acliv1.Event)
	// LetGo follows a task letting go of ids (the owner's earlier reports
	// of them are stale) and runs release, the task's reservations, under
	// the owner's lock. release may be nil.
	LetGo(ids []string, release func())
}

// Config assembles an Engine.
type Config struct {
	DB *state.DB
	// Store is written directly only to delete pruned tasks.
	Store store.Store
	Owner Owner
	Log   *slog.Logger
	// Retention is how many finished tasks are kept.
	Retention int
	// Ctx ends with the owner: the work of running tasks is cancelled.
	Ctx context.Context
}

// Engine runs tasks: it owns the task table under a lock of its own,
// begins a task only in its start commit (which takes its entities if the
// records its request read are unchanged), runs launched work, commits a
// task's end with the work's writes, ends the tasks a restart left
// running and prunes old ones. A task's own snapshot needs no lock
// (Task.PB()), so its holder reports on it freely.
type Engine struct {
	db    *state.DB
	st    store.Store
	owner Owner
	log   *slog.Logger
	ctx   context.Context

	mu      sync.RWMutex // guards tab, closing and each task's Rev
	tab     *Table
	closing bool
	wg      sync.WaitGroup // launched work and pruning

	// principals maps a task UUID to who started it, so events name them.
	principals sync.Map
	startHook  atomic.Pointer[func(*acliv1.Task)]
}

// NewEngine is an engine with an empty table (Load fills it).
func NewEngine(cfg Config) *Engine {
	if cfg.Retention <= 0 {
		cfg.Retention = 10000
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Engine{db: cfg.DB, st: cfg.Store, owner: cfg.Owner, log: cfg.Log, ctx: cfg.Ctx, tab: NewTable(cfg.Retention)}
}

// Load reads the stored tasks.
func (e *Engine) Load(ctx context.Context) error {
	kvs, err := e.st.List(ctx, Prefix)
	if err != nil {
		return fmt.Errorf("loading %s: %w", Prefix, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, kv := range kvs {
		pb := &acliv1.Task{}
		if err := proto.Unmarshal(kv.Value, pb); err != nil {
			return fmt.Errorf("loading %s: %w", kv.Key, err)
		}
		e.tab.Load(pb, kv.ModRev)
	}
	e.tab.SortLoaded()
	return nil
}

// BeforeStart sets the tests' hook, run on each task after its request is
// checked, before its start commit.
func (e *Engine) BeforeStart(fn func(*acliv1.Task)) { e.startHook.Store(&fn) }

// Prepare registers a running task of op on refs that will hold locks
// (entity UUIDs, claims, state.Read keys), noting the revisions of the
// records its request read. Nothing is taken yet: its start commit takes
// them (Launch, Start), where the busy rule is checked.
func (e *Engine) Prepare(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *Task {
	e.mu.Lock()
	t := e.tab.Begin(op, refs, locks...)
	e.mu.Unlock()
	e.db.View(func(tx *state.Tx) { t.Seen = tx.Seen(locks...) })
	return t
}

// StartedBy records on a task not yet persisted who starts it: the
// authenticated caller of ctx, else clusterd itself.
func (e *Engine) StartedBy(ctx context.Context, t *Task) *acliv1.Task {
	who := auth.UserFromContext(ctx)
	if who == "" {
		who = SystemPrincipal
	}
	e.principals.Store(t.PB().Uuid, who)
	return t.amend(func(pb *acliv1.Task) { pb.Principal = who })
}

// Principal is who started task id, if it is known.
func (e *Engine) Principal(id string) (string, bool) {
	who, ok := e.principals.Load(id)
	if !ok {
		return "", false
	}
	return who.(string), true
}

// Progress reports a running task's percent and current line.
func (e *Engine) Progress(t *Task, percent int32, format string, args ...any) {
	t.Update(func(pb *acliv1.Task) {
		pb.Percent = percent
		if format != "" {
			pb.ProgressMessage = fmt.Sprintf(format, args...)
		}
	})
}

// Message appends a line to a running task and makes it the progress line
// (percent < 0 keeps the percent).
func (e *Engine) Message(t *Task, percent int32, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	t.Update(func(pb *acliv1.Task) {
		if percent >= 0 {
			pb.Percent = percent
		}
		pb.ProgressMessage = line
		pb.Messages = append(pb.Messages, line)
	})
}

// PastReturn marks the point after which a task can no longer stop
// safely (a migration that has switched over).
func (e *Engine) PastReturn(t *Task) { t.PastReturn() }

// Get is a task by UUID (lower case), nil if none.
func (e *Engine) Get(id string) *Task {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.tab.Get(id)
}

// Lookup is a task by UUID in any case; a not-found error names id.
func (e *Engine) Lookup(id string) (*Task, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.tab.Lookup(id)
}

// Newest returns up to limit snapshots matching keep, newest first.
func (e *Engine) Newest(limit int, keep func(*acliv1.Task) bool) []*acliv1.Task {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.tab.Newest(limit, keep)
}

// Holder is the task holding entity id (state.DB's holds), nil if none.
func (e *Engine) Holder(id string) *Task {
	if h := e.db.Holder(id); h != "" {
		return e.Get(h)
	}
	return nil
}

// Quick runs a task whose work touches only records: its start commit
// takes its entities, then the work's writes and its (already final)
// record are committed in one transaction. If either commit is refused
// nothing changed, the task is forgotten and the request fails.
func (e *Engine) Quick(ctx context.Context, t *Task, w Work) (*acliv1.Task, error) {
	e.StartedBy(ctx, t)
	if err := e.Start(ctx, t, ""); err != nil {
		e.Forget(t)
		return nil, err
	}
	out, err := w(ctx, t)
	if err == nil {
		var pb *acliv1.Task
		if pb, err = e.Complete(ctx, t, out, nil); err == nil {
			return pb, nil
		}
	}
	e.Forget(t)
	return nil, err
}

// Launch persists a running task with its start commit, returns it to the
// caller and does the work in the background; the task ends kFailed if
// the work fails, kAborted if it was cancelled.
func (e *Engine) Launch(ctx context.Context, t *Task, w Work) (*acliv1.Task, error) {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		e.Forget(t)
		return nil, status.Error(codes.Unavailable, "clusterd is shutting down")
	}
	e.wg.Add(1)
	e.mu.Unlock()
	wctx, stop := context.WithCancelCause(e.ctx)
	t.SetStop(stop)
	pb := e.StartedBy(ctx, t)
	rev, err := e.start(ctx, t, "", []state.Write{{Key: Key(pb.Uuid), Msg: pb, Rev: 0}})
	if err != nil {
		e.Forget(t)
		e.wg.Done()
		stop(nil)
		return nil, err
	}
	e.mu.Lock()
	t.Rev = rev
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		e.run(wctx, t, w)
		stop(nil)
	}()
	return pb, nil
}

// Resume runs the work of a persisted task a previous run left running
// (its entities taken again by the caller) and records its end. It is
// false, and nothing runs, once the engine is closing.
func (e *Engine) Resume(t *Task, w Work) bool {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return false
	}
	e.wg.Add(1)
	e.mu.Unlock()
	wctx, stop := context.WithCancelCause(e.ctx)
	t.SetStop(stop)
	go func() {
		defer e.wg.Done()
		e.run(wctx, t, w)
		stop(nil)
	}()
	return true
}

func (e *Engine) run(wctx context.Context, t *Task, w Work) {
	out, err := w(wctx, t)
	err = CancelledResult(wctx, err)
	if _, cerr := e.Complete(e.ctx, t, out, err); cerr != nil {
		e.log.Error("recording task result", "task", t.PB().Uuid, "err", cerr)
	}
}

// Start takes a quick task's entities, before its work, in a commit of
// their own (its end commits its records). A refusal answers as a request
// that finds the entity busy (Refusal): kind, "" for the word of the
// entity's kind, names it.
func (e *Engine) Start(ctx context.Context, t *Task, kind string) error {
	_, err := e.start(ctx, t, kind, nil)
	return err
}

func (e *Engine) start(ctx context.Context, t *Task, kind string, ws []state.Write) (int64, error) {
	pb, locks, seen := t.PB(), t.HeldLocks(), t.Seen
	if f := e.startHook.Load(); f != nil {
		(*f)(pb)
	}
	rev, err := e.owner.Commit(ctx, ws, func(tx *state.Tx) error {
		if err := tx.Unchanged(seen); err != nil {
			return err
		}
		tx.Take(pb.Uuid, locks...)
		return nil
	})
	if err != nil {
		return 0, e.Refusal(t, kind, err)
	}
	return rev, nil
}

// Refusal is a request's answer when its task's start commit is refused
// because another task took one of its entities first, or a record the
// request read changed meanwhile: the answer of a request that finds the
// entity busy as it arrives (kind, "" for the word of the entity's kind),
// and no task. Other errors are returned as they are.
func (e *Engine) Refusal(t *Task, kind string, err error) error {
	id, holder, busy := state.Busy(err)
	changed := false
	if !busy {
		if id, changed = state.ChangedSince(err); !changed {
			return err
		}
	}
	pb := t.PB()
	ref := pb.Entities[0]
	for _, r := range pb.Entities {
		if r.Uuid == id {
			ref = r
		}
	}
	if kind == "" || ref != pb.Entities[0] {
		kind = Noun(ref.Kind)
	}
	if changed {
		return apierr.Changed(kind, ref.Name)
	}
	op := ""
	if h := e.Get(holder); h != nil {
		op = h.PB().Operation.String()
	}
	return apierr.Busy(kind, ref.Name, holder, op)
}

// Complete records a task's end. On success the outcome's writes and the
// final task are one transaction. A failure is recorded on the task (when
// it was persisted before). Its holds are let go once its end is durable,
// and its reservations released, before watchers see it end. A task never
// persisted whose end is refused is left for its caller to Forget.
func (e *Engine) Complete(ctx context.Context, t *Task, out Outcome, werr error) (*acliv1.Task, error) {
	e.mu.RLock()
	rev := t.Rev
	e.mu.RUnlock()
	cur, locks := t.PB(), t.HeldLocks()
	letGo := func(tx *state.Tx) error { tx.LetGo(cur.Uuid, locks...); return nil }
	if werr == nil {
		final := Succeeded(cur, out.Message)
		// Commit even if ctx was cancelled meanwhile: the work is done. The
		// rules (container capacity among them) are checked at this commit.
		ws := append(out.Writes, state.Write{Key: Key(cur.Uuid), Msg: final, Rev: rev})
		newRev, err := e.owner.Commit(context.WithoutCancel(ctx), ws, letGo)
		if err == nil {
			if out.Apply != nil {
				out.Apply(newRev)
			}
			// Published before watchers can see the final state, so a
			// client that saw the task end finds its event.
			e.publish(final, out.Message)
			return e.end(t, final, newRev), nil
		}
		if out.Undo != nil {
			out.Undo()
		}
		if rev == 0 {
			return nil, err // never persisted: the caller forgets it
		}
		werr = fmt.Errorf("could not record the result: %w", err)
	}
	if rev == 0 {
		return nil, werr
	}
	if e.ctx.Err() != nil && errors.Is(werr, context.Canceled) {
		werr = errors.New("clusterd stopped while the task was running; retry it")
	}
	aborted := errors.As(werr, new(*Cancelled))
	final := proto.Clone(t.PB()).(*acliv1.Task)
	Fail(final, werr, aborted)
	final.Revision++
	// The task holds its entities, and shows running, until its end is
	// committed: a task accepted on them meanwhile could be committed
	// first, and a manager dying in between would leave both running in
	// the store, ended together by the next leader as if they had
	// overlapped.
	newRev, err := e.owner.Commit(context.WithoutCancel(ctx), []state.Write{{Key: Key(final.Uuid), Msg: final, Rev: rev}}, letGo)
	if err != nil {
		newRev = rev
	}
	e.publish(final, "")
	return e.end(t, final, newRev), err
}

// end lets go of a finished task's holds (its end's commit let them go,
// unless it failed) and reservations, then installs its final snapshot
// and prunes old tasks.
func (e *Engine) end(t *Task, final *acliv1.Task, rev int64) *acliv1.Task {
	locks, release := t.TakeLocks()
	e.db.LetGoNow(final.Uuid, locks...)
	e.owner.LetGo(locks, release)
	e.mu.Lock()
	defer e.mu.Unlock()
	t.Rev = rev
	pb := t.Replace(final)
	e.tab.Ended()
	e.pruneLocked()
	return pb
}

// Forget drops a task that was never persisted, letting go of what its
// start took.
func (e *Engine) Forget(t *Task) {
	held, release := e.Drop(t)
	e.owner.LetGo(held, release)
}

// Drop forgets a task never persisted, letting go of the holds its start
// took, and returns them with its reservations for a caller that holds
// the owner's lock to follow (Owner.LetGo).
func (e *Engine) Drop(t *Task) (held []string, release func()) {
	id := t.PB().Uuid
	locks, release := t.TakeLocks()
	for _, l := range locks {
		if r, ok := state.ReadOf(l); (ok && slices.Contains(e.db.Readers(r), id)) || e.db.Holder(l) == id {
			held = append(held, l)
		}
	}
	e.db.LetGoNow(id, held...)
	e.mu.Lock()
	e.tab.Forget(t)
	e.mu.Unlock()
	e.principals.Delete(id)
	return held, release
}

// pruneLocked drops the oldest finished tasks beyond the retention and
// deletes them from the store in the background.
func (e *Engine) pruneLocked() {
	ids := e.tab.Prune()
	if len(ids) == 0 {
		return
	}
	for _, id := range ids {
		e.principals.Delete(id)
	}
	// Close waits for it before the store is closed. Adding is safe here:
	// it runs at load or from a task that e.wg still counts.
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ops := make([]store.Op, len(ids))
		for i, id := range ids {
			ops[i] = store.DeleteOp(Key(id))
		}
		if _, err := e.st.Txn(context.Background(), nil, ops); err != nil && !errors.Is(err, store.ErrClosed) {
			e.log.Warn("pruning old tasks", "err", err)
		}
	}()
}

// Recover ends the tasks a previous run left queued or running with the
// error why gives them (a task it gives "" stays running: its owner
// resumes it). Their entity changes were never committed (they are
// written with the final state), so the records are consistent as loaded.
func (e *Engine) Recover(ctx context.Context, why func(*acliv1.Task) string) error {
	e.mu.Lock()
	ended := e.tab.Interrupted(int32(codes.Aborted), why)
	if len(ended) == 0 {
		e.pruneLocked()
		e.mu.Unlock()
		return nil
	}
	ws := make([]state.Write, len(ended))
	for i, t := range ended {
		ws[i] = state.Write{Key: Key(t.PB().Uuid), Msg: t.PB(), Rev: t.Rev}
	}
	e.mu.Unlock()
	rev, err := e.owner.Commit(ctx, ws, nil)
	if err != nil {
		return fmt.Errorf("ending interrupted tasks: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range ended {
		t.Rev = rev
		e.log.Warn("task interrupted by restart marked failed", "task", t.PB().Uuid, "op", t.PB().Operation.String())
	}
	e.pruneLocked()
	return nil
}

// Close refuses new launches; Wait then waits for the running ones.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closing = true
}

// Wait waits up to timeout for launched work (and pruning) to end; it
// reports whether it did.
func (e *Engine) Wait(timeout time.Duration) bool {
	ended := make(chan struct{})
	go func() { e.wg.Wait(); close(ended) }()
	select {
	case <-ended:
		return true
	case <-time.After(timeout):
		return false
	}
}

// publish emits the event of a finished task.
func (e *Engine) publish(pb *acliv1.Task, message string) {
	typ, severity, text := Event(pb, message)
	ev := &acliv1.Event{Type: typ, Severity: severity, TaskUuid: pb.Uuid, Entities: pb.Entities, Message: text}
	if who, ok := e.Principal(pb.Uuid); ok {
		ev.Principal = who
	}
	e.owner.Publish(ev)
}
