package vm

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

var transitionOps = map[acliv1.PowerTransition]acliv1.TaskOperation{
	acliv1.PowerTransition_kPowerOn:    acliv1.TaskOperation_kVmPowerOn,
	acliv1.PowerTransition_kPowerOff:   acliv1.TaskOperation_kVmPowerOff,
	acliv1.PowerTransition_kShutdown:   acliv1.TaskOperation_kVmShutdown,
	acliv1.PowerTransition_kReboot:     acliv1.TaskOperation_kVmReboot,
	acliv1.PowerTransition_kReset:      acliv1.TaskOperation_kVmReset,
	acliv1.PowerTransition_kPowerCycle: acliv1.TaskOperation_kVmPowerCycle,
}

// noop says why a transition changes nothing ("" if it does something):
// such requests succeed at once, so scripts can repeat them.
func noop(tr acliv1.PowerTransition, v *acliv1.Vm) string {
	switch {
	case tr == acliv1.PowerTransition_kPowerOn && v.PowerState == acliv1.PowerState_kOn:
		return fmt.Sprintf("vm %s is already on", v.Name)
	case (tr == acliv1.PowerTransition_kPowerOff || tr == acliv1.PowerTransition_kShutdown) && v.PowerState == acliv1.PowerState_kOff:
		return fmt.Sprintf("vm %s is already off", v.Name)
	}
	return ""
}

// refusal refuses a transition the VM's power state does not allow: a
// paused VM powers off before it powers on; only a running VM shuts down,
// reboots, resets or power cycles.
func refusal(tr acliv1.PowerTransition, v *acliv1.Vm) error {
	switch tr {
	case acliv1.PowerTransition_kPowerOn:
		if v.PowerState == acliv1.PowerState_kPaused {
			return apierr.Precondition(state.RulePowerState, "vm:"+v.Name, "vm %s is paused; power it off first", v.Name)
		}
	case acliv1.PowerTransition_kReboot, acliv1.PowerTransition_kReset, acliv1.PowerTransition_kPowerCycle, acliv1.PowerTransition_kShutdown:
		if v.PowerState != acliv1.PowerState_kOn {
			return apierr.Precondition(state.RulePowerState, "vm:"+v.Name, "vm %s is %s; power it on first", v.Name, state.PowerWord(v.PowerState))
		}
	}
	return nil
}

// SetPowerState powers a VM on (on the named host, else where placement
// chooses), off, shuts it down, reboots, resets or power cycles it.
func (s *Service) SetPowerState(ctx context.Context, req *acliv1.SetPowerStateRequest) (*acliv1.Task, error) {
	op, ok := transitionOps[req.Transition]
	if !ok {
		return nil, apierr.BadField("transition", "power transition %s is not valid; use kPowerOn, kPowerOff, kShutdown, kReboot, kReset or kPowerCycle", req.Transition)
	}
	if req.Host != "" && req.Transition != acliv1.PowerTransition_kPowerOn {
		return nil, apierr.BadField("host", "host applies only to kPowerOn")
	}
	v, _, err := s.resolve("vm", req.Vm)
	if err != nil {
		return nil, err
	}
	if noop(req.Transition, v) != "" {
		q, cur, _, err := begin(ctx, s.tasks, s.db, v, op)
		if err != nil {
			return nil, err
		}
		if unchanged := noop(req.Transition, cur); unchanged != "" {
			return q.Commit(ctx, nil, unchanged)
		}
		q.Drop() // changed before the task held it: carry the request out
	}
	t, cur, rev, err := s.start(ctx, req.Vm, op, func(v *acliv1.Vm) []*acliv1.EntityRef {
		refs := []*acliv1.EntityRef{state.VmRef(v)}
		if h := s.host(v.HostUuid); h != nil && req.Transition != acliv1.PowerTransition_kPowerOn && state.Placed(v) {
			refs = append(refs, state.HostRef(h))
		}
		return refs
	})
	if err != nil {
		return nil, err
	}
	if unchanged := noop(req.Transition, cur); unchanged != "" {
		// Changed back since the check above: a task with nothing to do.
		return s.c.Launch(ctx, t, func(context.Context, *tasks.Task) (Outcome, error) { return Outcome{Message: unchanged}, nil })
	}
	if err := refusal(req.Transition, cur); err != nil {
		s.c.Forget(t)
		return nil, err
	}
	if req.Transition != acliv1.PowerTransition_kPowerOn {
		host := s.host(cur.HostUuid)
		if host == nil || !state.Placed(cur) {
			s.c.Forget(t)
			return nil, apierr.Precondition("HOST", "vm:"+cur.Name, "vm %s is %s but its host %s is unknown", cur.Name, state.PowerWord(cur.PowerState), cur.HostUuid)
		}
		return s.c.Launch(ctx, t, func(ctx context.Context, t *tasks.Task) (Outcome, error) {
			return s.powerChange(ctx, t, req.Transition, cur, rev, host)
		})
	}
	// The memory is held on the target until the VM is recorded there.
	host, err := s.c.Place(t, cur, req.Host)
	if err == nil {
		cur, err = s.bindDevices(cur, host.Uuid)
	}
	if err != nil {
		s.c.Forget(t)
		return nil, err
	}
	return s.c.Launch(ctx, t, func(ctx context.Context, t *tasks.Task) (Outcome, error) {
		return s.powerOn(ctx, t, cur, rev, host)
	})
}

