// Package tasks is the task engine: every mutation of the manager is a
// task. The Engine begins a task in its start commit, runs its work and
// commits its end with the work's writes; the Table is where tasks live in
// memory — created running, changed by replacing an immutable snapshot
// (which wakes its watchers), ended, pruned beyond a retention, and ended
// kFailed after a restart found them running. It also says what a failure
// records (code, text, typed violations). The Table is guarded by its
// Engine's lock.
package tasks

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// Task is a task in memory. Its snapshot (PB) is immutable and replaced
// on each change, which closes the channel Changed returned: readers need
// no lock, and changes are serialised by the task's own lock, so whoever
// holds a task may report on it (Update) while others read it.
type Task struct {
	snap atomic.Pointer[snapshot]
	mu   sync.Mutex // serialises changes of snap; guards stop and Locks

	Rev   int64    // store mod revision; 0 until persisted (its engine's)
	Locks []string // busy entity UUIDs; AddLock adds one once it runs
	// Seen are the revisions of the records of Locks its request read:
	// its start commit takes Locks only if they are unchanged.
	Seen state.Seen
	// Release frees reservations; set before the task starts, run under
	// its owner's lock at the end.
	Release func()
	// stop cancels the work while the task can end safely.
	stop context.CancelCauseFunc
}

type snapshot struct {
	pb      *acliv1.Task
	changed chan struct{}
}

// New is a task with snapshot pb holding locks, outside any table (for
// the fakes of feature packages' tests).
func New(pb *acliv1.Task, locks ...string) *Task {
	t := &Task{Locks: locks}
	t.snap.Store(&snapshot{pb: pb, changed: make(chan struct{})})
	return t
}

// PB is the task's current snapshot; never modify it.
func (t *Task) PB() *acliv1.Task { return t.snap.Load().pb }

// Changed is closed on the task's next change.
func (t *Task) Changed() <-chan struct{} { return t.snap.Load().changed }

// Watch is the task's snapshot and the channel closed on its next change,
// read together.
func (t *Task) Watch() (*acliv1.Task, <-chan struct{}) {
	s := t.snap.Load()
	return s.pb, s.changed
}

// Update replaces the snapshot by fn's edit of a copy, with the next
// revision, and wakes the watchers.
func (t *Task) Update(fn func(*acliv1.Task)) *acliv1.Task {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.updateLocked(fn)
}

func (t *Task) updateLocked(fn func(*acliv1.Task)) *acliv1.Task {
	cur := t.snap.Load().pb
	pb := proto.Clone(cur).(*acliv1.Task)
	fn(pb)
	pb.Revision = cur.Revision + 1
	return t.replaceLocked(pb)
}

// Replace installs pb as the snapshot and wakes the watchers.
func (t *Task) Replace(pb *acliv1.Task) *acliv1.Task {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.replaceLocked(pb)
}

func (t *Task) replaceLocked(pb *acliv1.Task) *acliv1.Task {
	old := t.snap.Swap(&snapshot{pb: pb, changed: make(chan struct{})})
	close(old.changed)
	return pb
}

// wake tells the watchers to look again (the task is gone).
func (t *Task) wake() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.replaceLocked(t.snap.Load().pb)
}

// SetCancellable marks a task not yet started as one task.cancel may stop.
func (t *Task) SetCancellable(on bool) {
	t.amend(func(pb *acliv1.Task) { pb.Cancellable = on })
}

// amend edits a task not yet started; its revision stays, as nobody
// has followed it yet.
func (t *Task) amend(fn func(*acliv1.Task)) *acliv1.Task {
	t.mu.Lock()
	defer t.mu.Unlock()
	pb := proto.Clone(t.snap.Load().pb).(*acliv1.Task)
	fn(pb)
	return t.replaceLocked(pb)
}

// SetStop gives a cancellable task the function that stops its work.
func (t *Task) SetStop(stop context.CancelCauseFunc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.snap.Load().pb.Cancellable {
		t.stop = stop
	}
}

