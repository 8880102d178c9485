package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	hosts := make([]*acliv1.Host, m.numHosts())
	for i, r := range m.hostRecs() {
		hosts[i] = r.pb
	}
	taking := func(id string) maintenance.Taking {
		if t := m.busyLocked(id); t != nil {
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
		v, h := m.vmAt(st.VM.UUID), m.hostAt(st.Target.UUID)
		if v == nil || h == nil {
			continue
		}
		hs.addLocked(v.pb.Uuid, m.holdLocked(v.pb, h))
		if st.Action == scheduler.ActionMigrate {
			m.addTargetLocked(h.pb.Uuid, t)
		}
	}
}

// evacuation is one run of a host's evacuation: a maintenance.Enter whose
// steps (maintenance.Evacuate) are this manager's migrations and shutdowns.
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
		Drain: maintenance.Drain{Limit: limit, Replan: e.replan},
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
	c := &maintCluster{m: e.m, t: e.t, hs: e.holds}
	h := c.Host(e.host)
	if h == nil {
		return outcome{}, status.Errorf(codes.NotFound, "host %s is gone; the evacuation cannot go on", e.label)
	}
	maintenance.Evacuate(&e.drain.Drain, c, h, e.mode)
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

// finish records EnteredMaintenanceMode (the host's own transition,
// committed with the task's end).
func (e *evacuation) finish() (outcome, error) {
	m, t := e.m, e.t
	m.mu.RLock()
	h := m.hostAt(e.host)
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
	for _, r := range m.vmRecs() {
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

// returnVms carries out a return plan (maintenance.Return orders it,
// maintenance.Bring makes its steps). A VM that cannot return stays where
// it is and is listed.
func (m *Manager) returnVms(ctx context.Context, t *taskRec, host *acliv1.Host, plan *scheduler.Plan, hs *holds) (outcome, error) {
	label := hostLabel(host)
	ret := &maintenance.Return{Limit: m.ops.maxMigrations}
	maintenance.Bring(ret, &maintCluster{m: m, t: t, hs: hs}, host)
	if err := ret.Run(ctx, plan); err != nil {
		return outcome{}, err
	}
	back, on, failures := ret.Tally()
	if len(failures) > 0 {
		return outcome{}, fmt.Errorf("host %s is back in service but %d VM(s) did not return: %s", label, len(failures), joinLines(failures))
	}
	return outcome{message: fmt.Sprintf("host %s exited maintenance mode: %d VM(s) migrated back, %d powered on", label, back, on)}, nil
}

// maintCluster is one maintenance task's view of this manager
// (maintenance.Cluster); hs holds the task's reservations.
type maintCluster struct {
	m  *Manager
	t  *taskRec
	hs *holds
}

// Lock takes the VM for the task and returns its committed record.
func (c *maintCluster) Lock(ctx context.Context, id string) (*acliv1.Vm, int64, error) {
	r, err := c.m.lockVm(ctx, c.t, id)
	if err != nil || r == nil {
		return nil, 0, err
	}
	var v *acliv1.Vm
	var rev int64
	c.m.db.View(func(tx *state.Tx) { v, rev = tx.Vm(id), tx.Rev(vmKey(id)) })
	if v == nil {
		c.Unlock(id)
	}
	return v, rev, nil
}

func (c *maintCluster) Unlock(id string) { c.m.unlockVm(c.t, id) }

func (c *maintCluster) LetGo(id string) {
	c.m.mu.Lock()
	c.hs.releaseLocked(id)
	c.m.mu.Unlock()
}

func (c *maintCluster) Host(id string) (h *acliv1.Host) {
	c.m.db.View(func(tx *state.Tx) { h = tx.Host(id) })
	return h
}

func (c *maintCluster) Vm(id string) (v *acliv1.Vm) {
	c.m.db.View(func(tx *state.Tx) { v = tx.Vm(id) })
	return v
}

func (c *maintCluster) Migrate(ctx context.Context, vm *acliv1.Vm, rev int64, src, dst *acliv1.Host, cold bool, edit func(*acliv1.Vm), percent func() int32) (fmt.Stringer, error) {
	id := vm.Uuid
	mv := move{vm: vm, rev: rev, src: src, dst: dst, edit: edit, release: func() { c.hs.releaseLocked(id) }}
	if cold {
		return offline{}, c.m.offlineMigrate(ctx, c.t, mv)
	}
	return c.m.liveMigrate(ctx, c.t, mv, percent)
}

func (c *maintCluster) TargetGone(err error) bool {
	var gone *targetUnavailableError
	return errors.As(err, &gone)
}

func (c *maintCluster) Shutdown(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	return c.m.drv.Shutdown(ctx, h, vm)
}

func (c *maintCluster) PowerOn(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	return c.m.drv.PowerOn(ctx, h, vm)
}

func (c *maintCluster) Record(ctx context.Context, next *acliv1.Vm, rev int64, release bool) error {
	var fn func()
	if id := next.Uuid; release {
		fn = func() { c.hs.releaseLocked(id) }
	}
	return c.m.putVm(ctx, next, rev, fn)
}

func (c *maintCluster) Progress(percent int32, format string, args ...any) {
	c.m.progress(c.t, percent, format, args...)
}

func (c *maintCluster) Message(percent int32, format string, args ...any) {
	c.m.addMessage(c.t, percent, format, args...)
}

func (c *maintCluster) Event(vm *acliv1.Vm, h *acliv1.Host, format string, args ...any) {
	c.m.publish("vm", "info", c.m.taskUUID(c.t), []*acliv1.EntityRef{vmRef(vm), hostRef(h)}, format, args...)
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
	c, err := maintenance.Cvm(cur, enter, func() []apierr.Violation {
		return m.redundancyLocked(h, "take out the CVM of", true)
	})
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	refs := []*acliv1.EntityRef{hostRef(cur), {Kind: acliv1.EntityKind_kCvm, Uuid: cur.Uuid, Name: cur.CvmIp}}
	t := m.newTaskLocked(op, refs, cur.Uuid)
	m.mu.Unlock()
	if c.Noop != "" {
		return m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) { return outcome{message: c.Noop}, nil })
	}
	task, err := m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: hostKey(cur.Uuid), msg: c.Next, rev: rev}},
			message: c.Message,
		}, nil
	})
	if err == nil {
		m.publish("cvm", "info", task.Uuid, refs, "%s", c.Message)
		m.cvmStateChanged(cur, c.Next)
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
