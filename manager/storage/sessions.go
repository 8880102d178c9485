// Package storage is clusterd's storage feature: volume groups, their iSCSI
// sessions and the vDisk copies they are made of.
//
// A volume group (VG) exports vDisks to external initiators and to VMs. Each
// (initiator, vDisk) pair has one session, served by a CVM. The sessions are
// stored inside their VG record (/vgs/<uuid>), so a VG change and the
// sessions it creates or removes commit together, and a failover rewrites
// only the VGs whose sessions moved.
//
// Which CVM serves what is decided by manager/iscsi on one consistent read
// of the committed state (state.DB.View): VG tasks, CVM state changes
// (CvmChanged) and a periodic pass that follows VMs as they power on, off or
// migrate all run the same plan, serialised by Sessions.mu, and commit what
// it changes through state.DB.Update. A reader never sees a session on a
// down CVM while another is up: between a CVM going down and the failover
// being committed, reads show the plan.
//
// A VM's own disks have no session records: they are served by the CVM on
// the VM's current host, or, while it is down, by a remote CVM chosen by
// rendezvous hashing (iscsi.VMDiskCVM). VmOut computes it on read, which
// makes it follow migrations for free.
//
// The package reaches the rest of clusterd only through Deps, Tasks and
// Volumes.
package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
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
	// Now is the clock a recovered CVM's time up is read from (default
	// time.Now; tests move one forward).
	Now func() time.Time
}

// Defaults of IscsiConfig.
const (
	DefaultFailoverDeadline  = 5 * time.Second
	DefaultReconcileInterval = 200 * time.Millisecond
	// minFailoverDeadline keeps a fast simulation on a loaded machine from
	// reporting a missed deadline because the manager itself was slow.
	minFailoverDeadline = time.Second
)

