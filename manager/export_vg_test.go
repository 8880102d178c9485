package manager

import (
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/iscsi"
)

// CheckIscsi verifies the session invariant (manager/iscsi.Check) on one
// consistent snapshot of the model: the committed sessions, or, with
// committed false, the sessions as readers see them.
func (m *Manager) CheckIscsi(committed bool) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	recs := m.vgListLocked()
	var sessions map[string][]*acliv1.IscsiSession
	if committed {
		sessions = map[string][]*acliv1.IscsiSession{}
		for _, r := range recs {
			sessions[r.pb.Uuid] = r.pb.Sessions
		}
	} else {
		sessions = m.sessionsLocked(recs)
	}
	var atts []iscsi.Attachment
	var ss []iscsi.Session
	for _, r := range recs {
		atts = m.appendAttachmentsLocked(atts, r.pb)
		for _, s := range sessions[r.pb.Uuid] {
			ss = append(ss, iscsi.Session{Key: iscsi.Key{Initiator: s.InitiatorIqn, VG: r.pb.Uuid, Disk: int(s.DiskIndex)}, CVM: s.CvmIp})
		}
	}
	return iscsi.Check(m.cvmsLocked(), atts, ss)
}

// IscsiDeadline is the failover deadline in real time.
func (m *Manager) IscsiDeadline() time.Duration { return m.vgs.deadline }

// ApplyHostEvent applies a host report as if the driver had sent it.
func (m *Manager) ApplyHostEvent(ev driver.HostEvent) error {
	return m.hostEv.Apply(m.ctx, ev)
}
