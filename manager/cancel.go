package manager

import "github.com/acli-dev/acli/manager/tasks"

// taskFeature serves the task service: reads and watches from here
// (services.go), cancellation from manager/tasks over the task table and
// Manager.mu.
type taskFeature struct {
	taskService
	*tasks.Canceller
}

// pastReturn marks the point after which a task can no longer stop safely
// (a migration that has switched over): task.cancel refuses it from then on.
func (m *Manager) pastReturn(t *taskRec) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t.PastReturn()
}