// Deps is what the session controller needs of the rest of clusterd.
type Deps struct {
	DB *state.DB
	// Publish sends an event.
	Publish func(typ, severity, task string, refs []*acliv1.EntityRef, msg string)
	Log     *slog.Logger
	// ISCSI is the driver's real data path (nil: none, as on the sim).
	ISCSI driver.ISCSI
	// Speed divides simulated durations (the sim's speed; 0 or 1: real time).
	Speed float64
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Sessions plans, commits and serves the iSCSI sessions of every VG.
type Sessions struct {
	Deps
	// mu serialises every change of sessions, from planning to committing,
	// so plans never race.
	mu sync.Mutex

	// smu guards upSince and stamps.
	smu sync.Mutex
	// upSince is when each CVM (by IP) last came up, for delayed failback.
	upSince map[string]time.Time
	// stamps is the time given to each session that changed CVM or state,
	// by the first plan (a reader's or a commit's) that saw the change, so
	// what a reader is shown is what is then committed.
	stamps map[iscsi.Key]stamp

	deadline      time.Duration // real time
	failbackDelay time.Duration // real time
	noFailback    bool
	interval      time.Duration
	kick          chan struct{}
}

type stamp struct {
	cvm   string
	state acliv1.IscsiSessionState
	since *timestamppb.Timestamp
}

// NewSessions makes the session controller; Start runs it.
func NewSessions(d Deps, cfg IscsiConfig) *Sessions {
	if cfg.Now != nil {
		d.Now = cfg.Now
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	s := &Sessions{Deps: d, upSince: map[string]time.Time{}, stamps: map[iscsi.Key]stamp{}, kick: make(chan struct{}, 1)}
	speed := 1.0
	if d.Speed > 0 {
		speed = d.Speed
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
	return s
}

// Deadline is the failover deadline in real time.
func (s *Sessions) Deadline() time.Duration { return s.deadline }

// Run brings the stored sessions in line with the hosts as they are now
// (CVMs may have changed state while clusterd was stopped), then re-plans
// periodically and when kicked (a VM with VGs moved, a delayed failback
// coming due, a failover to retry) until ctx ends.
func (s *Sessions) Run(ctx context.Context, started func()) {
	s.pass(ctx, "reconciling iSCSI sessions at start", slog.LevelError)
	started()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		s.pass(ctx, "reconciling iSCSI sessions", slog.LevelWarn)
	}
}

func (s *Sessions) pass(ctx context.Context, what string, level slog.Level) {
	pctx, cancel := context.WithTimeout(ctx, s.deadline)
	defer cancel()
	if err := s.Reconcile(pctx); err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
		s.Log.Log(ctx, level, what, "err", err)
	}
	s.syncISCSI(pctx)
}

// Kick asks for a pass at once.
func (s *Sessions) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// CvmChanged moves the sessions of a CVM that went down to healthy CVMs, or
// back to one that recovered, and reports the paths of the VMs on its host.
// It is called after the host change is committed; ctx bounds the work
// (clusterd's lifetime).
func (s *Sessions) CvmChanged(ctx context.Context, prev, next *acliv1.Host) {
	up := CvmServes(next)
	s.smu.Lock()
	if up {
		s.upSince[next.CvmIp] = s.Now()
	} else {
		delete(s.upSince, next.CvmIp)
	}
	s.smu.Unlock()
	if up && s.failbackDelay > 0 && !s.noFailback {
		time.AfterFunc(s.failbackDelay, s.Kick)
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, s.deadline)
	err := s.Reconcile(rctx)
	cancel()
	if err != nil && ctx.Err() == nil {
		s.Publish("iscsi", "error", "", []*acliv1.EntityRef{state.HostRef(next)},
			fmt.Sprintf("iSCSI sessions of cvm %s not re-established within %v: %v; retrying", next.CvmIp, s.deadline, err))
		s.Kick()
	} else if err == nil {
		s.Log.Debug("iSCSI sessions reconciled", "cvm", next.CvmIp, "up", up, "took", time.Since(start))
	}
	if next.NodeState != acliv1.NodeState_kNodeDown {
		// The VMs of a failed host are down, not redirected: HA restarts
		// them elsewhere, on the CVM local to them there.
		s.publishVmPaths(next)
	}
}

// publishVmPaths reports where the disks of the VMs on a host whose CVM
// changed state are now served.
func (s *Sessions) publishVmPaths(h *acliv1.Host) {
	var msgs []string
	var refs [][]*acliv1.EntityRef
	s.DB.View(func(tx *state.Tx) {
		cvms := CVMs(tx)
		vms := tx.VmsOn(h.Uuid)
		slices.SortFunc(vms, func(a, b *acliv1.Vm) int {
			return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Uuid, b.Uuid))
		})
		for _, v := range vms {
			if len(v.Disks) == 0 {
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
			refs = append(refs, []*acliv1.EntityRef{state.VmRef(v), state.HostRef(h)})
		}
	})
	for i, msg := range msgs {
		s.Publish("iscsi", "info", "", refs[i], msg)
	}
}

// VmMoved is told of every committed VM change (next nil: deleted). When a
// VM with volume groups powers on or off, migrates or goes, the session
// pass runs at once instead of at its next tick; readers see the new
// sessions meanwhile (Current).
func (s *Sessions) VmMoved(prev, next *acliv1.Vm) {
	if next != nil && state.Placed(prev) == state.Placed(next) && prev.HostUuid == next.HostUuid {
		return
	}
	attached := false
	s.DB.View(func(tx *state.Tx) { attached = len(tx.VolumeGroupsOf(prev.Uuid)) > 0 })
	if attached {
		s.Kick()
	}
}

// CvmServes reports whether a host's CVM serves storage.
func CvmServes(h *acliv1.Host) bool {
	return h.CvmState == acliv1.CvmState_kCvmUp && h.NodeState != acliv1.NodeState_kNodeDown
}

func cvmStateOf(h *acliv1.Host) iscsi.CVMState {
	switch {
	case CvmServes(h):
		return iscsi.CVMUp
	case h.CvmState == acliv1.CvmState_kCvmMaintenance && h.NodeState != acliv1.NodeState_kNodeDown:
		return iscsi.CVMMaintenance
	}
	return iscsi.CVMDown
}

