package manager

import (
	"context"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
)

// Volume groups and their iSCSI sessions are manager/storage; this file
// gives it what it needs of the manager: tasks, VMs and vDisk copies.

// IscsiConfig tunes iSCSI session failover and failback.
type IscsiConfig = storage.IscsiConfig

// DefaultFailoverDeadline is IscsiConfig.FailoverDeadline's default.
const DefaultFailoverDeadline = storage.DefaultFailoverDeadline

func (m *Manager) initVgs(cfg IscsiConfig) {
	d := storage.Deps{
		DB:  m.db,
		Log: m.log,
		Now: func() time.Time { return timeNow() },
		Publish: func(typ, severity, task string, refs []*acliv1.EntityRef, msg string) {
			m.publish(typ, severity, task, refs, "%s", msg)
		},
	}
	if sp, ok := m.drv.(interface{ Speed() float64 }); ok {
		d.Speed = sp.Speed()
	}
	if is, ok := m.drv.(driver.ISCSI); ok {
		d.ISCSI = is
	}
	m.vgs = storage.NewSessions(d, cfg)
}

// startVgs reconciles the loaded sessions with the hosts as they are now,
// then leaves the session controller running.
func (m *Manager) startVgs() {
	started := make(chan struct{})
	m.bgWG.Add(1)
	go func() {
		defer m.bgWG.Done()
		m.vgs.Run(m.ctx, func() { close(started) })
	}()
	<-started
}

// vgService is the volume group feature (manager/storage.Service).
func (m *Manager) vgService() *storage.Service {
	return &storage.Service{Sessions: m.vgs, Tasks: vgTasks{m}, Volumes: vgVolumes{m.stor.containers, m}}
}

// vgTasks runs the volume group feature's tasks (storage.Tasks).
type vgTasks struct{ m *Manager }

func (t vgTasks) Quick(ctx context.Context, op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks []string, writes []state.Write, msg string, undo func()) (*acliv1.Task, error) {
	m := t.m
	m.mu.Lock()
	for _, ref := range refs {
		kind := "vm"
		if ref.Kind == acliv1.EntityKind_kVolumeGroup {
			kind = "volume group"
		}
		for _, id := range locks {
			if id != ref.Uuid {
				continue
			}
			if err := m.checkBusyLocked(kind, ref.Name, id); err != nil {
				m.mu.Unlock()
				return nil, err
			}
		}
	}
	task := m.newTaskLocked(op, refs, locks...)
	m.mu.Unlock()
	ws := make([]write, len(writes))
	for i, w := range writes {
		ws[i] = write{key: w.Key, msg: w.Msg, rev: w.Rev}
	}
	return m.quick(ctx, task, func(context.Context, *taskRec) (outcome, error) {
		return outcome{writes: ws, message: msg, undo: undo}, nil
	})
}

func (t vgTasks) Vm(field, ref string) (*acliv1.Vm, error) {
	t.m.mu.RLock()
	defer t.m.mu.RUnlock()
	r, err := t.m.vmLocked(field, ref)
	if err != nil {
		return nil, err
	}
	return r.pb, nil
}

// vgVolumes copies vDisks for volume groups (storage.Volumes): the
// containers', refusing a source a task is changing.
type vgVolumes struct {
	*storage.Containers
	m *Manager
}

func (v vgVolumes) Source(field, id string) (storage.Source, error) {
	m := v.m
	var src storage.Source
	var err error
	m.db.View(func(tx *state.Tx) { src, err = storage.FindVdisk(tx, field, id) })
	if err != nil {
		return src, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return src, m.srcHeldLocked(src)
}
