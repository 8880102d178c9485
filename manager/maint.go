package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// Host maintenance: the check, enter (evacuate) and exit (bring the VMs
// back), and CVM maintenance. A host's evacuation is planned whole by
// scheduler.PlanEvacuation before anything moves — the same plan the check
// shows — and the target memory of every move is reserved at once, so
// nothing placed meanwhile can invalidate it.

// maintHostLocked is what maintenance.Preflight needs of host h: whether
// it is down, held by a task (with busy), receiving VMs, and what the
// redundancy budget says of taking it out.
func (m *Manager) maintHostLocked(h *hostRec, busy bool) maintenance.Host {
	out := maintenance.Host{Name: h.pb.Name, Label: hostLabel(h.pb), Down: h.pb.NodeState == acliv1.NodeState_kNodeDown}
	if t := m.heldLocked(h.pb.Uuid); busy && t != nil {
		out.BusyWith = fmt.Sprintf("running task %s (%s)", t.PB.Uuid, t.PB.Operation)
	}
	for _, t := range m.ops.targets[h.pb.Uuid] {
		out.Targets = append(out.Targets, fmt.Sprintf("running task %s (%s of %s)", t.PB.Uuid, t.PB.Operation, t.PB.Entities[0].Name))
	}
	if vs := m.redundancyLocked(h, "take out", false); len(vs) > 0 {
		out.Redundancy, out.RedundancySubject = vs[0].Description, vs[0].Subject
	}
	return out
}

// refusalsLocked lists why host h may not start going out of service now:
// it is down, it is receiving VMs, or the redundancy budget is spent.
func (m *Manager) refusalsLocked(h *hostRec) []apierr.Violation {
	return maintenance.Violations(maintenance.Preflight(m.maintHostLocked(h, false), nil))
}

// redundancyLocked applies the RF-1 budget to taking host h or its CVM
// out (maintenance.Budget), counting the hosts running tasks take out.
func (m *Manager) redundancyLocked(h *hostRec, what string, cvm bool) []apierr.Violation {
	hosts := make([]*acliv1.Host, len(m.hostList))
	for i, r := range m.hostList {
		hosts[i] = r.pb
	}
	taking := func(id string) maintenance.Taking {
		if t := m.busy[id]; t != nil {
			return maintenance.TakingOp(t.PB.Operation)
		}
		return maintenance.TakingNothing
	}
	return maintenance.Budget(int(m.clusterRecord().RedundancyFactor), hosts, taking, h.pb, cvm, what)
}

// EnterMaintenanceModeCheck is the preflight: it changes nothing.
func (s hostService) EnterMaintenanceModeCheck(ctx context.Context, req *acliv1.EnterMaintenanceModeRequest) (*acliv1.MaintenanceCheck, error) {
	m := s.m
	action, err := maintenance.NonMigratableAction(req.NonMigratableVmAction)
	if err != nil {
		return nil, err
	}
	mode, err := maintenance.Mode(req.Mode)
	if err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	h, err := m.hostLocked("host", req.Host)
	if err != nil {
		return nil, err
	}
	out := &acliv1.MaintenanceCheck{Host: hostRef(h.pb)}
	if h.pb.NodeState == acliv1.NodeState_EnteredMaintenanceMode {
		out.Ok, out.AlreadyInMaintenance = true, true
		return out, nil
	}
	plan, err := maintenance.Plan(m.snapshotLocked(), h.pb.Uuid, action, mode)
	if err != nil {
		return nil, apierr.Internal("planning the evacuation", err)
	}
	out.Plan = maintenance.PlanSteps(plan)
	vmOf := map[string]*acliv1.EntityRef{}
	for _, b := range plan.Blockers {
		vmOf["vm:"+b.VM.Name] = &acliv1.EntityRef{Kind: acliv1.EntityKind_kVm, Uuid: b.VM.UUID, Name: b.VM.Name}
	}
	for _, b := range maintenance.Preflight(m.maintHostLocked(h, true), plan) {
		out.Blockers = append(out.Blockers, &acliv1.Blocker{Type: b.Type, Vm: vmOf[b.Subject], Reason: b.Reason, Override: b.Override})
	}
	out.Ok = len(out.Blockers) == 0
	return out, nil
}

