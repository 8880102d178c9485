package storage

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/iscsi"
	"github.com/acli-dev/acli/manager/state"
)

// stale reports whether the stored sessions lag the cluster: a session
// missing or left over, on a CVM that is not up while another is, in the
// wrong state, or (for a VM) not on the CVM of the VM's current host while
// that one is up.
func stale(tx *state.Tx, vgs []*acliv1.VolumeGroup) bool {
	hosts := tx.Hosts()
	up := make(map[string]bool, len(hosts))
	local := make(map[string]string, len(hosts))
	anyUp := false
	for _, h := range hosts {
		serves := CvmServes(h)
		up[h.CvmIp] = serves
		local[h.Uuid] = h.CvmIp
		anyUp = anyUp || serves
	}
	for _, vg := range vgs {
		// A session is missing or left over: a VM powered on or off.
		want := len(vg.ExternalInitiators)
		for _, id := range vg.VmUuids {
			if state.Placed(tx.Vm(id)) {
				want++
			}
		}
		if want*len(vg.Disks) != len(vg.Sessions) {
			return true
		}
		for _, x := range vg.Sessions {
			if anyUp && !up[x.CvmIp] || (x.State == acliv1.IscsiSessionState_kSessionActive) != up[x.CvmIp] {
				return true
			}
			if x.VmUuid != "" && !vg.LoadBalanceVmAttachments {
				v := tx.Vm(x.VmUuid)
				if !state.Placed(v) {
					return true
				}
				if l := local[v.HostUuid]; up[l] && x.CvmIp != l {
					return true
				}
			}
		}
	}
	return false
}

// current returns the sessions of the given VGs as they are now: the
// stored ones, or the plan when the stored ones lag the cluster.
func (s *Sessions) current(tx *state.Tx, vgs []*acliv1.VolumeGroup) map[string][]*acliv1.IscsiSession {
	out := make(map[string][]*acliv1.IscsiSession, len(vgs))
	if !stale(tx, vgs) {
		for _, vg := range vgs {
			out[vg.Uuid] = vg.Sessions
		}
		return out
	}
	plan := s.plan(tx, nil, s.Now())
	changed := make(map[string][]*acliv1.IscsiSession, len(plan.Changed))
	for _, vg := range plan.Changed {
		changed[vg.Uuid] = vg.Sessions
	}
	for _, vg := range vgs {
		if ss, ok := changed[vg.Uuid]; ok {
			out[vg.Uuid] = ss
		} else {
			out[vg.Uuid] = vg.Sessions
		}
	}
	return out
}

// vgOut is the API view of a VG: its current sessions included.
func vgOut(tx *state.Tx, vg *acliv1.VolumeGroup, sessions []*acliv1.IscsiSession) *acliv1.VolumeGroup {
	out := proto.Clone(vg).(*acliv1.VolumeGroup)
	out.Sessions = sessions
	out.VmUuids = slices.DeleteFunc(out.VmUuids, func(id string) bool { return tx.Vm(id) == nil })
	return out
}

// byName orders VGs by name, the listing order.
func byName(vgs []*acliv1.VolumeGroup) []*acliv1.VolumeGroup {
	slices.SortFunc(vgs, func(a, b *acliv1.VolumeGroup) int { return strings.Compare(a.Name, b.Name) })
	return vgs
}

// VmOut adds to a VM the disks of its volume groups and, for every disk,
// the CVM serving it now and whether that is the local one. It returns v
// itself when there is nothing to add.
func (s *Sessions) VmOut(v *acliv1.Vm) *acliv1.Vm {
	out := v
	s.DB.View(func(tx *state.Tx) { out = s.vmOut(tx, v) })
	return out
}

func (s *Sessions) vmOut(tx *state.Tx, v *acliv1.Vm) *acliv1.Vm {
	vgs := tx.VolumeGroupsOf(v.Uuid)
	if len(v.Disks) == 0 && len(vgs) == 0 {
		return v
	}
	out := proto.Clone(v).(*acliv1.Vm)
	cvms := CVMs(tx)
	on := state.Placed(v)
	ip, path := "", ""
	if on {
		ip, path = iscsi.VMDiskCVM(cvms, v.HostUuid, v.Uuid)
	}
	var maxScsi int32 = -1
	for _, d := range out.Disks {
		if on && !d.Cdrom {
			d.ServedByCvmIp, d.Path = ip, path
		}
		if d.Bus == "scsi" {
			maxScsi = max(maxScsi, d.Index)
		}
	}
	localIP := ""
	for _, c := range cvms {
		if c.HostUUID == v.HostUuid {
			localIP = c.IP
		}
	}
	byName(vgs)
	sessions := s.current(tx, vgs)
	out.VolumeGroupUuids = out.VolumeGroupUuids[:0]
	ini := iscsi.VMInitiator(v.Uuid)
	for _, vg := range vgs {
		out.VolumeGroupUuids = append(out.VolumeGroupUuids, vg.Uuid)
		served := map[int32]*acliv1.IscsiSession{}
		for _, x := range sessions[vg.Uuid] {
			if x.InitiatorIqn == ini {
				served[x.DiskIndex] = x
			}
		}
		for _, d := range vg.Disks {
			maxScsi++
			vd := &acliv1.Disk{
				Index: maxScsi, Uuid: d.Uuid, Bus: "scsi", SizeBytes: d.SizeBytes, Container: d.Container,
				VolumeGroupUuid: vg.Uuid,
			}
			if x := served[d.Index]; x != nil {
				vd.ServedByCvmIp = x.CvmIp
				switch {
				case x.State != acliv1.IscsiSessionState_kSessionActive:
					vd.Path = "down"
				case x.CvmIp == localIP:
					vd.Path = "local"
				default:
					vd.Path = "redirected"
				}
			}
			out.Disks = append(out.Disks, vd)
		}
	}
	return out
}

// Check verifies the session invariant (iscsi.Check) on one consistent
// read of the committed state: the stored sessions, or, with committed
// false, the sessions as readers see them.
func (s *Sessions) Check(committed bool) error {
	var err error
	s.DB.View(func(tx *state.Tx) {
		vgs := tx.VolumeGroups()
		var sessions map[string][]*acliv1.IscsiSession
		if committed {
			sessions = map[string][]*acliv1.IscsiSession{}
			for _, vg := range vgs {
				sessions[vg.Uuid] = vg.Sessions
			}
		} else {
			sessions = s.current(tx, vgs)
		}
		var atts []iscsi.Attachment
		var ss []iscsi.Session
		for _, vg := range vgs {
			atts = appendAttachments(tx, atts, vg)
			for _, x := range sessions[vg.Uuid] {
				ss = append(ss, iscsi.Session{Key: iscsi.Key{Initiator: x.InitiatorIqn, VG: vg.Uuid, Disk: int(x.DiskIndex)}, CVM: x.CvmIp})
			}
		}
		err = iscsi.Check(CVMs(tx), atts, ss)
	})
	return err
}
