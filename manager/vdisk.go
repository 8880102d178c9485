package manager

import (
	"context"
	"slices"
	"strings"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/storage"
)

// vDisk copies: clones from images, vDisks, files and snapshots. Every
// copy is a volume of its own (manager/storage/volume: a sparse copy of the
// data extents), so deleting a source never strands a copy.

// storageState is guarded by Manager.mu.
type storageState struct {
	// readers are the running tasks copying from an entity (a VM, image,
	// snapshot or volume group): it cannot change or go while they read,
	// and any number of them may read at once.
	readers map[string][]*taskRec
	// containers hold the volumes (manager/storage).
	containers *storage.Containers
}

func (m *Manager) initStorage() {
	m.stor.readers = map[string][]*taskRec{}
	m.stor.containers = &storage.Containers{DB: m.db, Driver: m.storageDriver(), DriverName: m.drv.Name(), Log: m.log}
	m.stor.containers.Pauser, _ = m.drv.(driver.Pauser)
	m.stor.containers.Changing = func(id string) *acliv1.Task {
		m.mu.RLock()
		defer m.mu.RUnlock()
		if t := m.busyLocked(id); t != nil {
			return t.PB
		}
		return nil
	}
}

// heldLocked is the task holding an entity: the one changing it, else the
// first one copying from it.
func (m *Manager) heldLocked(id string) *taskRec {
	if t := m.busyLocked(id); t != nil {
		return t
	}
	if rs := m.stor.readers[id]; len(rs) > 0 {
		return rs[0]
	}
	return nil
}

// readLocked marks ids as read by t until it ends.
func (m *Manager) readLocked(t *taskRec, ids ...string) {
	for _, id := range ids {
		m.stor.readers[id] = append(m.stor.readers[id], t)
	}
	prev := t.Release
	t.Release = func() {
		if prev != nil {
			prev()
		}
		for _, id := range ids {
			// A report read while a copy paused the VM is older news.
			m.settleLocked(id, time.Now())
			rs := slices.DeleteFunc(m.stor.readers[id], func(r *taskRec) bool { return r == t })
			if len(rs) == 0 {
				delete(m.stor.readers, id)
			} else {
				m.stor.readers[id] = rs
			}
		}
	}
}

// checkWriterLocked refuses reading an entity a task is changing (other
// readers are fine).
func (m *Manager) checkWriterLocked(kind, name, id string) error {
	if t := m.busyLocked(id); t != nil {
		return apierr.Busy(kind, name, t.PB.Uuid, t.PB.Operation.String())
	}
	return nil
}

// srcHeldLocked refuses a source that a task is changing.
func (m *Manager) srcHeldLocked(src storage.Source) error {
	if src.Lock == "" {
		return nil
	}
	return m.checkWriterLocked(strings.ToLower(strings.TrimPrefix(src.Ref.Kind.String(), "k")), src.Ref.Name, src.Lock)
}

// undoCopies removes copies whose records were refused.
func (m *Manager) undoCopies(ctx context.Context, copies []storage.Copy) func() {
	return func() { m.stor.containers.Remove(context.WithoutCancel(ctx), storage.Disks(copies)) }
}
