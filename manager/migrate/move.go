package migrate

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/scheduler"
)

// Cluster is what a move needs of the manager; one per move (it knows the
// task and the reservation the move holds).
type Cluster interface {
	// StartLive begins a live migration (Moves.StartLive): it waits for a
	// migration slot on src and dst, counts the VM arriving on dst and
	// re-validates dst, whose plan may be old by then; end frees them.
	StartLive(ctx context.Context, src, dst string) (end func(), err error)
	// Arrive is StartLive for a cold move, unpaced (Moves.Arrive).
	Arrive(dst string) (end func(), err error)
	// Record commits the VM's new record if it is still at rev and returns
	// the new revision; the state's rules check the placement on the state
	// the commit leaves (Refused reports such a refusal). When the VM
	// reaches its target, the move's reservation ends with the commit.
	Record(ctx context.Context, next *acliv1.Vm, rev int64) (int64, error)
	Refused(err error) bool
	// RecordObserved records where the VM is found running, unjudged: the
	// rules do not undo what already happened.
	RecordObserved(ctx context.Context, vm *acliv1.Vm, rev int64) error
	// WithDevicesOn returns vm with a free device of each of its
	// passthrough device groups on host bound, or refuses naming the group
	// host has none free of.
	WithDevicesOn(vm *acliv1.Vm, host string) (*acliv1.Vm, error)
}

// Report is how a move tells its task and the event log what it does.
type Report interface {
	// Progress sets the task's progress line, with the pre-copy progress
	// when there is one (percent is then the migration's own, 0 to 99);
	// a negative percent leaves the task's percent as it is.
	Progress(percent int32, line string, p *acliv1.MigrationProgress)
	// Event publishes a "migration" event about the VM and both hosts.
	Event(severity, format string, args ...any)
	// PastReturn marks the switch-over: the move can no longer be
	// cancelled.
	PastReturn()
}

// Move is one VM move by a task that holds the VM's lock.
type Move struct {
	VM            *acliv1.Vm // the record when the move started
	Rev           int64
	Src, Dst      *acliv1.Host
	BandwidthMbps int64
	// Edit adjusts the new record (e.g. sets or clears original_host_uuid).
	Edit func(*acliv1.Vm)
}

// Result is what a finished live migration reports.
type Result struct {
	Rounds     int32
	DowntimeMs int64
	Took       time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("%d round(s), downtime %d ms", r.Rounds, r.DowntimeMs)
}

