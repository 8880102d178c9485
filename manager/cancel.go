package manager

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/auth"
	"github.com/acli-dev/acli/manager/tasks"
)

// taskCancelled is how a task stopped by CancelTask ends: kAborted, with
// the operator's reason and what the work said when it stopped.
type taskCancelled struct {
	reason string
	err    error // the work's own error, if it returned one
}

func (c *taskCancelled) Error() string {
	if c.err == nil {
		return c.reason
	}
	return c.reason + ": " + tasks.ErrorText(c.err)
}

func (c *taskCancelled) GRPCStatus() *status.Status {
	return status.New(codes.Canceled, c.Error())
}

// cancelled turns the error of work stopped by CancelTask into a
// *taskCancelled. Work that finished anyway (err == nil) stays a success.
func cancelled(wctx context.Context, err error) error {
	var tc *taskCancelled
	if err == nil || !errors.As(context.Cause(wctx), &tc) {
		return err
	}
	return &taskCancelled{reason: tc.reason, err: err}
}

// pastReturn marks the point after which a task can no longer stop safely
// (a migration that has switched over): CancelTask refuses it from then on.
func (m *Manager) pastReturn(t *taskRec) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.Stop == nil {
		return
	}
	t.Stop = nil
	t.Update(func(pb *acliv1.Task) { pb.Cancellable = false })
}

// CancelTask stops a task that can still end safely. The task's work sees
// its context cancelled, undoes what it did and the task ends kAborted.
func (s taskService) CancelTask(ctx context.Context, req *acliv1.CancelTaskRequest) (*acliv1.Task, error) {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.taskLocked(req.Uuid)
	if err != nil {
		return nil, err
	}
	pb := t.PB
	subject := "task:" + pb.Uuid
	switch {
	case tasks.Finished(pb.Status):
		return nil, apierr.Precondition("TASK_STATE", subject, "task %s (%s) has already ended (%s)", pb.Uuid, pb.Operation, pb.Status)
	case t.Stop == nil && pb.Cancellable:
		return nil, apierr.Precondition("TASK_STATE", subject, "task %s (%s) is already being cancelled", pb.Uuid, pb.Operation)
	case t.Stop == nil:
		return nil, apierr.Precondition("NOT_CANCELLABLE", subject,
			"task %s (%s) cannot stop safely now (only migrations before switch-over and image imports can); wait for it with task.wait %s", pb.Uuid, pb.Operation, pb.Uuid)
	}
	reason := "cancelled"
	if who := auth.UserFromContext(ctx); who != "" {
		reason += " by " + who
	}
	if req.Reason != "" {
		reason += " (" + req.Reason + ")"
	}
	t.Stop(&taskCancelled{reason: reason})
	t.Stop = nil
	m.log.Info("task cancelled", "task", pb.Uuid, "op", pb.Operation.String(), "reason", reason)
	return t.Update(func(pb *acliv1.Task) {
		pb.ProgressMessage = "stopping: " + reason
		pb.Messages = append(pb.Messages, reason)
	}), nil
}
