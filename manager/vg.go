package manager

// Volume groups and their iSCSI sessions.
//
// A volume group (VG) exports vDisks to external initiators and to VMs. Each
// (initiator, vDisk) pair has one session, served by a CVM. The sessions are
// stored inside their VG record (/vgs/<uuid>), so a VG change and the
// sessions it creates or removes commit together, and a failover rewrites
// only the VGs whose sessions moved.
//
// Which CVM serves what is decided by manager/iscsi on a snapshot of the
// model (planLocked): VG tasks, CVM state changes (onCvmStateChanged) and a
// periodic pass that follows VMs as they power on, off or migrate all run
// the same plan, serialised by vgState.mu, and commit what it changes. A
// reader never sees a session on a down CVM while another is up: between a
// CVM going down and the failover being committed (microseconds, or up to
// the failover deadline if the store is slow), reads show the plan.
//
// A VM's own disks have no session records: they are served by the CVM on
// the VM's current host, or, while it is down, by a remote CVM chosen by
// rendezvous hashing, so the choice is stable and spreads VMs. vmStorageOut
// computes it on read, which makes it follow migrations for free.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/iscsi"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store"
)

// IscsiConfig tunes iSCSI session failover. Durations are simulated time:
// with the sim driver they are divided by its speed.
type IscsiConfig struct {
	// FailoverDeadline bounds how long re-establishing the sessions of a
	// CVM that went down may take, store retries included; missing it is
	// reported as an error event and the work continues in the background
	// (default 5 s).
	FailoverDeadline time.Duration
	// FailbackDelay is how long a recovered CVM must stay up before the
	// sessions that prefer it move back (default 0: at once).
	FailbackDelay time.Duration
	// NoFailback leaves sessions where failover put them when their CVM
	// recovers.
	NoFailback bool
	// ReconcileInterval is how often (real time) sessions are checked
	// against VM placement, which changes without telling them (default
	// 200 ms).
	ReconcileInterval time.Duration
}

// Defaults of IscsiConfig.
const (
	DefaultFailoverDeadline  = 5 * time.Second
	DefaultReconcileInterval = 200 * time.Millisecond
	// minFailoverDeadline keeps a fast simulation on a loaded machine from
	// reporting a missed deadline because the manager itself was slow.
	minFailoverDeadline = time.Second
)

const vgPrefix = state.VgPrefix

func vgKey(id string) string { return vgPrefix + id }

// vgState is guarded by Manager.mu, except mu and the settings.
type vgState struct {
	// mu serialises every change of sessions, from planning to applying,
	// so plans never race. Lock order: vgState.mu, then Manager.mu.
	mu sync.Mutex

	byUUID map[string]*vgRec
	byName map[string]*vgRec
	// byVm maps a VM UUID to the VGs attached to it.
	byVm map[string][]string
	// upSince is when each CVM (by IP) last came up, for delayed failback.
	upSince map[string]time.Time

	deadline      time.Duration // real time
	failbackDelay time.Duration // real time
	noFailback    bool
	interval      time.Duration
	kick          chan struct{}
}

type vgRec struct {
	pb  *acliv1.VolumeGroup
	rev int64
}

func (m *Manager) initVgs(cfg IscsiConfig) {
	s := &m.vgs
	s.byUUID = map[string]*vgRec{}
	s.byName = map[string]*vgRec{}
	s.byVm = map[string][]string{}
	s.upSince = map[string]time.Time{}
	s.kick = make(chan struct{}, 1)
	speed := 1.0
	if sp, ok := m.drv.(interface{ Speed() float64 }); ok && sp.Speed() > 0 {
		speed = sp.Speed()
	}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) / speed) }
	if cfg.FailoverDeadline <= 0 {
		cfg.FailoverDeadline = DefaultFailoverDeadline
	}
	s.deadline = max(scale(cfg.FailoverDeadline), minFailoverDeadline)
	s.failbackDelay = scale(cfg.FailbackDelay)
	s.noFailback = cfg.NoFailback
	s.interval = cfg.ReconcileInterval
	if s.interval <= 0 {
		s.interval = DefaultReconcileInterval
	}
}

