package migrate

import (
	"context"
	"fmt"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
	"github.com/acli-dev/acli/manager/vm"
)

// Manager is what vm.migrate needs of the rest of the manager: its lock,
// under which the target is chosen and reserved, and its task engine.
type Manager interface {
	// Locked runs fn holding the manager's lock: what fn reads, begins and
	// reserves through l stays true until it returns.
	Locked(fn func(l Locked) error) error
	// Launch persists t, returns it and runs w in the background; w's line
	// closes the task.
	Launch(ctx context.Context, t *tasks.Task, w func(ctx context.Context) (string, error)) (*acliv1.Task, error)
	// Log appends a line to t's messages at percent.
	Log(t *tasks.Task, percent int32, line string)
	// Live and Offline carry out t's move (Live, Offline); the reservation
	// ends with the commit that records the VM on its target.
	Live(ctx context.Context, t *tasks.Task, mv Move, reservation func()) (Result, error)
	Offline(ctx context.Context, t *tasks.Task, mv Move, reservation func()) error
}

// Locked is what may be read, begun and reserved under the manager's lock.
type Locked interface {
	// Holder is the running task that holds an entity (nil if none).
	Holder(id string) *tasks.Task
	// Snapshot is the cluster as placement sees it, reservations counted.
	Snapshot() *scheduler.Snapshot
	// Begin starts a task of op naming refs and holding the locks.
	Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *tasks.Task
}

// Service serves vm.migrate behind manager/rpc's VM adapter.
type Service struct {
	DB    *state.DB
	Moves *Moves
	M     Manager
}

// MigrateVm moves a VM to the named host or to the scheduler's choice. It
// always moves the VM to another host or refuses, listing each candidate
// host and why it was rejected.
func (s *Service) MigrateVm(ctx context.Context, req *acliv1.MigrateVmRequest) (*acliv1.Task, error) {
	if req.BandwidthMbps < 0 {
		return nil, apierr.BadField("bandwidth_mbps", "bandwidth_mbps %d must not be negative, e.g. bandwidth_mbps=10000", req.BandwidthMbps)
	}
	live := req.Live == nil || *req.Live
	var t *tasks.Task
	var mv Move
	var release func()
	err := s.M.Locked(func(l Locked) error {
		var cur, src, dst *acliv1.Host
		var v *acliv1.Vm
		var err error
		s.DB.View(func(tx *state.Tx) {
			if v, err = vm.Resolve(tx, "vm", req.Vm); err != nil {
				return
			}
			mv.Rev, src = tx.Rev(state.VmKey(v.Uuid)), tx.Host(v.HostUuid)
		})
		if err != nil {
			return err
		}
		if o := l.Holder(v.Uuid); o != nil {
			return apierr.Busy("vm", v.Name, o.PB().Uuid, o.PB().Operation.String())
		}
		if req.Host != "" {
			s.DB.View(func(tx *state.Tx) { dst, err = tx.FindHost("host", req.Host) })
			if err != nil {
				return err
			}
		}
		snap := l.Snapshot()
		if err := movable(v, src); err != nil {
			return err
		}
		// Where the VM can go is the same live or offline; an override of
		// what keeps it from moving live is suggested only if it would serve.
		var target error
		if dst != nil {
			if err := scheduler.CheckTarget(snap, v.Uuid, dst.Uuid, scheduler.Options{}); err != nil {
				target = apierr.Precondition("TARGET", "host:"+dst.Name, "%v", err)
			}
		} else if p, err := scheduler.PickMigrationTarget(snap, v.Uuid, "", scheduler.Options{}); err != nil {
			target = NoHostError(fmt.Sprintf("cannot migrate vm %s", v.Name), err)
		} else {
			s.DB.View(func(tx *state.Tx) { cur = tx.Host(p.Host.UUID) })
			if dst = cur; dst == nil {
				return apierr.Precondition("TARGET", "host:"+p.Host.Name, "host %s left the cluster", p.Host.Name)
			}
		}
		if live {
			if b, ok := liveBlocker(v, snap); ok {
				return b.refusal(v, target)
			}
		}
		if target != nil {
			return target
		}
		t = l.Begin(acliv1.TaskOperation_kVmMigrate, []*acliv1.EntityRef{state.VmRef(v), state.HostRef(src), state.HostRef(dst)}, v.Uuid)
		t.SetCancellable(live) // until the switch-over
		release = s.reserve(t, v, dst.Uuid)
		mv.VM, mv.Src, mv.Dst, mv.BandwidthMbps = v, src, dst, req.BandwidthMbps
		return nil
	})
	if err != nil {
		return nil, err
	}
	how := "live-migrating"
	if !live {
		how = "moving (offline)"
	}
	return s.M.Launch(ctx, t, func(ctx context.Context) (string, error) {
		name, from, to := mv.VM.Name, label(mv.Src), label(mv.Dst)
		s.M.Log(t, 1, fmt.Sprintf("%s vm %s from %s to %s", how, name, from, to))
		if !live {
			if err := s.M.Offline(ctx, t, mv, release); err != nil {
				return "", err
			}
			return fmt.Sprintf("vm %s moved from %s to %s (offline)", name, from, to), nil
		}
		res, err := s.M.Live(ctx, t, mv, release)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("vm %s migrated from %s to %s in %s", name, from, to, res), nil
	})
}

