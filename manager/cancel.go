package manager

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/auth"
)

// pastReturn marks the point after which a task can no longer stop safely
// (a migration that has switched over): CancelTask refuses it from then on.
func (m *Manager) pastReturn(t *taskRec) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t.PastReturn()
}

// CancelTask stops a task that can still end safely (tasks.Task.Cancel).
func (s taskService) CancelTask(ctx context.Context, req *acliv1.CancelTaskRequest) (*acliv1.Task, error) {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.taskLocked(req.Uuid)
	if err != nil {
		return nil, err
	}
	pb, err := t.Cancel(auth.UserFromContext(ctx), req.Reason)
	if err != nil {
		return nil, err
	}
	m.log.Info("task cancelled", "task", pb.Uuid, "op", pb.Operation.String(), "reason", pb.ProgressMessage)
	return pb, nil
}