// loadVgs reads the volume groups.
func (m *Manager) loadVgs(ctx context.Context) error {
	return loadAll(ctx, m.st, vgPrefix, m.putVgLocked)
}

// startVgs brings the loaded sessions in line with the hosts as they are
// now (CVMs may have changed state while clusterd was stopped) and starts
// the periodic pass.
func (m *Manager) startVgs() {
	ctx, cancel := context.WithTimeout(m.ctx, m.vgs.deadline)
	if err := m.reconcileSessions(ctx); err != nil {
		m.log.Error("reconciling iSCSI sessions at start", "err", err)
	}
	m.syncISCSI(ctx)
	cancel()
	m.bgWG.Add(1)
	go m.sessionLoop()
}

// sessionLoop re-plans sessions periodically and when kicked (a delayed
// failback coming due, a failover to retry).
func (m *Manager) sessionLoop() {
	defer m.bgWG.Done()
	t := time.NewTicker(m.vgs.interval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		case <-m.vgs.kick:
		}
		ctx, cancel := context.WithTimeout(m.ctx, m.vgs.deadline)
		if err := m.reconcileSessions(ctx); err != nil && m.ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
			m.log.Warn("reconciling iSCSI sessions", "err", err)
		}
		m.syncISCSI(ctx)
		cancel()
	}
}

func (m *Manager) kickSessions() {
	select {
	case m.vgs.kick <- struct{}{}:
	default:
	}
}