// powerOn starts the VM on target and records it there.
func (s *Service) powerOn(ctx context.Context, t *tasks.Task, cur *acliv1.Vm, rev int64, target *acliv1.Host) (Outcome, error) {
	if err := s.c.CheckTarget(target.Uuid); err != nil {
		return Outcome{}, apierr.Precondition("HOST", "host:"+target.Name, "vm %s cannot power on: %v", cur.Name, err)
	}
	s.c.Progress(t, 10, "powering on vm %s on host %s (%s)", cur.Name, target.Name, target.HypervisorIp)
	if err := s.drv.PowerOn(ctx, target, cur); err != nil {
		return Outcome{}, err
	}
	v := proto.Clone(cur).(*acliv1.Vm)
	v.PowerState, v.HostUuid, v.HostName = acliv1.PowerState_kOn, target.Uuid, target.Name
	// The commit re-checks the target: a host cordoned, failed or taken
	// out while the VM started refuses it, and the VM is stopped again
	// rather than left running where it may not be.
	if err := s.c.Record(ctx, v, rev); err != nil {
		if perr := s.drv.PowerOff(context.WithoutCancel(ctx), target, cur); perr != nil {
			return Outcome{}, fmt.Errorf("%w; powering it off again failed: %v", err, perr)
		}
		return Outcome{}, err
	}
	return Outcome{Message: fmt.Sprintf("vm %s powered on on host %s (%s)", v.Name, target.Name, target.HypervisorIp)}, nil
}

// powerChange carries out off, shutdown, reboot, reset and power cycle.
func (s *Service) powerChange(ctx context.Context, t *tasks.Task, tr acliv1.PowerTransition, cur *acliv1.Vm, rev int64, host *acliv1.Host) (Outcome, error) {
	var err error
	var verb string
	stops := false
	switch tr {
	case acliv1.PowerTransition_kPowerOff:
		s.c.Progress(t, 10, "powering off vm %s", cur.Name)
		err, verb, stops = s.drv.PowerOff(ctx, host, cur), "powered off", true
	case acliv1.PowerTransition_kShutdown:
		s.c.Progress(t, 10, "shutting down vm %s (ACPI)", cur.Name)
		err, verb, stops = s.drv.Shutdown(ctx, host, cur), "shut down", true
	case acliv1.PowerTransition_kReboot:
		s.c.Progress(t, 10, "rebooting vm %s (ACPI)", cur.Name)
		err, verb = s.drv.Reboot(ctx, host, cur), "rebooted"
	case acliv1.PowerTransition_kReset:
		s.c.Progress(t, 10, "resetting vm %s", cur.Name)
		err, verb = s.drv.Reset(ctx, host, cur), "reset"
	case acliv1.PowerTransition_kPowerCycle:
		// A hard reset where it runs: the guest restarts on the same host.
		s.c.Progress(t, 10, "power cycling vm %s", cur.Name)
		err, verb = s.drv.Reset(ctx, host, cur), "power cycled"
	}
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{Message: fmt.Sprintf("vm %s %s on host %s", cur.Name, verb, host.Name)}
	if stops {
		v := proto.Clone(cur).(*acliv1.Vm)
		v.PowerState, v.HostUuid, v.HostName = acliv1.PowerState_kOff, "", ""
		out.Writes = []state.Write{put(v, rev)}
	}
	return out, nil
}