// CVMs lists the cluster's CVMs in hypervisor IP order.
func CVMs(tx *state.Tx) []iscsi.CVM {
	hosts := tx.Hosts()
	slices.SortFunc(hosts, func(a, b *acliv1.Host) int {
		ia, _ := netip.ParseAddr(a.HypervisorIp)
		ib, _ := netip.ParseAddr(b.HypervisorIp)
		return cmp.Or(ia.Compare(ib), strings.Compare(a.Uuid, b.Uuid))
	})
	out := make([]iscsi.CVM, 0, len(hosts))
	for _, h := range hosts {
		if h.CvmIp != "" {
			out = append(out, iscsi.CVM{IP: h.CvmIp, HostUUID: h.Uuid, State: cvmStateOf(h)})
		}
	}
	return out
}

// ---- planning ----

// Plan is the outcome of planning sessions over the whole cluster.
type Plan struct {
	// Changed holds the new record of every VG that changes, in UUID
	// order; Deleted the VGs that go.
	Changed []*acliv1.VolumeGroup
	Deleted []string
	// Writes are the store writes that commit the plan, each comparing the
	// revision its VG had when planned.
	Writes []state.Write
	moves  []iscsi.Move
	// moveVg names the VG of each move (for the event).
	moveVg []*acliv1.VolumeGroup
	// down and up list sessions that lost or regained service.
	down, up []*acliv1.IscsiSession
	// cvmUp is which CVMs serve, as planned.
	cvmUp map[string]bool
}

// plan computes every VG's sessions from the VG configurations (with
// override replacing or, when nil, deleting some), the VM placements and
// the CVM states as tx reads them. It changes nothing.
func (s *Sessions) plan(tx *state.Tx, override map[string]*acliv1.VolumeGroup, now time.Time) *Plan {
	stored := tx.VolumeGroups()
	committed := make(map[string]*acliv1.VolumeGroup, len(stored))
	cfgs := make([]*acliv1.VolumeGroup, 0, len(stored)+len(override))
	var deleted []string
	for _, vg := range stored {
		committed[vg.Uuid] = vg
		if ov, ok := override[vg.Uuid]; ok {
			if ov == nil {
				deleted = append(deleted, vg.Uuid)
				continue
			}
			cfgs = append(cfgs, ov)
			continue
		}
		cfgs = append(cfgs, vg)
	}
	for id, ov := range override {
		if ov != nil && committed[id] == nil {
			cfgs = append(cfgs, ov)
		}
	}
	slices.SortFunc(cfgs, func(a, b *acliv1.VolumeGroup) int { return strings.Compare(a.Uuid, b.Uuid) })

	cvms := CVMs(tx)
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
		atts = appendAttachments(tx, atts, vg)
		// Sessions as recorded (an override's sessions are the stored ones).
		ss := vg.Sessions
		if r := committed[vg.Uuid]; r != nil {
			ss = r.Sessions
		}
		for _, x := range ss {
			k := iscsi.Key{Initiator: x.InitiatorIqn, VG: vg.Uuid, Disk: int(x.DiskIndex)}
			prior[k] = x
			cur = append(cur, iscsi.Session{Key: k, CVM: x.CvmIp, Preferred: x.PreferredCvmIp})
		}
	}
	s.smu.Lock()
	defer s.smu.Unlock()
	failbackTo := func(ip string) bool {
		if s.noFailback {
			return false
		}
		since, ok := s.upSince[ip]
		if !ok {
			// A pass can see the CVM up before CvmChanged records it:
			// its time up starts now, not long ago.
			s.upSince[ip], since = now, now
		}
		return now.Sub(since) >= s.failbackDelay
	}
	next, moves := iscsi.PlanSessions(cvms, atts, cur, failbackTo)

	plan := &Plan{Deleted: deleted, moves: moves, cvmUp: cvmUp}
	byVg := map[string][]iscsi.Session{}
	for _, x := range next {
		byVg[x.VG] = append(byVg[x.VG], x)
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
		r := committed[vg.Uuid]
		if _, overridden := override[vg.Uuid]; !overridden && r != nil && unchanged(r.Sessions, ss, moved, cvmUp, cvmHost) &&
			!slices.ContainsFunc(vg.VmUuids, func(id string) bool { return tx.Vm(id) == nil }) {
			if vgOf != nil {
				vgOf[vg.Uuid] = vg
			}
			continue
		}
		pbs := make([]*acliv1.IscsiSession, len(ss))
		for i, x := range ss {
			p := &acliv1.IscsiSession{
				InitiatorIqn: x.Initiator, TargetIqn: DiskTarget(vg, x.Disk), VolumeGroupUuid: vg.Uuid,
				VolumeGroupName: vg.Name, DiskIndex: int32(x.Disk), CvmIp: x.CVM, CvmHostUuid: cvmHost[x.CVM],
				Port: iscsi.PortExternal, State: acliv1.IscsiSessionState_kSessionActive,
				PreferredCvmIp: x.Preferred,
			}
			if id, ok := strings.CutPrefix(x.Initiator, iscsi.TargetDomain+":vm-"); ok {
				p.VmUuid, p.Port = id, iscsi.PortLocal
			}
			if !cvmUp[x.CVM] {
				p.State = acliv1.IscsiSessionState_kSessionDown
			}
			old := prior[x.Key]
			p.Since = s.sinceLocked(x.Key, old, p, moved[x.Key], ts)
			switch {
			case old != nil && old.State == acliv1.IscsiSessionState_kSessionActive && p.State == acliv1.IscsiSessionState_kSessionDown:
				plan.down = append(plan.down, p)
			case old != nil && old.State == acliv1.IscsiSessionState_kSessionDown && p.State == acliv1.IscsiSessionState_kSessionActive && !moved[x.Key]:
				plan.up = append(plan.up, p)
			}
			pbs[i] = p
		}
		nv := proto.Clone(vg).(*acliv1.VolumeGroup)
		nv.Sessions = pbs
		// Forget VMs deleted while attached.
		nv.VmUuids = slices.DeleteFunc(nv.VmUuids, func(id string) bool { return tx.Vm(id) == nil })
		plan.Changed = append(plan.Changed, nv)
		if vgOf != nil {
			vgOf[vg.Uuid] = nv
		}
	}
	for _, mv := range moves {
		plan.moveVg = append(plan.moveVg, vgOf[mv.Key.VG])
	}
	for _, vg := range plan.Changed {
		plan.Writes = append(plan.Writes, state.Write{Key: state.VgKey(vg.Uuid), Msg: vg, Rev: tx.Rev(state.VgKey(vg.Uuid))})
	}
	for _, id := range deleted {
		plan.Writes = append(plan.Writes, state.Write{Key: state.VgKey(id), Rev: tx.Rev(state.VgKey(id))})
	}
	return plan
}

