package manager

import (
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/vm"
)

// VmCluster is manager/vm's view of m.
func (m *Manager) VmCluster() vm.Cluster { return vmCluster{m} }

// DB is m's committed state.
func (m *Manager) DB() *state.DB { return m.db }