// AddLock adds locks to a task, let go with its others.
func (t *Task) AddLock(ids ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.Locks = append(t.Locks, ids...)
}

// TakeLocks reads the task's locks and clears them, with its stop and
// release: the task no longer holds anything.
func (t *Task) TakeLocks() (locks []string, release func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	locks, release = t.Locks, t.Release
	t.Locks, t.stop, t.Release = nil, nil, nil
	return locks, release
}

// HeldLocks is a copy of the task's locks.
func (t *Task) HeldLocks() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.Locks)
}

// Finished reports whether a status is final.
func Finished(s acliv1.TaskStatus) bool {
	return s == acliv1.TaskStatus_kSucceeded || s == acliv1.TaskStatus_kFailed || s == acliv1.TaskStatus_kAborted
}

// Table holds the tasks in creation order.
type Table struct {
	byID      map[string]*Task
	list      []*Task
	completed int
	retention int
	seq       int64 // highest sequence_id given or loaded
}

// NewTable keeps retention finished tasks (pruned in batches of a tenth).
func NewTable(retention int) *Table {
	return &Table{byID: map[string]*Task{}, retention: retention}
}

// Begin registers a running task of op on refs that will hold locks
// (entity UUIDs and claims); its owner takes them with its start.
func (tb *Table) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *Task {
	now := timestamppb.Now()
	t := New(&acliv1.Task{
		Uuid: uuid.NewString(), Operation: op, Entities: refs, SequenceId: tb.seq + 1,
		Status: acliv1.TaskStatus_kRunning, CreateTime: now, StartTime: now, Revision: 1,
	})
	t.Locks = locks
	tb.add(t)
	return t
}

// Load registers a task read from the store; SortLoaded orders them once
// all are read.
func (tb *Table) Load(pb *acliv1.Task, rev int64) {
	t := New(pb)
	t.Rev = rev
	tb.add(t)
}

// SortLoaded orders the tasks by creation time.
func (tb *Table) SortLoaded() {
	slices.SortStableFunc(tb.list, func(a, b *Task) int {
		return a.PB().CreateTime.AsTime().Compare(b.PB().CreateTime.AsTime())
	})
}

func (tb *Table) add(t *Task) {
	pb := t.PB()
	tb.byID[pb.Uuid] = t
	tb.list = append(tb.list, t)
	tb.seq = max(tb.seq, pb.SequenceId)
	if Finished(pb.Status) {
		tb.completed++
	}
}

// Get is a task by UUID (lower case), nil if none.
func (tb *Table) Get(id string) *Task { return tb.byID[id] }

// Lookup is a task by UUID in any case; a not-found error names id.
func (tb *Table) Lookup(id string) (*Task, error) {
	if t := tb.byID[strings.ToLower(id)]; t != nil {
		return t, nil
	}
	return nil, apierr.NotFound("task", id, nil)
}

// Newest returns up to limit snapshots matching keep, newest first.
func (tb *Table) Newest(limit int, keep func(*acliv1.Task) bool) []*acliv1.Task {
	var out []*acliv1.Task
	for i := len(tb.list) - 1; i >= 0 && len(out) < limit; i-- {
		if pb := tb.list[i].PB(); keep(pb) {
			out = append(out, pb)
		}
	}
	return out
}

// Ended counts a task that reached a final status.
func (tb *Table) Ended() { tb.completed++ }

// Forget drops a task that was never persisted and wakes its watchers so
// they notice it is gone.
func (tb *Table) Forget(t *Task) {
	delete(tb.byID, t.PB().Uuid)
	if i := slices.Index(tb.list, t); i >= 0 {
		tb.list = slices.Delete(tb.list, i, i+1)
	}
	t.wake()
}

