package storage

import (
	"context"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
)

// syncISCSI hands the volume groups to a driver whose data path is real
// (driver.ISCSI): every VG vDisk is exported on the CVMs under its target
// name, and logins through the data services IP follow the stored sessions
// of external initiators, so the CVM vg.list_sessions names is the one
// that serves.
func (s *Sessions) syncISCSI(ctx context.Context) {
	if s.ISCSI == nil {
		return
	}
	type volume struct {
		target, container, id string
		size                  int64
	}
	var vols []volume
	var placed []driver.ServedSession
	s.DB.View(func(tx *state.Tx) {
		for _, vg := range byName(tx.VolumeGroups()) {
			for _, disk := range vg.Disks {
				vols = append(vols, volume{DiskTarget(vg, int(disk.Index)), disk.Container, disk.Uuid, disk.SizeBytes})
			}
			for _, x := range vg.Sessions {
				if x.VmUuid == "" && x.State == acliv1.IscsiSessionState_kSessionActive {
					placed = append(placed, driver.ServedSession{Initiator: x.InitiatorIqn, Target: x.TargetIqn, CVMIP: x.CvmIp})
				}
			}
		}
	})
	for _, v := range vols {
		if err := s.ISCSI.ExportVolume(ctx, v.target, v.container, v.id, v.size); err != nil {
			s.Log.Warn("exporting a volume group vDisk", "target", v.target, "err", err)
		}
	}
	s.ISCSI.PlaceSessions(placed)
}

// served joins the planned sessions of external initiators to the ones the
// CVMs really serve: a session logged in shows the CVM serving it; one not
// logged in shows where the plan places it.
func (s *Sessions) served(tx *state.Tx, ss []*acliv1.IscsiSession) []*acliv1.IscsiSession {
	if s.ISCSI == nil {
		return ss
	}
	served, ok := s.ISCSI.ServedSessions()
	if !ok {
		return ss
	}
	type key struct{ initiator, target string }
	on := make(map[key]string, len(served))
	for _, x := range served {
		on[key{x.Initiator, x.Target}] = x.CVMIP
	}
	hostOf := map[string]string{}
	for _, c := range CVMs(tx) {
		hostOf[c.IP] = c.HostUUID
	}
	out := make([]*acliv1.IscsiSession, len(ss))
	for i, x := range ss {
		out[i] = x
		if ip, ok := on[key{x.InitiatorIqn, x.TargetIqn}]; ok && x.VmUuid == "" && ip != x.CvmIp {
			c := proto.Clone(x).(*acliv1.IscsiSession)
			c.CvmIp, c.CvmHostUuid, c.State = ip, hostOf[ip], acliv1.IscsiSessionState_kSessionActive
			out[i] = c
		}
	}
	return out
}