// onCvmStateChanged moves the sessions of a CVM that went down to healthy
// CVMs, or back to one that recovered, and reports the paths of the VMs on
// its host. Host events and CVM maintenance call it (through
// cvmStateChanged) after committing the host change, outside Manager.mu.
func (m *Manager) onCvmStateChanged(prev, next *acliv1.Host) {
	up := cvmServes(next)
	m.mu.Lock()
	if up {
		m.vgs.upSince[next.CvmIp] = timeNow()
	} else {
		delete(m.vgs.upSince, next.CvmIp)
	}
	m.mu.Unlock()
	if up && m.vgs.failbackDelay > 0 && !m.vgs.noFailback {
		time.AfterFunc(m.vgs.failbackDelay, m.kickSessions)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(m.ctx, m.vgs.deadline)
	err := m.reconcileSessions(ctx)
	cancel()
	if err != nil && m.ctx.Err() == nil {
		m.publish("iscsi", "error", "", []*acliv1.EntityRef{hostRef(next)},
			"iSCSI sessions of cvm %s not re-established within %v: %v; retrying", next.CvmIp, m.vgs.deadline, err)
		m.kickSessions()
	} else if err == nil {
		m.log.Debug("iSCSI sessions reconciled", "cvm", next.CvmIp, "up", up, "took", time.Since(start))
	}
	if next.NodeState != acliv1.NodeState_kNodeDown {
		// The VMs of a failed host are down, not redirected: HA restarts
		// them elsewhere, on the CVM local to them there.
		m.publishVmPaths(next)
	}
}

// publishVmPaths reports where the disks of the VMs on a host whose CVM
// changed state are now served.
func (m *Manager) publishVmPaths(h *acliv1.Host) {
	m.mu.RLock()
	cvms := m.cvmsLocked()
	var msgs []string
	var refs [][]*acliv1.EntityRef
	for _, r := range m.vmSorted {
		v := r.pb
		if v.HostUuid != h.Uuid || !placed(v) || len(v.Disks) == 0 {
			continue
		}
		ip, path := iscsi.VMDiskCVM(cvms, h.Uuid, v.Uuid)
		var msg string
		switch path {
		case "local":
			msg = fmt.Sprintf("vm %s disks served by local cvm %s again", v.Name, ip)
		case "redirected":
			msg = fmt.Sprintf("vm %s disks redirected %s -> %s", v.Name, h.CvmIp, ip)
		default:
			msg = fmt.Sprintf("vm %s disks are down: no cvm is up", v.Name)
		}
		msgs = append(msgs, msg)
		refs = append(refs, []*acliv1.EntityRef{vmRef(v), hostRef(h)})
	}
	m.mu.RUnlock()
	for i, msg := range msgs {
		m.publish("iscsi", "info", "", refs[i], "%s", msg)
	}
}

// vmMovedLocked is told of every VM change (next nil: deleted). When a VM
// with volume groups powers on or off, migrates or goes, the session pass
// runs at once instead of at its next tick; readers see the new sessions
// meanwhile (sessionsLocked).
func (m *Manager) vmMovedLocked(prev, next *acliv1.Vm) {
	if len(m.vgs.byVm[prev.Uuid]) == 0 {
		return
	}
	if next == nil || placed(prev) != placed(next) || prev.HostUuid != next.HostUuid {
		m.kickSessions()
	}
}

// cvmServes reports whether a host's CVM serves storage.
func cvmServes(h *acliv1.Host) bool {
	return h.CvmState == acliv1.CvmState_kCvmUp && h.NodeState != acliv1.NodeState_kNodeDown
}

func cvmStateOf(h *acliv1.Host) iscsi.CVMState {
	switch {
	case cvmServes(h):
		return iscsi.CVMUp
	case h.CvmState == acliv1.CvmState_kCvmMaintenance && h.NodeState != acliv1.NodeState_kNodeDown:
		return iscsi.CVMMaintenance
	}
	return iscsi.CVMDown
}

// cvmsLocked lists the CVMs in hypervisor IP order.
func (m *Manager) cvmsLocked() []iscsi.CVM {
	out := make([]iscsi.CVM, 0, len(m.hostList))
	for _, h := range m.hostList {
		if h.pb.CvmIp != "" {
			out = append(out, iscsi.CVM{IP: h.pb.CvmIp, HostUUID: h.pb.Uuid, State: cvmStateOf(h.pb)})
		}
	}
	return out
}

// ---- the VG index ----

func (m *Manager) putVgLocked(vg *acliv1.VolumeGroup, rev int64) {
	s := &m.vgs
	if old := s.byUUID[vg.Uuid]; old != nil {
		m.unindexVgLocked(old.pb)
	}
	r := &vgRec{pb: vg, rev: rev}
	s.byUUID[vg.Uuid] = r
	s.byName[vg.Name] = r
	for _, id := range vg.VmUuids {
		s.byVm[id] = append(s.byVm[id], vg.Uuid)
	}
}

func (m *Manager) unindexVgLocked(vg *acliv1.VolumeGroup) {
	s := &m.vgs
	delete(s.byName, vg.Name)
	for _, id := range vg.VmUuids {
		list := slices.DeleteFunc(s.byVm[id], func(x string) bool { return x == vg.Uuid })
		if len(list) == 0 {
			delete(s.byVm, id)
		} else {
			s.byVm[id] = list
		}
	}
}

func (m *Manager) deleteVgLocked(id string) {
	if r := m.vgs.byUUID[id]; r != nil {
		m.unindexVgLocked(r.pb)
		delete(m.vgs.byUUID, id)
	}
}

// ---- planning ----

// vgPlan is the outcome of planning sessions over the whole model.
type vgPlan struct {
	// changed holds the new record of every VG that changes, by UUID, in
	// UUID order; a nil record deletes the VG.
	changed []*acliv1.VolumeGroup
	deleted []string
	moves   []iscsi.Move
	// moveVg names the VG of each move (for the event).
	moveVg []*acliv1.VolumeGroup
	// down and up list sessions that lost or regained service.
	down, up []*acliv1.IscsiSession
}

// planLocked computes every VG's sessions from the VG configurations (with
// override replacing or, when nil, deleting some), the VM placements and
// the CVM states. It changes nothing.
func (m *Manager) planLocked(override map[string]*acliv1.VolumeGroup, now time.Time) *vgPlan {
	cfgs := make([]*acliv1.VolumeGroup, 0, len(m.vgs.byUUID)+len(override))
	var deleted []string
	for id, r := range m.vgs.byUUID {
		if ov, ok := override[id]; ok {
			if ov == nil {
				deleted = append(deleted, id)
				continue
			}
			cfgs = append(cfgs, ov)
			continue
		}
		cfgs = append(cfgs, r.pb)
	}
	for id, ov := range override {
		if ov != nil && m.vgs.byUUID[id] == nil {
			cfgs = append(cfgs, ov)
		}
	}
	slices.SortFunc(cfgs, func(a, b *acliv1.VolumeGroup) int { return strings.Compare(a.Uuid, b.Uuid) })
	slices.Sort(deleted)

	cvms := m.cvmsLocked()
	cvmHost := make(map[string]string, len(cvms))
	cvmUp := make(map[string]bool, len(cvms))
	for _, c := range cvms {
		cvmHost[c.IP] = c.HostUUID
		cvmUp[c.IP] = c.State == iscsi.CVMUp
	}
	var atts []iscsi.Attachment
	var cur []iscsi.Session
	prior := map[iscsi.Key]*acliv1.IscsiSession{}
	for _, vg := range cfgs {
		atts = m.appendAttachmentsLocked(atts, vg)
		// Sessions as recorded (an override's sessions are the stored ones).
		stored := vg.Sessions
		if r := m.vgs.byUUID[vg.Uuid]; r != nil {
			stored = r.pb.Sessions
		}
		for _, s := range stored {
			k := iscsi.Key{Initiator: s.InitiatorIqn, VG: vg.Uuid, Disk: int(s.DiskIndex)}
			prior[k] = s
			cur = append(cur, iscsi.Session{Key: k, CVM: s.CvmIp, Preferred: s.PreferredCvmIp})
		}
	}
	failbackTo := func(ip string) bool {
		if m.vgs.noFailback {
			return false
		}
		since, ok := m.vgs.upSince[ip]
		return !ok || now.Sub(since) >= m.vgs.failbackDelay
	}
	next, moves := iscsi.PlanSessions(cvms, atts, cur, failbackTo)

	plan := &vgPlan{deleted: deleted, moves: moves}
	byVg := map[string][]iscsi.Session{}
	for _, s := range next {
		byVg[s.VG] = append(byVg[s.VG], s)
	}
	moved := make(map[iscsi.Key]bool, len(moves))
	for _, mv := range moves {
		moved[mv.Key] = true
	}
	var vgOf map[string]*acliv1.VolumeGroup
	if len(moves) > 0 {
		vgOf = make(map[string]*acliv1.VolumeGroup, len(cfgs))
	}
	ts := timestamppb.New(now)
	for _, vg := range cfgs {
		ss := byVg[vg.Uuid]
		slices.SortFunc(ss, func(a, b iscsi.Session) int {
			return cmp.Or(strings.Compare(a.Initiator, b.Initiator), cmp.Compare(a.Disk, b.Disk))
		})
		r := m.vgs.byUUID[vg.Uuid]
		if _, overridden := override[vg.Uuid]; !overridden && r != nil && unchanged(r.pb.Sessions, ss, moved, cvmUp, cvmHost) &&
			!slices.ContainsFunc(vg.VmUuids, func(id string) bool { return m.vms[id] == nil }) {
			if vgOf != nil {
				vgOf[vg.Uuid] = vg
			}
			continue
		}
		pbs := make([]*acliv1.IscsiSession, len(ss))
		for i, s := range ss {
			p := &acliv1.IscsiSession{
				InitiatorIqn: s.Initiator, TargetIqn: diskTarget(vg, s.Disk), VolumeGroupUuid: vg.Uuid,
				VolumeGroupName: vg.Name, DiskIndex: int32(s.Disk), CvmIp: s.CVM, CvmHostUuid: cvmHost[s.CVM],
				Port: iscsi.PortExternal, State: acliv1.IscsiSessionState_kSessionActive, Since: ts,
				PreferredCvmIp: s.Preferred,
			}
			if id, ok := strings.CutPrefix(s.Initiator, iscsi.TargetDomain+":vm-"); ok {
				p.VmUuid, p.Port = id, iscsi.PortLocal
			}
			if !cvmUp[s.CVM] {
				p.State = acliv1.IscsiSessionState_kSessionDown
			}
			old := prior[s.Key]
			if old != nil && !moved[s.Key] && old.CvmIp == s.CVM && old.Since != nil && old.State == p.State {
				p.Since = old.Since
			}
			switch {
			case old != nil && old.State == acliv1.IscsiSessionState_kSessionActive && p.State == acliv1.IscsiSessionState_kSessionDown:
				plan.down = append(plan.down, p)
			case old != nil && old.State == acliv1.IscsiSessionState_kSessionDown && p.State == acliv1.IscsiSessionState_kSessionActive && !moved[s.Key]:
				plan.up = append(plan.up, p)
			}
			pbs[i] = p
		}
		nv := proto.Clone(vg).(*acliv1.VolumeGroup)
		nv.Sessions = pbs
		// Forget VMs deleted while attached.
		nv.VmUuids = slices.DeleteFunc(nv.VmUuids, func(id string) bool { return m.vms[id] == nil })
		plan.changed = append(plan.changed, nv)
		if vgOf != nil {
			vgOf[vg.Uuid] = nv
		}
	}
	for _, mv := range moves {
		plan.moveVg = append(plan.moveVg, vgOf[mv.Key.VG])
	}
	return plan
}

// appendAttachmentsLocked appends a VG's attached (initiator, vDisk) pairs.
func (m *Manager) appendAttachmentsLocked(atts []iscsi.Attachment, vg *acliv1.VolumeGroup) []iscsi.Attachment {
	for _, ini := range vg.ExternalInitiators {
		for _, d := range vg.Disks {
			atts = append(atts, iscsi.Attachment{Key: iscsi.Key{Initiator: ini, VG: vg.Uuid, Disk: int(d.Index)}})
		}
	}
	for _, id := range vg.VmUuids {
		v := m.vms[id]
		if v == nil || !placed(v.pb) {
			continue // a stopped VM has no sessions
		}
		for _, d := range vg.Disks {
			atts = append(atts, iscsi.Attachment{
				Key:    iscsi.Key{Initiator: iscsi.VMInitiator(id), VG: vg.Uuid, Disk: int(d.Index)},
				VMHost: v.pb.HostUuid, LoadBalance: vg.LoadBalanceVmAttachments,
			})
		}
	}
	return atts
}

// unchanged reports whether a VG's stored sessions (in sessionOrder) are
// the planned ones (in the same order), in the same state.
func unchanged(stored []*acliv1.IscsiSession, planned []iscsi.Session, moved map[iscsi.Key]bool, up map[string]bool, host map[string]string) bool {
	if len(stored) != len(planned) {
		return false
	}
	for i, s := range planned {
		o := stored[i]
		if o.InitiatorIqn != s.Initiator || int(o.DiskIndex) != s.Disk || o.CvmIp != s.CVM || o.PreferredCvmIp != s.Preferred ||
			moved[s.Key] || o.CvmHostUuid != host[s.CVM] || (o.State == acliv1.IscsiSessionState_kSessionActive) != up[s.CVM] {
			return false
		}
	}
	return true
}

// diskTarget is the target IQN of one vDisk of a VG.
func diskTarget(vg *acliv1.VolumeGroup, disk int) string {
	return vg.IscsiTarget + "-tgt" + strconv.Itoa(disk)
}

// ---- applying ----

// reconcileSessions plans sessions over the whole model and commits the VGs
// that change, retrying the store until ctx ends, then publishes one
// "iscsi" event per session moved, lost or regained.
func (m *Manager) reconcileSessions(ctx context.Context) error {
	m.vgs.mu.Lock()
	defer m.vgs.mu.Unlock()
	m.mu.RLock()
	plan := m.planLocked(nil, timeNow())
	ws := m.planWritesLocked(plan)
	m.mu.RUnlock()
	if len(ws) == 0 {
		return nil
	}
	var rev int64
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		var err error
		if rev, err = m.commit(ctx, ws); err == nil {
			break
		}
		if errors.Is(err, store.ErrClosed) || store.IsConflict(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
	m.mu.Lock()
	m.applyPlanLocked(plan, rev)
	m.mu.Unlock()
	m.publishPlan(plan, "")
	return nil
}

// planWritesLocked is the store writes of a plan.
func (m *Manager) planWritesLocked(plan *vgPlan) []write {
	ws := make([]write, 0, len(plan.changed)+len(plan.deleted))
	for _, vg := range plan.changed {
		rev := int64(0)
		if r := m.vgs.byUUID[vg.Uuid]; r != nil {
			rev = r.rev
		}
		ws = append(ws, write{key: vgKey(vg.Uuid), msg: vg, rev: rev})
	}
	for _, id := range plan.deleted {
		ws = append(ws, write{key: vgKey(id), rev: m.vgs.byUUID[id].rev})
	}
	return ws
}

func (m *Manager) applyPlanLocked(plan *vgPlan, rev int64) {
	for _, vg := range plan.changed {
		m.putVgLocked(vg, rev)
	}
	for _, id := range plan.deleted {
		m.deleteVgLocked(id)
	}
}

func (m *Manager) publishPlan(plan *vgPlan, taskUUID string) {
	if len(plan.moves)+len(plan.down)+len(plan.up) == 0 {
		return
	}
	m.mu.RLock()
	up := map[string]bool{}
	for _, c := range m.cvmsLocked() {
		up[c.IP] = c.State == iscsi.CVMUp
	}
	m.mu.RUnlock()
	for i, mv := range plan.moves {
		sev := "info"
		if !up[mv.From] {
			sev = "warning" // a failover, not a rebalance or failback
		}
		m.publish("iscsi", sev, taskUUID, []*acliv1.EntityRef{vgRef(plan.moveVg[i])}, "%s", mv.String())
	}
	for _, s := range plan.down {
		m.publish("iscsi", "error", taskUUID, sessionRefs(s),
			"session %s/%d down: no cvm is up (waiting on %s)", s.InitiatorIqn, s.DiskIndex, s.CvmIp)
	}
	for _, s := range plan.up {
		m.publish("iscsi", "info", taskUUID, sessionRefs(s), "session %s/%d up on %s", s.InitiatorIqn, s.DiskIndex, s.CvmIp)
	}
}

func sessionRefs(s *acliv1.IscsiSession) []*acliv1.EntityRef {
	return []*acliv1.EntityRef{{Kind: acliv1.EntityKind_kVolumeGroup, Uuid: s.VolumeGroupUuid, Name: s.VolumeGroupName}}
}

func vgRef(vg *acliv1.VolumeGroup) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kVolumeGroup, Uuid: vg.Uuid, Name: vg.Name}
}

