package manager

import (
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
)

// Storage containers are manager/storage (storage.Containers).
const defaultContainer = state.DefaultContainer

// storageDriver is the driver's storage, or nil when it keeps none.
func (m *Manager) storageDriver() driver.Storage {
	s, _ := m.drv.(driver.Storage)
	return s
}

// containerLocked checks a container name.
func (m *Manager) containerLocked(name string) (string, error) {
	return m.stor.containers.Container(name)
}

// checkCapacityLocked refuses early, with what the request names, adding
// bytes that do not fit the container as committed (storage.CheckCapacity).
func (m *Manager) checkCapacityLocked(container string, add int64, what string) error {
	return storage.CheckCapacity(m.db, container, add, what)
}