// EnterMaintenanceMode evacuates a host and takes it out of service.
func (s hostService) EnterMaintenanceMode(ctx context.Context, req *acliv1.EnterMaintenanceModeRequest) (*acliv1.Task, error) {
	m := s.m
	action, err := maintenance.NonMigratableAction(req.NonMigratableVmAction)
	if err != nil {
		return nil, err
	}
	mode, err := maintenance.Mode(req.Mode)
	if err != nil {
		return nil, err
	}
	if req.TimeoutSeconds < 0 {
		return nil, apierr.BadField("timeout", "timeout %d must not be negative (0 = none), e.g. timeout=600", req.TimeoutSeconds)
	}
	limit := m.ops.maxMigrations
	switch {
	case req.MaxConcurrentMigrations < 0 || int(req.MaxConcurrentMigrations) > limit:
		return nil, apierr.BadField("max_concurrent_migrations", "max_concurrent_migrations %d is out of range; use 1 to %d (clusterd --max-migrations-per-host)", req.MaxConcurrentMigrations, limit)
	case req.MaxConcurrentMigrations > 0:
		limit = int(req.MaxConcurrentMigrations)
	}
	m.mu.Lock()
	h, err := m.hostLocked("host", req.Host)
	if err == nil {
		err = m.checkBusyLocked("host", h.pb.Name, h.pb.Uuid)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	hpb := h.pb
	refs := []*acliv1.EntityRef{hostRef(hpb)}
	if hpb.NodeState == acliv1.NodeState_EnteredMaintenanceMode {
		t := m.newTaskLocked(acliv1.TaskOperation_kHostEnterMaintenanceMode, refs, hpb.Uuid)
		m.mu.Unlock()
		return m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) {
			return outcome{message: fmt.Sprintf("host %s is already in maintenance mode", hostLabel(hpb))}, nil
		})
	}
	if vs := m.refusalsLocked(h); len(vs) > 0 {
		m.mu.Unlock()
		return nil, apierr.FailedPrecondition(fmt.Sprintf("host %s cannot enter maintenance mode", hostLabel(hpb)), vs...)
	}
	plan, err := maintenance.Plan(m.snapshotLocked(), hpb.Uuid, action, mode)
	if err != nil {
		m.mu.Unlock()
		return nil, apierr.Internal("planning the evacuation", err)
	}
	t := m.newTaskLocked(acliv1.TaskOperation_kHostEnterMaintenanceMode, refs, hpb.Uuid)
	hs := &holds{}
	m.holdPlanLocked(t, plan, hs)
	t.Release = func() { hs.releaseAllLocked(); m.dropTargetsLocked(t) }
	m.mu.Unlock()

	if hpb.NodeState != acliv1.NodeState_EnteringMaintenanceMode {
		next, err := m.putHost(ctx, hpb.Uuid, state.EnterMaintenance)
		if err != nil {
			m.mu.Lock()
			m.forgetLocked(t)
			m.mu.Unlock()
			return nil, err
		}
		m.publish("host", "info", t.PB.Uuid, refs, "host %s is entering maintenance mode", hostLabel(next))
	}
	e := m.newEvacuation(t, hpb, action, limit, hs)
	e.mode = mode
	return m.launch(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		if req.TimeoutSeconds > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutSeconds)*time.Second)
			defer cancel()
		}
		return e.run(ctx, plan)
	})
}

// holdPlanLocked reserves the target memory of every migration in a plan.
func (m *Manager) holdPlanLocked(t *taskRec, plan *scheduler.Plan, hs *holds) {
	for _, st := range plan.Steps {
		if st.Action != scheduler.ActionMigrate && st.Action != scheduler.ActionRestart {
			continue
		}
		v, h := m.vms[st.VM.UUID], m.hosts[st.Target.UUID]
		if v == nil || h == nil {
			continue
		}
		hs.addLocked(v.pb.Uuid, m.holdLocked(v.pb.Uuid, h, state.MemoryReserved(v.pb)))
		if st.Action == scheduler.ActionMigrate {
			m.addTargetLocked(h.pb.Uuid, t)
		}
	}
}

// evacuation is one run of a host's evacuation: a maintenance.Drain whose
// steps are this manager's migrations and shutdowns.
type evacuation struct {
	m      *Manager
	t      *taskRec
	host   string
	label  string
	action scheduler.NonMigratableAction
	mode   acliv1.MaintenanceMode
	holds  *holds
	drain  maintenance.Enter
}