// Prune drops the oldest finished tasks beyond the retention, in batches
// (a tenth of the retention) so the cost is amortised, and returns the
// UUIDs dropped, for the owner to delete from the store.
func (tb *Table) Prune() []string {
	if tb.completed <= tb.retention+tb.retention/10 {
		return nil
	}
	excess := tb.completed - tb.retention
	var ids []string
	kept := tb.list[:0]
	for _, t := range tb.list {
		if pb := t.PB(); excess > 0 && Finished(pb.Status) {
			excess--
			tb.completed--
			delete(tb.byID, pb.Uuid)
			ids = append(ids, pb.Uuid)
			continue
		}
		kept = append(kept, t)
	}
	clear(tb.list[len(kept):])
	tb.list = kept
	return ids
}

// Interrupted ends, in memory, the tasks a previous run left running: each
// becomes kFailed with code and the text why gives it; a task why gives no
// text for stays running (its owner resumes it). The owner commits the
// returned tasks (their Rev is still the stored one).
func (tb *Table) Interrupted(code int32, why func(*acliv1.Task) string) []*Task {
	now := timestamppb.Now()
	var ended []*Task
	for _, t := range tb.list {
		if Finished(t.PB().Status) {
			continue
		}
		reason := why(t.PB())
		if reason == "" {
			continue
		}
		pb := proto.Clone(t.PB()).(*acliv1.Task)
		pb.Status, pb.CompleteTime, pb.ProgressMessage = acliv1.TaskStatus_kFailed, now, ""
		pb.Error = reason
		pb.ErrorCode = code
		pb.Messages = append(pb.Messages, "failed: "+pb.Error)
		pb.Revision++
		t.Replace(pb)
		ended = append(ended, t)
		tb.completed++
	}
	return ended
}

// Succeeded is the final snapshot of a task whose work is done, closing
// with message.
func Succeeded(cur *acliv1.Task, message string) *acliv1.Task {
	final := proto.Clone(cur).(*acliv1.Task)
	final.Status, final.Percent, final.CompleteTime, final.ProgressMessage = acliv1.TaskStatus_kSucceeded, 100, timestamppb.Now(), ""
	final.Cancellable = false
	if message != "" {
		final.Messages = append(final.Messages, message)
	}
	final.Revision = cur.Revision + 1
	return final
}

// Fail records err on a task snapshot being updated (Task.Update): kFailed,
// or kAborted when the work was stopped on request, with the error's code,
// text and typed violations.
func Fail(pb *acliv1.Task, err error, aborted bool) {
	st, verb := acliv1.TaskStatus_kFailed, "failed: "
	if aborted {
		st, verb = acliv1.TaskStatus_kAborted, "aborted: "
	}
	pb.Status, pb.CompleteTime, pb.ProgressMessage, pb.Cancellable = st, timestamppb.Now(), "", false
	pb.Error = ErrorText(err)
	pb.ErrorCode = int32(ErrorCode(err))
	pb.Violations = Violations(err)
	if len(pb.Violations) > 0 {
		pb.ErrorSummary = apierr.Summary(err)
	}
	pb.Messages = append(pb.Messages, verb+pb.Error)
}

// ErrAbandoned ends a watch of a task that was forgotten after it was
// first sent (its start was never recorded).
var ErrAbandoned = errors.New("the task was abandoned before it was recorded")

// Follow sends a task now and on every change until it ends; the last
// message is the final state. A slow watcher may skip intermediate states,
// never the last. read returns the task's snapshot and the channel closed
// on its next change (reading them under the owner's lock). The watch ends
// early with ctx, returning its cause.
func Follow(ctx context.Context, read func() (*acliv1.Task, <-chan struct{}, error), send func(*acliv1.Task) error) error {
	var sent uint64
	for {
		pb, changed, err := read()
		if err != nil {
			if sent > 0 {
				return ErrAbandoned
			}
			return err
		}
		if pb.Revision != sent {
			if err := send(pb); err != nil {
				return err
			}
			sent = pb.Revision
		}
		if Finished(pb.Status) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
