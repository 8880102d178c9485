package manager

import acliv1 "github.com/acli-dev/acli/api/acli/v1"

// BeforeStart runs fn on each task after its request is checked, before
// its start commit.
func (m *Manager) BeforeStart(fn func(*acliv1.Task)) { m.tasks.BeforeStart(fn) }
