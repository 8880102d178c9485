package manager

import (
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/storage"
)

// Volume groups and their iSCSI sessions are manager/storage; this file
// wires it to the driver, the event log and the manager's tasks.

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
	return &storage.Service{Sessions: m.vgs, Tasks: m.tasks, Volumes: m.stor.containers}
}
