package maintenance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// Host maintenance: the check, enter (evacuate) and exit (bring the VMs
// back). A host's evacuation is planned whole (Plan) before anything moves
// — the same plan the check shows — and the target memory of every move is
// reserved in the same critical section, so nothing placed meanwhile can
// invalidate it.

// Manager is what host maintenance needs of the rest of the manager: its
// lock, under which plans are made and reserved, and its task engine.
type Manager interface {
	// Locked runs fn holding the manager's lock: what fn reads, begins and
	// reserves through l stays true until it returns.
	Locked(fn func(l Locked) error) error
	// Read runs fn holding the manager's lock for reading.
	Read(fn func(r Reader))
	// Launch persists t, returns it and runs w in the background; the
	// writes of w's Done are committed with the task's end.
	Launch(ctx context.Context, t *tasks.Task, w func(ctx context.Context) (Done, error)) (*acliv1.Task, error)
	// Forget drops a task Locked began that will not run.
	Forget(t *tasks.Task)
	// SetHost commits change c to host id (state.TransitionHost), computed
	// again from the record if a concurrent change got there first.
	SetHost(ctx context.Context, id string, c state.HostChange) (*acliv1.Host, error)
	// AwaitArrivals waits until no VM is on its way to host (a power-on or
	// HA restart there that started before it closed).
	AwaitArrivals(ctx context.Context, host string) error
	// Steps is task t's Cluster: its VM locks, reservations and moves.
	Steps(t *tasks.Task) Cluster
	// Log keeps a line in t's messages.
	Log(t *tasks.Task, line string)
	// MaxMigrations bounds the migrations of one host at once.
	MaxMigrations() int
	// Interrupted are the evacuations a previous leader left running
	// (Resumable), oldest first.
	Interrupted() []*tasks.Task
	// CarryOn runs w in the background as the rest of t, a task already
	// persisted, and records its end.
	CarryOn(t *tasks.Task, w func(ctx context.Context) (Done, error))
}

// Reader is what may be read under the manager's lock.
type Reader interface {
	// Holder is the running task that holds an entity (nil if none).
	Holder(id string) *tasks.Task
	// Targets are the running tasks moving VMs onto host.
	Targets(host string) []*tasks.Task
	// Snapshot is the cluster as placement sees it, reservations counted.
	Snapshot() *scheduler.Snapshot
}

// Locked is what may be read, begun and reserved under the manager's lock.
type Locked interface {
	Reader
	// Begin starts a task of op naming refs and holding the locks.
	Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *tasks.Task
	// Adopt makes t, a task a previous leader left running, this
	// manager's: it holds locks (which a commit took for it), and they and
	// its reservations end with it.
	Adopt(t *tasks.Task, locks ...string)
	// Reserve holds, for t, the target memory of each of plan's moves and
	// restarts until the VM lands there or t lets it go or ends; t becomes
	// a target of the hosts it migrates VMs to.
	Reserve(t *tasks.Task, plan *scheduler.Plan)
}

// Done is how a task's work ended: Writes committed with its end, then
// Committed run; Message is its closing line.
type Done struct {
	Writes    []state.Write
	Message   string
	Committed func()
}

// hostBlockers is what Preflight needs of host h: whether it is down, held
// by a task (with busy), receiving VMs, and what the redundancy budget says
// of taking it out.
func (s *Service) hostBlockers(r Reader, h *acliv1.Host, busy bool) Host {
	out := Host{Name: h.Name, Label: label(h), Down: h.NodeState == acliv1.NodeState_kNodeDown}
	if t := r.Holder(h.Uuid); busy && t != nil {
		out.BusyWith = fmt.Sprintf("running task %s (%s)", t.PB().Uuid, t.PB().Operation)
	}
	for _, t := range r.Targets(h.Uuid) {
		out.Targets = append(out.Targets, fmt.Sprintf("running task %s (%s of %s)", t.PB().Uuid, t.PB().Operation, t.PB().Entities[0].Name))
	}
	if vs := s.lockedBudget(r, h, "take out", false); len(vs) > 0 {
		out.Redundancy, out.RedundancySubject = vs[0].Description, vs[0].Subject
	}
	return out
}