// ---- reading ----

// staleLocked reports whether the stored sessions lag the model: a session
// missing or left over, on a CVM that is not up while another is, in the
// wrong state, or (for a VM) not on the CVM of the VM's current host while
// that one is up.
func (m *Manager) staleLocked(vgs []*vgRec) bool {
	up := make(map[string]bool, len(m.hostList))
	local := make(map[string]string, len(m.hostList))
	anyUp := false
	for _, h := range m.hostList {
		s := cvmServes(h.pb)
		up[h.pb.CvmIp] = s
		local[h.pb.Uuid] = h.pb.CvmIp
		anyUp = anyUp || s
	}
	for _, r := range vgs {
		// A session is missing or left over: a VM powered on or off.
		want := len(r.pb.ExternalInitiators)
		for _, id := range r.pb.VmUuids {
			if v := m.vms[id]; v != nil && placed(v.pb) {
				want++
			}
		}
		if want*len(r.pb.Disks) != len(r.pb.Sessions) {
			return true
		}
		for _, s := range r.pb.Sessions {
			if anyUp && !up[s.CvmIp] || (s.State == acliv1.IscsiSessionState_kSessionActive) != up[s.CvmIp] {
				return true
			}
			if s.VmUuid != "" && !r.pb.LoadBalanceVmAttachments {
				v := m.vms[s.VmUuid]
				if v == nil || !placed(v.pb) {
					return true
				}
				if l := local[v.pb.HostUuid]; up[l] && s.CvmIp != l {
					return true
				}
			}
		}
	}
	return false
}

