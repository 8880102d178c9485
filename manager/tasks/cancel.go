package tasks

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/auth"
)

// Cancelled is how a task stopped by Cancel ends: kAborted, with the
// operator's reason and what the work said when it stopped.
type Cancelled struct {
	Reason string
	Err    error // the work's own error, if it returned one
}

func (c *Cancelled) Error() string {
	if c.Err == nil {
		return c.Reason
	}
	return c.Reason + ": " + ErrorText(c.Err)
}

func (c *Cancelled) GRPCStatus() *status.Status {
	return status.New(codes.Canceled, c.Error())
}

// CancelledResult turns the error of work stopped by Cancel (wctx's cause)
// into a *Cancelled. Work that finished anyway (err == nil) stays a success.
func CancelledResult(wctx context.Context, err error) error {
	var tc *Cancelled
	if err == nil || !errors.As(context.Cause(wctx), &tc) {
		return err
	}
	return &Cancelled{Reason: tc.Reason, Err: err}
}

// Cancel stops a task that can still end safely: its work sees its context
// cancelled with a *Cancelled cause, undoes what it did, and the task ends
// kAborted. who (may be empty) and reason (the operator's, may be empty)
// make the line it records.
func (t *Task) Cancel(who, reason string) (*acliv1.Task, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pb := t.snap.Load().pb
	subject := "task:" + pb.Uuid
	switch {
	case Finished(pb.Status):
		return nil, apierr.Precondition("TASK_STATE", subject, "task %s (%s) has already ended (%s)", pb.Uuid, pb.Operation, pb.Status)
	case t.stop == nil && pb.Cancellable:
		return nil, apierr.Precondition("TASK_STATE", subject, "task %s (%s) is already being cancelled", pb.Uuid, pb.Operation)
	case t.stop == nil:
		return nil, apierr.Precondition("NOT_CANCELLABLE", subject,
			"task %s (%s) cannot stop safely now (only migrations before switch-over and image imports can); wait for it with task.wait %s", pb.Uuid, pb.Operation, pb.Uuid)
	}
	line := "cancelled"
	if who != "" {
		line += " by " + who
	}
	if reason != "" {
		line += " (" + reason + ")"
	}
	t.stop(&Cancelled{Reason: line})
	t.stop = nil
	return t.updateLocked(func(pb *acliv1.Task) {
		pb.ProgressMessage = "stopping: " + line
		pb.Messages = append(pb.Messages, line)
	}), nil
}

// PastReturn marks the point after which the task can no longer stop
// safely (a migration that has switched over): Cancel refuses it from then
// on.
func (t *Task) PastReturn() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stop == nil {
		return
	}
	t.stop = nil
	t.updateLocked(func(pb *acliv1.Task) { pb.Cancellable = false })
}

// CancelTask serves task.cancel: it stops the task req names if it can
// still end safely (Task.Cancel); the caller of ctx is named in the line
// it records.
func (e *Engine) CancelTask(ctx context.Context, req *acliv1.CancelTaskRequest) (*acliv1.Task, error) {
	t, err := e.Lookup(req.Uuid)
	if err != nil {
		return nil, err
	}
	pb, err := t.Cancel(auth.UserFromContext(ctx), req.Reason)
	if err != nil {
		return nil, err
	}
	e.log.Info("task cancelled", "task", pb.Uuid, "op", pb.Operation.String(), "reason", pb.ProgressMessage)
	return pb, nil
}