// Live moves a running VM with the driver, streaming the pre-copy progress
// and warning once when it does not converge, and records the VM on its
// target the moment the driver has switched it over: the VM is on exactly
// one host, in the driver and in the store, at every instant. Until the
// switch-over, ctx's end stops it and the VM stays on its source with
// nothing recorded. A target that closed while the VM moved refuses the
// commit: the VM goes back to its source, or, when that fails, is recorded
// where it runs.
func Live(ctx context.Context, c Cluster, r Report, drv driver.Driver, mv Move) (Result, error) {
	vm, src, dst := mv.VM, mv.Src, mv.Dst
	end, err := c.StartLive(ctx, src.Uuid, dst.Uuid)
	if err != nil {
		return Result{}, err
	}
	defer end()
	r.Event("info", "migrating vm %s from %s to %s", vm.Name, label(src), label(dst))
	r.Progress(-1, fmt.Sprintf("migrating vm %s to %s", vm.Name, label(dst)), nil)
	var last *acliv1.MigrationProgress
	var conv Convergence
	start := time.Now()
	opts := driver.MigrateOptions{BandwidthMbps: mv.BandwidthMbps}
	err = drv.Migrate(ctx, vm, src, dst, opts, func(p *acliv1.MigrationProgress) {
		last = p
		line := fmt.Sprintf("migrating vm %s to %s: round %d, %s remaining, est. downtime %d ms",
			vm.Name, label(dst), p.Round, scheduler.Bytes(p.RemainingBytes), p.EstimatedDowntimeMs)
		warn, first := conv.Observe(p)
		if warn != "" {
			line += "; " + warn
		}
		if first {
			r.Event("warning", "migration of vm %s to %s is %s", vm.Name, label(dst), warn)
		}
		r.Progress(Percent(p), line, p)
	})
	if err != nil {
		r.Event("error", "migration of vm %s from %s to %s failed: %v", vm.Name, label(src), label(dst), err)
		return Result{}, err
	}
	r.PastReturn()
	next := proto.Clone(vm).(*acliv1.Vm)
	next.HostUuid, next.HostName = dst.Uuid, dst.Name
	if mv.Edit != nil {
		mv.Edit(next)
	}
	if _, err := c.Record(ctx, next, mv.Rev); err != nil {
		if !c.Refused(err) {
			return Result{}, fmt.Errorf("vm %s moved to %s but recording it failed: %w", vm.Name, label(dst), err)
		}
		// The target closed while the VM moved (a cordon, maintenance): it
		// goes back where it is recorded.
		bctx := context.WithoutCancel(ctx)
		if berr := drv.Migrate(bctx, next, dst, src, opts, func(*acliv1.MigrationProgress) {}); berr != nil {
			// It stays where it runs: recorded as found there.
			_ = c.RecordObserved(bctx, next, mv.Rev)
			return Result{}, fmt.Errorf("vm %s moved to %s, which no longer takes VMs (%w), and moving it back failed: %v", vm.Name, label(dst), err, berr)
		}
		return Result{}, fmt.Errorf("vm %s moved back to %s: %w", vm.Name, label(src), err)
	}
	res := Result{Took: time.Since(start)}
	if last != nil {
		res.Rounds, res.DowntimeMs = last.Round, last.EstimatedDowntimeMs
	}
	r.Event("info", "vm %s migrated from %s to %s (%s)", vm.Name, label(src), label(dst), res)
	return res, nil
}

// Offline powers a VM off on its source and on again on its target; each
// step is recorded as it happens. A target that closed meanwhile refuses
// the second commit and the VM is powered off there again (it stays off).
func Offline(ctx context.Context, c Cluster, r Report, drv driver.Driver, mv Move) error {
	vm, src, dst := mv.VM, mv.Src, mv.Dst
	// A target that closed since the plan stops the move before the VM
	// stops.
	end, err := c.Arrive(dst.Uuid)
	if err != nil {
		return err
	}
	defer end()
	// Its passthrough devices are the target's from the start: a target
	// with none free refuses the move before the VM stops.
	bound, err := c.WithDevicesOn(vm, dst.Uuid)
	if err != nil {
		return err
	}
	r.Progress(20, fmt.Sprintf("powering off vm %s on %s", vm.Name, label(src)), nil)
	if err := drv.PowerOff(ctx, src, vm); err != nil {
		return err
	}
	off := proto.Clone(bound).(*acliv1.Vm)
	off.PowerState, off.HostUuid, off.HostName = acliv1.PowerState_kOff, "", ""
	rev, err := c.Record(ctx, off, mv.Rev)
	if err != nil {
		return err
	}
	r.Progress(60, fmt.Sprintf("powering on vm %s on %s", vm.Name, label(dst)), nil)
	if err := drv.PowerOn(ctx, dst, off); err != nil {
		return fmt.Errorf("vm %s is off: powering it on on %s failed: %w", vm.Name, label(dst), err)
	}
	on := proto.Clone(off).(*acliv1.Vm)
	on.PowerState, on.HostUuid, on.HostName = acliv1.PowerState_kOn, dst.Uuid, dst.Name
	if mv.Edit != nil {
		mv.Edit(on)
	}
	if _, err := c.Record(ctx, on, rev); err != nil {
		if c.Refused(err) {
			if perr := drv.PowerOff(context.WithoutCancel(ctx), dst, off); perr != nil {
				return fmt.Errorf("%w; powering it off on %s again failed: %v", err, label(dst), perr)
			}
		}
		return err
	}
	return nil
}

func label(h *acliv1.Host) string { return fmt.Sprintf("%s (%s)", h.Name, h.HypervisorIp) }