// sessionsLocked returns the sessions of the given VGs as they are now: the
// stored ones, or the plan when the stored ones lag the model.
func (m *Manager) sessionsLocked(vgs []*vgRec) map[string][]*acliv1.IscsiSession {
	out := make(map[string][]*acliv1.IscsiSession, len(vgs))
	if !m.staleLocked(vgs) {
		for _, r := range vgs {
			out[r.pb.Uuid] = r.pb.Sessions
		}
		return out
	}
	plan := m.planLocked(nil, timeNow())
	changed := make(map[string][]*acliv1.IscsiSession, len(plan.changed))
	for _, vg := range plan.changed {
		changed[vg.Uuid] = vg.Sessions
	}
	for _, r := range vgs {
		if ss, ok := changed[r.pb.Uuid]; ok {
			out[r.pb.Uuid] = ss
		} else {
			out[r.pb.Uuid] = r.pb.Sessions
		}
	}
	return out
}

// vgOutLocked is the API view of a VG: its current sessions included.
func (m *Manager) vgOutLocked(r *vgRec, sessions []*acliv1.IscsiSession) *acliv1.VolumeGroup {
	vg := proto.Clone(r.pb).(*acliv1.VolumeGroup)
	vg.Sessions = sessions
	vg.VmUuids = slices.DeleteFunc(vg.VmUuids, func(id string) bool { return m.vms[id] == nil })
	return vg
}

