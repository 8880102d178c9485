package manager

import (
	"time"

	"github.com/acli-dev/acli/manager/driver"
)

// CheckIscsi verifies the session invariant (manager/iscsi.Check) on one
// consistent snapshot of the model: the committed sessions, or, with
// committed false, the sessions as readers see them.
func (m *Manager) CheckIscsi(committed bool) error {
	return m.vgs.Check(committed)
}

// IscsiDeadline is the failover deadline in real time.
func (m *Manager) IscsiDeadline() time.Duration { return m.vgs.Deadline() }

// ApplyHostEvent applies a host report as if the driver had sent it.
func (m *Manager) ApplyHostEvent(ev driver.HostEvent) error {
	return m.hostEv.Apply(m.ctx, ev)
}