// reserve holds v's memory on host for t, which becomes a target of host,
// until t ends; release ends the hold sooner.
func (s *Service) reserve(t *tasks.Task, v *acliv1.Vm, host string) (release func()) {
	id := s.DB.Hold(v, host)
	s.Moves.AddTarget(host, t)
	release = func() { s.DB.Depart(id) }
	t.Release = func() { release(); s.Moves.DropTargets(t) }
	return release
}

// movable refuses a VM that cannot leave its host src now (live or not).
func movable(v *acliv1.Vm, src *acliv1.Host) error {
	switch {
	case !state.Placed(v):
		return apierr.Precondition("POWER_STATE", "vm:"+v.Name, "vm %s is off and has no host to move from; power it on (vm.on %s host=...) instead", v.Name, v.Name)
	case v.AgentVm:
		return apierr.Precondition("AGENT_VM", "vm:"+v.Name, "vm %s is an agent VM and stays on its host", v.Name)
	}
	switch {
	case src == nil:
		return apierr.Precondition("HOST", "vm:"+v.Name, "vm %s is recorded on unknown host %s", v.Name, v.HostUuid)
	case src.NodeState == acliv1.NodeState_kNodeDown:
		return apierr.Precondition("HOST_DOWN", "host:"+v.HostName, "vm %s is on %s, which is down; HA restarts it elsewhere", v.Name, label(src))
	}
	return nil
}

// blocker is what keeps a VM from moving live and what lifts it.
type blocker struct {
	typ, why, override string
}

// liveBlocker is what keeps v from live-migrating (ok false when nothing).
func liveBlocker(v *acliv1.Vm, snap *scheduler.Snapshot) (blocker, bool) {
	if v.PowerState == acliv1.PowerState_kPaused {
		return blocker{"POWER_STATE", fmt.Sprintf("vm %s is paused and cannot live-migrate", v.Name), "resume it first or use live=false"}, true
	}
	for i := range snap.VMs {
		if sv := &snap.VMs[i]; sv.UUID == v.Uuid {
			if err := scheduler.CanLiveMigrate(sv); err != nil {
				return blocker{"NOT_MIGRATABLE", err.Error(), "use live=false"}, true
			}
		}
	}
	return blocker{}, false
}

// refusal refuses the live move: with its override when the VM could go
// offline (target nil), else with every blocker and none, since live=false
// would be refused too.
func (b blocker) refusal(v *acliv1.Vm, target error) error {
	if target == nil {
		return apierr.Precondition(b.typ, "vm:"+v.Name, "%s (%s)", b.why, b.override)
	}
	vs := append([]apierr.Violation{{Type: b.typ, Subject: "vm:" + v.Name, Description: b.why}}, apierr.Violations(target)...)
	return apierr.FailedPrecondition(fmt.Sprintf("vm %s cannot move, live or offline", v.Name), vs...)
}

// NoHostError turns the scheduler's refusal into a FailedPrecondition with
// one violation per candidate host.
func NoHostError(summary string, err error) error {
	ne, ok := err.(*scheduler.NoEligibleHostError)
	if !ok {
		return apierr.Precondition("NO_HOST", "cluster", "%s: %v", summary, err)
	}
	vs := make([]apierr.Violation, len(ne.Rejections))
	for i, r := range ne.Rejections {
		vs[i] = apierr.Violation{Type: "NO_HOST", Subject: "host:" + r.Host.Name, Description: r.String()}
	}
	if len(vs) == 0 {
		return apierr.Precondition("NO_HOST", "cluster", "%s: the cluster has no hosts", summary)
	}
	return apierr.FailedPrecondition(summary+": no eligible host", vs...)
}