// vmStorageOut adds to a VM the disks of its volume groups and, for every
// disk, the CVM serving it now and whether that is the local one. It
// returns v itself when there is nothing to add.
func (m *Manager) vmStorageOut(v *acliv1.Vm) *acliv1.Vm {
	vgIDs := m.vgs.byVm[v.Uuid]
	if len(v.Disks) == 0 && len(vgIDs) == 0 {
		return v
	}
	out := proto.Clone(v).(*acliv1.Vm)
	cvms := m.cvmsLocked()
	on := placed(v)
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
	recs := make([]*vgRec, 0, len(vgIDs))
	for _, id := range vgIDs {
		if r := m.vgs.byUUID[id]; r != nil {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b *vgRec) int { return strings.Compare(a.pb.Name, b.pb.Name) })
	sessions := m.sessionsLocked(recs)
	out.VolumeGroupUuids = out.VolumeGroupUuids[:0]
	ini := iscsi.VMInitiator(v.Uuid)
	for _, r := range recs {
		out.VolumeGroupUuids = append(out.VolumeGroupUuids, r.pb.Uuid)
		served := map[int32]*acliv1.IscsiSession{}
		for _, s := range sessions[r.pb.Uuid] {
			if s.InitiatorIqn == ini {
				served[s.DiskIndex] = s
			}
		}
		for _, d := range r.pb.Disks {
			maxScsi++
			vd := &acliv1.Disk{
				Index: maxScsi, Uuid: d.Uuid, Bus: "scsi", SizeBytes: d.SizeBytes, Container: d.Container,
				VolumeGroupUuid: r.pb.Uuid,
			}
			if s := served[d.Index]; s != nil {
				vd.ServedByCvmIp = s.CvmIp
				switch {
				case s.State != acliv1.IscsiSessionState_kSessionActive:
					vd.Path = "down"
				case s.CvmIp == localIP:
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