func (m *Manager) newEvacuation(t *taskRec, host *acliv1.Host, action scheduler.NonMigratableAction, limit int, hs *holds) *evacuation {
	e := &evacuation{m: m, t: t, host: host.Uuid, label: hostLabel(host), action: action, holds: hs}
	e.drain = maintenance.Enter{
		Drain: maintenance.Drain{Limit: limit, Replan: e.replan, Migrate: e.migrateOne, Shutdown: e.shutdownOne},
		Label: e.label,
		Log:   func(line string) { m.addMessage(t, -1, "%s", line) },
		AwaitArrivals: func(ctx context.Context) error {
			return m.awaitArrivals(ctx, e.host)
		},
		Plan: func() (*scheduler.Plan, error) {
			m.mu.RLock()
			defer m.mu.RUnlock()
			return maintenance.Plan(m.snapshotLocked(), e.host, e.action, e.mode)
		},
	}
	return e
}

// run carries out the plan (maintenance.Enter) and records
// EnteredMaintenanceMode once nothing is left on the host; otherwise what
// is left is listed and the host stays EnteringMaintenanceMode.
func (e *evacuation) run(ctx context.Context, plan *scheduler.Plan) (outcome, error) {
	left, err := e.drain.Run(ctx, plan)
	if err != nil {
		return outcome{}, e.interrupted(err)
	}
	if vs := maintenance.Violations(left); len(vs) > 0 {
		return outcome{}, apierr.FailedPrecondition(fmt.Sprintf("host %s stays EnteringMaintenanceMode: %d VM(s) cannot leave", e.label, len(vs)), vs...)
	}
	return e.finish()
}

// replan waits for the VMs powering on or restarting here, then plans
// what is on the host like the first time and reserves the kept plan.
func (e *evacuation) replan(ctx context.Context, keep func(*scheduler.Plan) bool) (*scheduler.Plan, error) {
	m := e.m
	if err := m.awaitArrivals(ctx, e.host); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	plan, err := maintenance.Plan(m.snapshotLocked(), e.host, e.action, e.mode)
	if err != nil || !keep(plan) {
		return nil, err
	}
	m.holdPlanLocked(e.t, plan, e.holds)
	return plan, nil
}

func (e *evacuation) interrupted(err error) error {
	if ctxErr := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded); !ctxErr {
		return err
	}
	migrated, shutdown := e.drain.Moved()
	if err == context.DeadlineExceeded {
		return status.Errorf(codes.DeadlineExceeded, "timed out after moving %d VM(s) off %s; the host stays EnteringMaintenanceMode (run host.enter_maintenance_mode again to finish, or host.exit_maintenance_mode)", migrated+shutdown, e.label)
	}
	return fmt.Errorf("evacuation of %s interrupted after %d VM(s) moved: %w", e.label, migrated+shutdown, err)
}