// lockedBudget is Budget with what the running tasks take out read from r.
func (s *Service) lockedBudget(r Reader, h *acliv1.Host, what string, cvm bool) []apierr.Violation {
	var hosts []*acliv1.Host
	var rf int
	s.DB.View(func(tx *state.Tx) { hosts, rf = tx.Hosts(), int(tx.Cluster().GetRedundancyFactor()) })
	taking := func(id string) Taking {
		if t := r.Holder(id); t != nil {
			return TakingOp(t.PB().Operation)
		}
		return TakingNothing
	}
	return Budget(rf, hosts, taking, h, cvm, what)
}

// EnterMaintenanceModeCheck is the preflight: it changes nothing.
func (s *Service) EnterMaintenanceModeCheck(ctx context.Context, req *acliv1.EnterMaintenanceModeRequest) (*acliv1.MaintenanceCheck, error) {
	action, err := NonMigratableAction(req.NonMigratableVmAction)
	if err != nil {
		return nil, err
	}
	mode, err := Mode(req.Mode)
	if err != nil {
		return nil, err
	}
	var out *acliv1.MaintenanceCheck
	s.M.Read(func(r Reader) {
		var h *acliv1.Host
		if h, _, err = s.findHost(req.Host); err != nil {
			return
		}
		out = &acliv1.MaintenanceCheck{Host: state.HostRef(h)}
		if h.NodeState == acliv1.NodeState_EnteredMaintenanceMode {
			out.Ok, out.AlreadyInMaintenance = true, true
			return
		}
		var plan *scheduler.Plan
		if plan, err = Plan(r.Snapshot(), h.Uuid, action, mode); err != nil {
			err = apierr.Internal("planning the evacuation", err)
			return
		}
		out.Plan = PlanSteps(plan)
		vmOf := map[string]*acliv1.EntityRef{}
		for _, b := range plan.Blockers {
			vmOf["vm:"+b.VM.Name] = &acliv1.EntityRef{Kind: acliv1.EntityKind_kVm, Uuid: b.VM.UUID, Name: b.VM.Name}
		}
		for _, b := range Preflight(s.hostBlockers(r, h, true), plan) {
			out.Blockers = append(out.Blockers, &acliv1.Blocker{Type: b.Type, Vm: vmOf[b.Subject], Reason: b.Reason, Override: b.Override})
		}
		out.Ok = len(out.Blockers) == 0
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EnterMaintenanceMode evacuates a host and takes it out of service.
func (s *Service) EnterMaintenanceMode(ctx context.Context, req *acliv1.EnterMaintenanceModeRequest) (*acliv1.Task, error) {
	action, err := NonMigratableAction(req.NonMigratableVmAction)
	if err != nil {
		return nil, err
	}
	mode, err := Mode(req.Mode)
	if err != nil {
		return nil, err
	}
	if req.TimeoutSeconds < 0 {
		return nil, apierr.BadField("timeout", "timeout %d must not be negative (0 = none), e.g. timeout=600", req.TimeoutSeconds)
	}
	limit := s.M.MaxMigrations()
	switch {
	case req.MaxConcurrentMigrations < 0 || int(req.MaxConcurrentMigrations) > limit:
		return nil, apierr.BadField("max_concurrent_migrations", "max_concurrent_migrations %d is out of range; use 1 to %d (clusterd --max-migrations-per-host)", req.MaxConcurrentMigrations, limit)
	case req.MaxConcurrentMigrations > 0:
		limit = int(req.MaxConcurrentMigrations)
	}
	var h *acliv1.Host
	var t *tasks.Task
	var plan *scheduler.Plan
	err = s.M.Locked(func(l Locked) error {
		var err error
		if h, err = s.freeHost(l, req.Host); err != nil {
			return err
		}
		refs := []*acliv1.EntityRef{state.HostRef(h)}
		if h.NodeState == acliv1.NodeState_EnteredMaintenanceMode {
			return nil // nothing to do: a task of its own says so (noop)
		}
		if vs := Violations(Preflight(s.hostBlockers(l, h, false), nil)); len(vs) > 0 {
			return apierr.FailedPrecondition(fmt.Sprintf("host %s cannot enter maintenance mode", label(h)), vs...)
		}
		if plan, err = Plan(l.Snapshot(), h.Uuid, action, mode); err != nil {
			return apierr.Internal("planning the evacuation", err)
		}
		t = l.Begin(acliv1.TaskOperation_kHostEnterMaintenanceMode, refs, h.Uuid)
		l.Reserve(t, plan)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if plan == nil {
		return s.noop(ctx, h, acliv1.TaskOperation_kHostEnterMaintenanceMode, fmt.Sprintf("host %s is already in maintenance mode", label(h)))
	}
	if err := s.setHost(ctx, t, h, acliv1.NodeState_EnteringMaintenanceMode, state.EnterMaintenance, "is entering maintenance mode"); err != nil {
		return nil, err
	}
	e := s.evacuation(t, h, action, mode, limit)
	return s.M.Launch(ctx, t, func(ctx context.Context) (Done, error) {
		if req.TimeoutSeconds > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutSeconds)*time.Second)
			defer cancel()
		}
		return e.run(ctx, plan)
	})
}

// ResumeInterrupted carries on the evacuations a previous leader left
// running (Resume); one that cannot go on ends with its reason.
func (s *Service) ResumeInterrupted(ctx context.Context) {
	for _, t := range s.M.Interrupted() {
		run, why := s.Resume(ctx, t)
		if s.Log != nil {
			s.Log.Warn("resuming a task the previous leader left running", "task", t.PB().Uuid, "op", t.PB().Operation.String(), "err", why)
		}
		s.M.CarryOn(t, func(ctx context.Context) (Done, error) {
			if why != nil {
				return Done{}, why
			}
			return run(ctx)
		})
	}
}

// Resume carries on t, a host's evacuation a previous leader left running
// (Resumable), under the same task so a client waiting on it sees it end.
// Under the manager's lock, a commit takes the host for t if it still
// enters maintenance and no other task holds it (ResumeRefusal); what is
// still there is planned again and the plan reserved. The commits check
// the rules as on the first run. It returns the rest of the evacuation, or
// why it stops there.
func (s *Service) Resume(ctx context.Context, t *tasks.Task) (run func(context.Context) (Done, error), err error) {
	ref := t.PB().Entities[0]
	err = s.M.Locked(func(l Locked) error {
		h, err := s.takeEntering(ctx, t, ref)
		if err != nil {
			return err
		}
		l.Adopt(t, h.Uuid)
		plan, err := Plan(l.Snapshot(), h.Uuid, scheduler.Block, acliv1.MaintenanceMode_kMaintenanceLive)
		if err != nil {
			return fmt.Errorf("planning the rest of the evacuation: %w", err)
		}
		l.Reserve(t, plan)
		e := s.evacuation(t, h, scheduler.Block, acliv1.MaintenanceMode_kMaintenanceLive, s.M.MaxMigrations())
		run = func(ctx context.Context) (Done, error) {
			s.M.Log(t, fmt.Sprintf("resumed by a new leader: %d VM(s) still on %s planned again", len(plan.Steps), label(h)))
			return e.run(ctx, plan)
		}
		return nil
	})
	return run, err
}

// takeEntering takes host ref for t in a commit of its own, which refuses
// it (ResumeRefusal) when the host is gone, no longer entering maintenance
// or held by another task.
func (s *Service) takeEntering(ctx context.Context, t *tasks.Task, ref *acliv1.EntityRef) (h *acliv1.Host, err error) {
	_, err = s.DB.Update(ctx, func(tx *state.Tx) error {
		h = tx.Host(ref.Uuid)
		busy := tx.Holder(ref.Uuid)
		if busy == t.PB().Uuid {
			busy = ""
		}
		if err := ResumeRefusal(ref.Name, h, busy); err != nil {
			return err
		}
		tx.Take(t.PB().Uuid, h.Uuid)
		return nil
	})
	if _, holder, ok := state.Busy(err); ok {
		return nil, ResumeRefusal(ref.Name, h, holder)
	}
	return h, err
}

// hostEvacuation is one run of a host's evacuation: an Enter whose steps
// (Evacuate) are the task's migrations and shutdowns.
type hostEvacuation struct {
	s      *Service
	t      *tasks.Task
	host   *acliv1.Host
	action scheduler.NonMigratableAction
	mode   acliv1.MaintenanceMode
	enter  Enter
}

func (s *Service) evacuation(t *tasks.Task, h *acliv1.Host, action scheduler.NonMigratableAction, mode acliv1.MaintenanceMode, limit int) *hostEvacuation {
	e := &hostEvacuation{s: s, t: t, host: h, action: action, mode: mode}
	e.enter = Enter{
		Drain: Drain{Limit: limit, Replan: e.replan},
		Label: label(h),
		Log:   func(line string) { s.M.Log(t, line) },
		AwaitArrivals: func(ctx context.Context) error {
			return s.M.AwaitArrivals(ctx, h.Uuid)
		},
		Plan: func() (plan *scheduler.Plan, err error) {
			s.M.Read(func(r Reader) { plan, err = Plan(r.Snapshot(), h.Uuid, action, mode) })
			return plan, err
		},
	}
	return e
}

// run carries out the plan (Enter) and records EnteredMaintenanceMode once
// nothing is left on the host; otherwise what is left is listed and the
// host stays EnteringMaintenanceMode.
func (e *hostEvacuation) run(ctx context.Context, plan *scheduler.Plan) (Done, error) {
	c := e.s.M.Steps(e.t)
	h := c.Host(e.host.Uuid)
	if h == nil {
		return Done{}, status.Errorf(codes.NotFound, "host %s is gone; the evacuation cannot go on", label(e.host))
	}
	Evacuate(&e.enter.Drain, c, h, e.mode)
	left, err := e.enter.Run(ctx, plan)
	if err != nil {
		return Done{}, e.interrupted(err)
	}
	if vs := Violations(left); len(vs) > 0 {
		return Done{}, apierr.FailedPrecondition(fmt.Sprintf("host %s stays EnteringMaintenanceMode: %d VM(s) cannot leave", label(e.host), len(vs)), vs...)
	}
	return e.finish()
}

// replan waits for the VMs powering on or restarting here, then plans
// what is on the host like the first time and reserves the kept plan.
func (e *hostEvacuation) replan(ctx context.Context, keep func(*scheduler.Plan) bool) (*scheduler.Plan, error) {
	if err := e.s.M.AwaitArrivals(ctx, e.host.Uuid); err != nil {
		return nil, err
	}
	var plan *scheduler.Plan
	err := e.s.M.Locked(func(l Locked) error {
		p, err := Plan(l.Snapshot(), e.host.Uuid, e.action, e.mode)
		if err != nil || !keep(p) {
			return err
		}
		l.Reserve(e.t, p)
		plan = p
		return nil
	})
	return plan, err
}

func (e *hostEvacuation) interrupted(err error) error {
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	migrated, shutdown := e.enter.Moved()
	if err == context.DeadlineExceeded {
		return status.Errorf(codes.DeadlineExceeded, "timed out after moving %d VM(s) off %s; the host stays EnteringMaintenanceMode (run host.enter_maintenance_mode again to finish, or host.exit_maintenance_mode)", migrated+shutdown, label(e.host))
	}
	return fmt.Errorf("evacuation of %s interrupted after %d VM(s) moved: %w", label(e.host), migrated+shutdown, err)
}

// finish records EnteredMaintenanceMode (the host's own transition,
// committed with the task's end).
func (e *hostEvacuation) finish() (Done, error) {
	var cur *acliv1.Host
	var rev int64
	e.s.DB.View(func(tx *state.Tx) { cur, rev = tx.Host(e.host.Uuid), tx.Rev(state.HostKey(e.host.Uuid)) })
	if cur == nil {
		return Done{}, status.Errorf(codes.NotFound, "host %s is gone; the evacuation cannot go on", label(e.host))
	}
	if cur.NodeState == acliv1.NodeState_kNodeDown {
		return Done{}, status.Errorf(codes.Aborted, "host %s went down during its evacuation; HA restarts its VMs", label(e.host))
	}
	next, err := state.TransitionHost(cur, state.MaintenanceEntered)
	if err != nil {
		return Done{}, err
	}
	migrated, shutdown := e.enter.Moved()
	return Done{
		Writes:  []state.Write{{Key: state.HostKey(cur.Uuid), Msg: next, Rev: rev}},
		Message: fmt.Sprintf("host %s entered maintenance mode: %d VM(s) migrated, %d shut down", label(e.host), migrated, shutdown),
		Committed: func() {
			e.s.Publish("host", e.t.PB().Uuid, []*acliv1.EntityRef{state.HostRef(next)}, "host %s entered maintenance mode", label(e.host))
		},
	}, nil
}

// ExitMaintenanceMode returns the host to service and brings back the VMs
// that left it: migrated ones live-migrate back, shut-down ones power on.
func (s *Service) ExitMaintenanceMode(ctx context.Context, req *acliv1.ExitMaintenanceModeRequest) (*acliv1.Task, error) {
	var h *acliv1.Host
	var t *tasks.Task
	var plan *scheduler.Plan
	err := s.M.Locked(func(l Locked) error {
		var err error
		if h, err = s.freeHost(l, req.Host); err != nil {
			return err
		}
		if h.NodeState == acliv1.NodeState_kNodeDown {
			return apierr.Precondition(HostDown, "host:"+h.Name, "host %s is down; recover it first", label(h))
		}
		var returning []string
		s.DB.View(func(tx *state.Tx) {
			for _, r := range tx.VmsByName() {
				if r.Vm.OriginalHostUuid == h.Uuid {
					returning = append(returning, r.Vm.Uuid)
				}
			}
		})
		refs := []*acliv1.EntityRef{state.HostRef(h)}
		if h.NodeState == acliv1.NodeState_AcropolisNormal && len(returning) == 0 {
			return nil // nothing to do: a task of its own says so (noop)
		}
		// Plan against the host as it will be (in service) and reserve its
		// memory for every returning VM before anything else can take it.
		snap := l.Snapshot()
		for i := range snap.Hosts {
			if snap.Hosts[i].UUID == h.Uuid {
				snap.Hosts[i].State = scheduler.NodeNormal
			}
		}
		if plan, err = scheduler.PlanReturn(snap, h.Uuid, returning, scheduler.Options{}); err != nil {
			return apierr.Internal("planning the return", err)
		}
		t = l.Begin(acliv1.TaskOperation_kHostExitMaintenanceMode, refs, h.Uuid)
		l.Reserve(t, plan)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if plan == nil {
		return s.noop(ctx, h, acliv1.TaskOperation_kHostExitMaintenanceMode, fmt.Sprintf("host %s is not in maintenance mode", label(h)))
	}
	if err := s.setHost(ctx, t, h, acliv1.NodeState_AcropolisNormal, state.ExitMaintenance, "exited maintenance mode"); err != nil {
		return nil, err
	}
	return s.M.Launch(ctx, t, func(ctx context.Context) (Done, error) {
		return s.bringBack(ctx, t, h, plan)
	})
}

// noop records a request on h that changes nothing as a quick task of op
// ending with message, refused like the others while a task holds h.
func (s *Service) noop(ctx context.Context, h *acliv1.Host, op acliv1.TaskOperation, message string) (*acliv1.Task, error) {
	t, err := s.Tasks.Begin(ctx, "host", op, []*acliv1.EntityRef{state.HostRef(h)}, h.Uuid)
	if err != nil {
		return nil, err
	}
	return t.Commit(ctx, nil, message)
}

// freeHost resolves ref to a host no task holds.
func (s *Service) freeHost(l Locked, ref string) (*acliv1.Host, error) {
	h, _, err := s.findHost(ref)
	if err != nil {
		return nil, err
	}
	if o := l.Holder(h.Uuid); o != nil {
		return nil, apierr.Busy("host", h.Name, o.PB().Uuid, o.PB().Operation.String())
	}
	return h, nil
}

// setHost changes h, which task t has begun on, by c unless it is already
// in state to; a refused move ends t unrecorded.
func (s *Service) setHost(ctx context.Context, t *tasks.Task, h *acliv1.Host, to acliv1.NodeState, c state.HostChange, what string) error {
	if h.NodeState == to {
		return nil
	}
	next, err := s.M.SetHost(ctx, h.Uuid, c)
	if err != nil {
		s.M.Forget(t)
		return err
	}
	s.Publish("host", t.PB().Uuid, []*acliv1.EntityRef{state.HostRef(h)}, "host %s %s", label(next), what)
	return nil
}

// bringBack carries out a return plan (Return orders it, Bring makes its
// steps). A VM that cannot return stays where it is and is listed.
func (s *Service) bringBack(ctx context.Context, t *tasks.Task, host *acliv1.Host, plan *scheduler.Plan) (Done, error) {
	ret := &Return{Limit: s.M.MaxMigrations()}
	Bring(ret, s.M.Steps(t), host)
	if err := ret.Run(ctx, plan); err != nil {
		return Done{}, err
	}
	back, on, failures := ret.Tally()
	if len(failures) > 0 {
		return Done{}, fmt.Errorf("host %s is back in service but %d VM(s) did not return: %s", label(host), len(failures), strings.Join(failures, "; "))
	}
	return Done{Message: fmt.Sprintf("host %s exited maintenance mode: %d VM(s) migrated back, %d powered on", label(host), back, on)}, nil
}
