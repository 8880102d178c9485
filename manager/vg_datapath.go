package manager

import (
	"context"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
)

// syncISCSI hands the volume groups to a driver whose data path is real
// (driver.ISCSI): every VG vDisk is exported on the CVMs under its target
// name, and logins through the data services IP follow the model's
// sessions of external initiators, so the CVM vg.list_sessions names is
// the one that serves.
func (m *Manager) syncISCSI(ctx context.Context) {
	d, ok := m.drv.(driver.ISCSI)
	if !ok {
		return
	}
	type volume struct {
		target, container, id string
		size                  int64
	}
	var vols []volume
	var placed []driver.ServedSession
	m.mu.RLock()
	for _, r := range m.vgListLocked() {
		for _, disk := range r.pb.Disks {
			vols = append(vols, volume{diskTarget(r.pb, int(disk.Index)), disk.Container, disk.Uuid, disk.SizeBytes})
		}
		for _, s := range r.pb.Sessions {
			if s.VmUuid == "" && s.State == acliv1.IscsiSessionState_kSessionActive {
				placed = append(placed, driver.ServedSession{Initiator: s.InitiatorIqn, Target: s.TargetIqn, CVMIP: s.CvmIp})
			}
		}
	}
	m.mu.RUnlock()
	for _, v := range vols {
		if err := d.ExportVolume(ctx, v.target, v.container, v.id, v.size); err != nil {
			m.log.Warn("exporting a volume group vDisk", "target", v.target, "err", err)
		}
	}
	d.PlaceSessions(placed)
}

// servedLocked joins the model's sessions of external initiators to the
// ones the CVMs really serve: a session logged in shows the CVM serving
// it; one not logged in shows where the model places it.
func (m *Manager) servedLocked(ss []*acliv1.IscsiSession) []*acliv1.IscsiSession {
	d, ok := m.drv.(driver.ISCSI)
	if !ok {
		return ss
	}
	served, ok := d.ServedSessions()
	if !ok {
		return ss
	}
	type key struct{ initiator, target string }
	on := make(map[key]string, len(served))
	for _, s := range served {
		on[key{s.Initiator, s.Target}] = s.CVMIP
	}
	hostOf := map[string]string{}
	for _, c := range m.cvmsLocked() {
		hostOf[c.IP] = c.HostUUID
	}
	out := make([]*acliv1.IscsiSession, len(ss))
	for i, s := range ss {
		out[i] = s
		if ip, ok := on[key{s.InitiatorIqn, s.TargetIqn}]; ok && s.VmUuid == "" && ip != s.CvmIp {
			c := proto.Clone(s).(*acliv1.IscsiSession)
			c.CvmIp, c.CvmHostUuid, c.State = ip, hostOf[ip], acliv1.IscsiSessionState_kSessionActive
			out[i] = c
		}
	}
	return out
}