// take locks a planned VM and returns its record if it is still running on
// the host; otherwise it gives up the VM's reservation.
func (e *evacuation) take(ctx context.Context, id string) (*acliv1.Vm, int64, bool) {
	m, t := e.m, e.t
	r, err := m.lockVm(ctx, t, id)
	if err != nil || r == nil {
		m.mu.Lock()
		e.holds.releaseLocked(id)
		m.mu.Unlock()
		return nil, 0, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !placed(r.pb) || r.pb.HostUuid != e.host {
		e.holds.releaseLocked(id)
		m.releaseLocked(t, id)
		return nil, 0, false
	}
	return r.pb, r.rev, true
}

func (e *evacuation) migrateOne(ctx context.Context, s scheduler.Step) (maintenance.Result, string) {
	m, t := e.m, e.t
	vm, rev, ok := e.take(ctx, s.VM.UUID)
	if !ok {
		return maintenance.Gone, ""
	}
	defer m.unlockVm(t, vm.Uuid)
	m.mu.RLock()
	src, dst := m.hosts[e.host].pb, m.hosts[s.Target.UUID].pb
	m.mu.RUnlock()
	id := vm.Uuid
	mv := move{vm: vm, rev: rev, src: src, dst: dst,
		release: func() { e.holds.releaseLocked(id) },
		edit: func(v *acliv1.Vm) {
			if v.OriginalHostUuid == "" {
				v.OriginalHostUuid = e.host
			}
		}}
	var res fmt.Stringer
	var err error
	if e.mode == acliv1.MaintenanceMode_kMaintenanceCold {
		res, err = offline{}, m.offlineMigrate(ctx, t, mv)
	} else {
		res, err = m.liveMigrate(ctx, t, mv, e.drain.Percent)
	}
	if err != nil {
		m.mu.Lock()
		e.holds.releaseLocked(id)
		m.mu.Unlock()
		if ctx.Err() != nil {
			return maintenance.Gone, ""
		}
		var gone *targetUnavailableError
		if errors.As(err, &gone) {
			m.addMessage(t, e.drain.Percent(), "vm %s not moved yet: %v", vm.Name, err)
			return maintenance.Retarget, ""
		}
		m.addMessage(t, e.drain.Percent(), "vm %s did not move: %v", vm.Name, err)
		return maintenance.Failed, fmt.Sprintf("vm %s: migration to %s failed: %v", vm.Name, hostLabel(dst), err)
	}
	m.addMessage(t, e.drain.Percent(), "vm %s migrated to %s (%s)", vm.Name, hostLabel(dst), res)
	return maintenance.Moved, ""
}

// shutdownOne ACPI-shuts-down an agent or non-migratable VM; it is marked
// to power on again here when the host exits maintenance.
func (e *evacuation) shutdownOne(ctx context.Context, s scheduler.Step) (maintenance.Result, string) {
	m, t := e.m, e.t
	vm, rev, ok := e.take(ctx, s.VM.UUID)
	if !ok {
		return maintenance.Gone, ""
	}
	defer m.unlockVm(t, vm.Uuid)
	m.mu.RLock()
	src := m.hosts[e.host].pb
	m.mu.RUnlock()
	m.progress(t, e.drain.Percent(), "shutting down vm %s (%s)", vm.Name, s.Reason)
	if err := m.drv.Shutdown(ctx, src, vm); err != nil {
		if ctx.Err() != nil {
			return maintenance.Gone, ""
		}
		return maintenance.Failed, fmt.Sprintf("vm %s: shutdown failed: %v", vm.Name, err)
	}
	next := proto.Clone(vm).(*acliv1.Vm)
	next.PowerState, next.HostUuid, next.HostName, next.OriginalHostUuid = acliv1.PowerState_kOff, "", "", e.host
	if err := m.putVm(ctx, next, rev, nil); err != nil {
		return maintenance.Failed, fmt.Sprintf("vm %s was shut down but recording it failed: %v", vm.Name, err)
	}
	m.publish("vm", "info", m.taskUUID(t), []*acliv1.EntityRef{vmRef(vm), hostRef(src)}, "vm %s shut down for the maintenance of %s (%s)", vm.Name, hostLabel(src), s.Reason)
	m.addMessage(t, e.drain.Percent(), "vm %s shut down (%s); it powers on again when %s exits maintenance mode", vm.Name, s.Reason, src.Name)
	return maintenance.Moved, ""
}

// finish records EnteredMaintenanceMode (the host's own transition,
// committed with the task's end).
func (e *evacuation) finish() (outcome, error) {
	m, t := e.m, e.t
	m.mu.RLock()
	h := m.hosts[e.host]
	cur, rev := h.pb, h.rev
	m.mu.RUnlock()
	if cur.NodeState == acliv1.NodeState_kNodeDown {
		return outcome{}, status.Errorf(codes.Aborted, "host %s went down during its evacuation; HA restarts its VMs", e.label)
	}
	next, err := state.TransitionHost(cur, state.MaintenanceEntered)
	if err != nil {
		return outcome{}, hostStateError(err)
	}
	migrated, shutdown := e.drain.Moved()
	msg := fmt.Sprintf("host %s entered maintenance mode: %d VM(s) migrated, %d shut down", e.label, migrated, shutdown)
	return outcome{
		writes: []write{{key: hostKey(e.host), msg: next, rev: rev}},
		apply: func(rev int64) {
			m.putHostLocked(next, rev)
			m.publish("host", "info", t.PB.Uuid, []*acliv1.EntityRef{hostRef(next)}, "host %s entered maintenance mode", e.label)
		},
		message: msg,
	}, nil
}

// ExitMaintenanceMode returns the host to service and brings back the VMs
// that left it: migrated ones live-migrate back, shut-down ones power on.
func (s hostService) ExitMaintenanceMode(ctx context.Context, req *acliv1.ExitMaintenanceModeRequest) (*acliv1.Task, error) {
	m := s.m
	m.mu.Lock()
	h, err := m.hostLocked("host", req.Host)
	if err == nil {
		err = m.checkBusyLocked("host", h.pb.Name, h.pb.Uuid)
	}
	if err == nil && h.pb.NodeState == acliv1.NodeState_kNodeDown {
		err = apierr.Precondition("HOST_DOWN", "host:"+h.pb.Name, "host %s is down; recover it first", hostLabel(h.pb))
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	hpb := h.pb
	refs := []*acliv1.EntityRef{hostRef(hpb)}
	var returning []string
	for _, r := range m.vmSorted {
		if r.pb.OriginalHostUuid == hpb.Uuid {
			returning = append(returning, r.pb.Uuid)
		}
	}
	t := m.newTaskLocked(acliv1.TaskOperation_kHostExitMaintenanceMode, refs, hpb.Uuid)
	if hpb.NodeState == acliv1.NodeState_AcropolisNormal && len(returning) == 0 {
		m.mu.Unlock()
		return m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) {
			return outcome{message: fmt.Sprintf("host %s is not in maintenance mode", hostLabel(hpb))}, nil
		})
	}
	// Plan against the host as it will be (in service) and reserve its
	// memory for every returning VM before anything else can take it.
	snap := m.snapshotLocked()
	for i := range snap.Hosts {
		if snap.Hosts[i].UUID == hpb.Uuid {
			snap.Hosts[i].State = scheduler.NodeNormal
		}
	}
	plan, err := scheduler.PlanReturn(snap, hpb.Uuid, returning, scheduler.Options{})
	if err != nil {
		m.forgetLocked(t)
		m.mu.Unlock()
		return nil, apierr.Internal("planning the return", err)
	}
	hs := &holds{}
	m.holdPlanLocked(t, plan, hs)
	t.Release = func() { hs.releaseAllLocked(); m.dropTargetsLocked(t) }
	m.mu.Unlock()
	if hpb.NodeState != acliv1.NodeState_AcropolisNormal {
		next, err := m.putHost(ctx, hpb.Uuid, state.ExitMaintenance)
		if err != nil {
			m.mu.Lock()
			m.forgetLocked(t)
			m.mu.Unlock()
			return nil, err
		}
		m.publish("host", "info", t.PB.Uuid, refs, "host %s exited maintenance mode", hostLabel(next))
	}
	return m.launch(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		return m.returnVms(ctx, t, hpb, plan, hs)
	})
}

