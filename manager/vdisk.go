package manager

import (
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
)

// vDisk copies: clones from images, vDisks, files and snapshots. Every
// copy is a volume of its own (manager/storage/volume: a sparse copy of the
// data extents), so deleting a source never strands a copy.

// storageState is what the manager keeps of storage.
type storageState struct {
	// containers hold the volumes (manager/storage).
	containers *storage.Containers
}

func (m *Manager) initStorage() {
	m.stor.containers = &storage.Containers{DB: m.db, DriverName: m.drv.Name(), Log: m.log}
	m.stor.containers.Driver, _ = m.drv.(driver.Storage)
	m.stor.containers.Pauser, _ = m.drv.(driver.Pauser)
	m.stor.containers.Changing = func(id string) *acliv1.Task {
		m.mu.RLock()
		defer m.mu.RUnlock()
		if t := m.busyLocked(id); t != nil {
			return t.PB()
		}
		return nil
	}
}

// heldLocked is the task holding an entity: the one changing it, else the
// first one reading it (state.Read).
func (m *Manager) heldLocked(id string) *taskRec {
	if t := m.busyLocked(id); t != nil {
		return t
	}
	for _, r := range m.db.Readers(id) {
		if t := m.tasks.Get(r); t != nil {
			return t
		}
	}
	return nil
}

// readLocked makes t read ids (state.Read) from its start commit until it
// ends, with the entities it holds.
func (m *Manager) readLocked(t *taskRec, ids ...string) {
	if len(ids) == 0 {
		return
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = state.Read(id)
	}
	t.AddLock(keys...)
	prev := t.Release
	t.Release = func() {
		if prev != nil {
			prev()
		}
		// A task forgotten after its start lets go here.
		m.db.LetGoNow(t.PB().Uuid, keys...)
		for _, id := range ids {
			// A report read while a copy paused the VM is older news.
			m.settled.Settle(id, time.Now())
		}
	}
}