// sinceLocked is when a planned session started on its CVM: as recorded
// when it stays on the same CVM in the same state, else the time the first
// plan that saw the change gave it (a reader may have been shown it before
// the change was committed), else now.
func (s *Sessions) sinceLocked(k iscsi.Key, old, p *acliv1.IscsiSession, moved bool, now *timestamppb.Timestamp) *timestamppb.Timestamp {
	if old != nil && !moved && old.CvmIp == p.CvmIp && old.Since != nil && old.State == p.State {
		delete(s.stamps, k)
		return old.Since
	}
	if st, ok := s.stamps[k]; ok && st.cvm == p.CvmIp && st.state == p.State {
		return st.since
	}
	s.stamps[k] = stamp{cvm: p.CvmIp, state: p.State, since: now}
	return now
}

// appendAttachments appends a VG's attached (initiator, vDisk) pairs.
func appendAttachments(tx *state.Tx, atts []iscsi.Attachment, vg *acliv1.VolumeGroup) []iscsi.Attachment {
	for _, ini := range vg.ExternalInitiators {
		for _, d := range vg.Disks {
			atts = append(atts, iscsi.Attachment{Key: iscsi.Key{Initiator: ini, VG: vg.Uuid, Disk: int(d.Index)}})
		}
	}
	for _, id := range vg.VmUuids {
		v := tx.Vm(id)
		if !state.Placed(v) {
			continue // a stopped VM has no sessions
		}
		for _, d := range vg.Disks {
			atts = append(atts, iscsi.Attachment{
				Key:    iscsi.Key{Initiator: iscsi.VMInitiator(id), VG: vg.Uuid, Disk: int(d.Index)},
				VMHost: v.HostUuid, LoadBalance: vg.LoadBalanceVmAttachments,
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
	for i, x := range planned {
		o := stored[i]
		if o.InitiatorIqn != x.Initiator || int(o.DiskIndex) != x.Disk || o.CvmIp != x.CVM || o.PreferredCvmIp != x.Preferred ||
			moved[x.Key] || o.CvmHostUuid != host[x.CVM] || (o.State == acliv1.IscsiSessionState_kSessionActive) != up[x.CVM] {
			return false
		}
	}
	return true
}

// DiskTarget is the target IQN of one vDisk of a VG.
func DiskTarget(vg *acliv1.VolumeGroup, disk int) string {
	return vg.IscsiTarget + "-tgt" + strconv.Itoa(disk)
}

// ---- committing ----

// Reconcile plans sessions over the whole cluster and commits the VGs that
// change, retrying the store until ctx ends, then publishes one "iscsi"
// event per session moved, lost or regained.
func (s *Sessions) Reconcile(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var plan *Plan
	s.DB.View(func(tx *state.Tx) { plan = s.plan(tx, nil, s.Now()) })
	if len(plan.Writes) == 0 {
		return nil
	}
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		_, err := s.DB.Update(ctx, func(tx *state.Tx) error {
			for _, w := range plan.Writes {
				if w.Msg == nil {
					tx.Delete(w.Key, w.Rev)
				} else {
					tx.Put(w.Key, w.Msg, w.Rev)
				}
			}
			return nil
		})
		if err == nil {
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
	s.settle(plan)
	s.publish(plan, "")
	return nil
}

// settle forgets the stamps a committed plan recorded: its VGs' sessions
// now carry them.
func (s *Sessions) settle(plan *Plan) {
	s.smu.Lock()
	defer s.smu.Unlock()
	done := make(map[string]bool, len(plan.Changed)+len(plan.Deleted))
	committed := map[iscsi.Key]*timestamppb.Timestamp{}
	for _, vg := range plan.Changed {
		done[vg.Uuid] = true
		for _, x := range vg.Sessions {
			committed[iscsi.Key{Initiator: x.InitiatorIqn, VG: vg.Uuid, Disk: int(x.DiskIndex)}] = x.Since
		}
	}
	for _, id := range plan.Deleted {
		done[id] = true
	}
	for k, st := range s.stamps {
		if since, ok := committed[k]; done[k.VG] && (!ok || since == st.since) {
			delete(s.stamps, k)
		}
	}
}

// publish sends the events of a committed plan.
func (s *Sessions) publish(plan *Plan, taskUUID string) {
	for i, mv := range plan.moves {
		sev := "info"
		if !plan.cvmUp[mv.From] {
			sev = "warning" // a failover, not a rebalance or failback
		}
		s.Publish("iscsi", sev, taskUUID, []*acliv1.EntityRef{VgRef(plan.moveVg[i])}, mv.String())
	}
	for _, x := range plan.down {
		s.Publish("iscsi", "error", taskUUID, sessionRefs(x),
			fmt.Sprintf("session %s/%d down: no cvm is up (waiting on %s)", x.InitiatorIqn, x.DiskIndex, x.CvmIp))
	}
	for _, x := range plan.up {
		s.Publish("iscsi", "info", taskUUID, sessionRefs(x), fmt.Sprintf("session %s/%d up on %s", x.InitiatorIqn, x.DiskIndex, x.CvmIp))
	}
}

func sessionRefs(x *acliv1.IscsiSession) []*acliv1.EntityRef {
	return []*acliv1.EntityRef{{Kind: acliv1.EntityKind_kVolumeGroup, Uuid: x.VolumeGroupUuid, Name: x.VolumeGroupName}}
}

// VgRef names a VG in a task or event.
func VgRef(vg *acliv1.VolumeGroup) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kVolumeGroup, Uuid: vg.Uuid, Name: vg.Name}
}