// returnVms carries out a return plan (maintenance.Return orders it); the
// steps are this manager's power-ons and migrations. A VM that cannot
// return stays where it is and is listed.
func (m *Manager) returnVms(ctx context.Context, t *taskRec, host *acliv1.Host, plan *scheduler.Plan, hs *holds) (outcome, error) {
	label := hostLabel(host)
	ret := &maintenance.Return{Limit: m.ops.maxMigrations, Agent: m.isAgent}
	failed := func(format string, args ...any) (maintenance.Result, string) {
		line := fmt.Sprintf(format, args...)
		m.addMessage(t, -1, "%s", line)
		return maintenance.Failed, line
	}
	clearOrigin := func(v *acliv1.Vm) {
		if v.OriginalHostUuid == host.Uuid {
			v.OriginalHostUuid = ""
		}
	}
	letGo := func(id string) {
		m.mu.Lock()
		hs.releaseLocked(id)
		m.mu.Unlock()
	}
	// take locks a VM; ok is false when it no longer names the host as
	// where it came from.
	take := func(id string) (*acliv1.Vm, int64, bool) {
		r, err := m.lockVm(ctx, t, id)
		if err != nil || r == nil {
			letGo(id)
			return nil, 0, false
		}
		m.mu.RLock()
		defer m.mu.RUnlock()
		return r.pb, r.rev, r.pb.OriginalHostUuid == host.Uuid
	}
	ret.PowerOn = func(ctx context.Context, s scheduler.Step) (maintenance.Result, string) {
		v, rev, ok := take(s.VM.UUID)
		if v == nil {
			return maintenance.Gone, ""
		}
		defer m.unlockVm(t, v.Uuid)
		if !ok || placed(v) {
			letGo(v.Uuid)
			return maintenance.Gone, ""
		}
		m.progress(t, ret.Percent(), "powering on vm %s on %s", v.Name, label)
		if err := m.drv.PowerOn(ctx, host, v); err != nil {
			letGo(v.Uuid)
			return failed("vm %s did not power on on %s: %v", v.Name, label, err)
		}
		next := proto.Clone(v).(*acliv1.Vm)
		next.PowerState, next.HostUuid, next.HostName = acliv1.PowerState_kOn, host.Uuid, host.Name
		clearOrigin(next)
		id := v.Uuid
		if err := m.putVm(ctx, next, rev, func() { hs.releaseLocked(id) }); err != nil {
			return failed("vm %s powered on but recording it failed: %v", v.Name, err)
		}
		m.addMessage(t, ret.Percent(), "vm %s powered on on %s", v.Name, label)
		return maintenance.Moved, ""
	}
	ret.MigrateBack = func(ctx context.Context, s scheduler.Step) (maintenance.Result, string) {
		v, rev, ok := take(s.VM.UUID)
		if v == nil {
			return maintenance.Gone, ""
		}
		defer m.unlockVm(t, v.Uuid)
		m.mu.RLock()
		src := m.hosts[v.HostUuid]
		m.mu.RUnlock()
		if !ok || !placed(v) || src == nil || v.HostUuid == host.Uuid {
			letGo(v.Uuid)
			return maintenance.Gone, ""
		}
		id := v.Uuid
		res, err := m.liveMigrate(ctx, t, move{vm: v, rev: rev, src: src.pb, dst: host,
			release: func() { hs.releaseLocked(id) }, edit: clearOrigin}, ret.Percent)
		if err != nil {
			letGo(id)
			if ctx.Err() != nil {
				return maintenance.Gone, ""
			}
			return failed("vm %s did not return to %s: %v", v.Name, label, err)
		}
		m.addMessage(t, ret.Percent(), "vm %s migrated back to %s (%s)", v.Name, label, res)
		return maintenance.Moved, ""
	}
	ret.Stay = func(ctx context.Context, s scheduler.Step) string {
		why := ""
		if v, rev, ok := take(s.VM.UUID); v != nil {
			if ok {
				next := proto.Clone(v).(*acliv1.Vm)
				clearOrigin(next)
				if err := m.putVm(ctx, next, rev, nil); err != nil {
					_, why = failed("vm %s: %v", v.Name, err)
				}
			}
			m.unlockVm(t, v.Uuid)
		}
		m.addMessage(t, -1, "%s; it stays where it is", s.Reason)
		return why
	}
	if err := ret.Run(ctx, plan); err != nil {
		return outcome{}, err
	}
	back, on, failures := ret.Tally()
	if len(failures) > 0 {
		return outcome{}, fmt.Errorf("host %s is back in service but %d VM(s) did not return: %s", label, len(failures), joinLines(failures))
	}
	return outcome{message: fmt.Sprintf("host %s exited maintenance mode: %d VM(s) migrated back, %d powered on", label, back, on)}, nil
}

func (m *Manager) isAgent(id string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.vms[id]
	return r != nil && r.pb.AgentVm
}

// EnterCvmMaintenanceMode takes a host's CVM out of storage service. It
// counts against the same redundancy budget as host maintenance.
func (s hostService) EnterCvmMaintenanceMode(ctx context.Context, req *acliv1.CvmMaintenanceRequest) (*acliv1.Task, error) {
	return s.m.cvmMaintenance(ctx, req.Host, true)
}

// ExitCvmMaintenanceMode returns a host's CVM to storage service.
func (s hostService) ExitCvmMaintenanceMode(ctx context.Context, req *acliv1.CvmMaintenanceRequest) (*acliv1.Task, error) {
	return s.m.cvmMaintenance(ctx, req.Host, false)
}

func (m *Manager) cvmMaintenance(ctx context.Context, ref string, enter bool) (*acliv1.Task, error) {
	op := acliv1.TaskOperation_kCvmExitMaintenanceMode
	if enter {
		op = acliv1.TaskOperation_kCvmEnterMaintenanceMode
	}
	m.mu.Lock()
	h, err := m.hostLocked("host", ref)
	if err == nil {
		err = m.checkBusyLocked("host", h.pb.Name, h.pb.Uuid)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur, rev := h.pb, h.rev
	cvm := fmt.Sprintf("cvm %s of host %s", cur.CvmIp, hostLabel(cur))
	noop, asked := "", state.WithIntent(cur).CvmMaintenanceRequested
	switch {
	case enter && asked:
		noop = cvm + " is already in maintenance mode"
	case !enter && !asked:
		noop = cvm + " is not in maintenance mode"
	case cur.NodeState == acliv1.NodeState_kNodeDown:
		err = apierr.Precondition("HOST_DOWN", "host:"+cur.Name, "host %s is down; recover it first", hostLabel(cur))
	case enter && cur.CvmState == acliv1.CvmState_kCvmDown:
		err = apierr.Precondition("CVM_DOWN", "cvm:"+cur.CvmIp, "%s is down; it is already out of service", cvm)
	case enter:
		if vs := m.redundancyLocked(h, "take out the CVM of", true); len(vs) > 0 {
			err = apierr.FailedPrecondition(fmt.Sprintf("%s cannot enter maintenance mode", cvm), vs...)
		}
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	refs := []*acliv1.EntityRef{hostRef(cur), {Kind: acliv1.EntityKind_kCvm, Uuid: cur.Uuid, Name: cur.CvmIp}}
	t := m.newTaskLocked(op, refs, cur.Uuid)
	m.mu.Unlock()
	if noop != "" {
		return m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) { return outcome{message: noop}, nil })
	}
	change := state.ExitCvmMaintenance
	if enter {
		change = state.EnterCvmMaintenance
	}
	next, err := state.TransitionHost(cur, change)
	if err != nil {
		m.mu.Lock()
		m.forgetLocked(t)
		m.mu.Unlock()
		return nil, hostStateError(err)
	}
	msg := cvm + " entered maintenance mode"
	if !enter {
		msg = cvm + " exited maintenance mode"
	}
	task, err := m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: hostKey(cur.Uuid), msg: next, rev: rev}},
			apply:   func(rev int64) { m.putHostLocked(next, rev) },
			message: msg,
		}, nil
	})
	if err == nil {
		m.publish("cvm", "info", task.Uuid, refs, "%s", msg)
		m.cvmStateChanged(cur, next)
	}
	return task, err
}

// offline is how a cold move reads in the task log.
type offline struct{}

func (offline) String() string { return "offline" }

// interruptedTaskError is the error of a task that a previous run of
// clusterd left running. Most tasks commit their changes with their end, so
// they changed nothing; the long operations commit each VM as it moves, so
// the model is consistent but partly done, and a retry finishes the job.
func interruptedTaskError(pb *acliv1.Task) string {
	name := ""
	if len(pb.Entities) > 0 {
		name = pb.Entities[0].Name
	}
	switch pb.Operation {
	case acliv1.TaskOperation_kHostEnterMaintenanceMode:
		return fmt.Sprintf("clusterd restarted during the evacuation of host %s; the VMs that had moved are recorded on their new hosts and the host stays EnteringMaintenanceMode — run host.enter_maintenance_mode %s again to finish (or host.exit_maintenance_mode %s)", name, name, name)
	case acliv1.TaskOperation_kHostExitMaintenanceMode:
		return fmt.Sprintf("clusterd restarted while VMs were returning to host %s; the host is in service and the VMs that had returned are recorded there — run host.exit_maintenance_mode %s again to bring back the others", name, name)
	case acliv1.TaskOperation_kHaFailover:
		return fmt.Sprintf("clusterd restarted during the HA restart of host %s's VMs; it resumes on start", name)
	case acliv1.TaskOperation_kVmMigrate:
		return fmt.Sprintf("clusterd restarted during the migration of vm %s; it stays on the host it is recorded on — retry it", name)
	}
	return "clusterd restarted while the task was running; it did not complete and changed nothing — retry it"
}
