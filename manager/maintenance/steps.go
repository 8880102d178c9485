package maintenance

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// Cluster is one maintenance task's view of the rest of the manager: the
// VM locks and target reservations the task holds, the committed records,
// the moves and power actions, and the task's log. Evacuate and Bring turn
// it into Drain and Return steps.
type Cluster interface {
	// Lock waits until no other task acts on the VM and takes it for this
	// one; the record is nil when the VM is gone.
	Lock(ctx context.Context, vm string) (*acliv1.Vm, int64, error)
	Unlock(vm string)
	// LetGo gives up the VM's target reservation.
	LetGo(vm string)
	// Host and Vm are committed records (nil when gone).
	Host(id string) *acliv1.Host
	Vm(id string) *acliv1.Vm
	// Migrate moves a locked VM from src to dst (offline when cold),
	// with edit applied to the record it commits there; the VM's
	// reservation ends with that commit. percent is the task's progress.
	Migrate(ctx context.Context, vm *acliv1.Vm, rev int64, src, dst *acliv1.Host, cold bool, edit func(*acliv1.Vm), percent func() int32) (fmt.Stringer, error)
	// TargetGone reports whether a migration failed because its target
	// stopped taking VMs before the move started.
	TargetGone(err error) bool
	Shutdown(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error
	PowerOn(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error
	// Record commits a locked VM at rev; with release its reservation ends
	// with the commit.
	Record(ctx context.Context, next *acliv1.Vm, rev int64, release bool) error
	Progress(percent int32, format string, args ...any)
	Message(percent int32, format string, args ...any)
	// Event publishes a VM event of the task about vm and host.
	Event(vm *acliv1.Vm, host *acliv1.Host, format string, args ...any)
}

// Evacuate fills d's Migrate and Shutdown with the steps of host's
// evacuation in mode: each takes its VM if it still runs on the host,
// moves or shuts it down, and records where it came from, so the VM
// returns when the host exits maintenance.
func Evacuate(d *Drain, c Cluster, host *acliv1.Host, mode acliv1.MaintenanceMode) {
	e := &evacuation{c: c, host: host, cold: mode == acliv1.MaintenanceMode_kMaintenanceCold, d: d}
	d.Migrate, d.Shutdown = e.migrate, e.shutdown
}

type evacuation struct {
	c    Cluster
	host *acliv1.Host
	cold bool
	d    *Drain
}

// take locks a planned VM and returns its record if it is still running on
// the host; otherwise it gives up the VM's reservation.
func (e *evacuation) take(ctx context.Context, id string) (*acliv1.Vm, int64, bool) {
	v, rev, err := e.c.Lock(ctx, id)
	if err != nil || v == nil {
		e.c.LetGo(id)
		return nil, 0, false
	}
	if !state.Placed(v) || v.HostUuid != e.host.Uuid {
		e.c.LetGo(id)
		e.c.Unlock(id)
		return nil, 0, false
	}
	return v, rev, true
}

func (e *evacuation) migrate(ctx context.Context, s scheduler.Step) (Result, string) {
	c := e.c
	vm, rev, ok := e.take(ctx, s.VM.UUID)
	if !ok {
		return Gone, ""
	}
	defer c.Unlock(vm.Uuid)
	src, dst := c.Host(e.host.Uuid), c.Host(s.Target.UUID)
	if src == nil || dst == nil {
		c.LetGo(vm.Uuid)
		return Retarget, ""
	}
	edit := func(v *acliv1.Vm) {
		if v.OriginalHostUuid == "" {
			v.OriginalHostUuid = e.host.Uuid
		}
	}
	res, err := c.Migrate(ctx, vm, rev, src, dst, e.cold, edit, e.d.Percent)
	if err != nil {
		c.LetGo(vm.Uuid)
		if ctx.Err() != nil {
			return Gone, ""
		}
		if c.TargetGone(err) {
			c.Message(e.d.Percent(), "vm %s not moved yet: %v", vm.Name, err)
			return Retarget, ""
		}
		c.Message(e.d.Percent(), "vm %s did not move: %v", vm.Name, err)
		return Failed, fmt.Sprintf("vm %s: migration to %s failed: %v", vm.Name, label(dst), err)
	}
	c.Message(e.d.Percent(), "vm %s migrated to %s (%s)", vm.Name, label(dst), res)
	return Moved, ""
}

// shutdown ACPI-shuts-down an agent or non-migratable VM; it is marked to
// power on again here when the host exits maintenance.
func (e *evacuation) shutdown(ctx context.Context, s scheduler.Step) (Result, string) {
	c := e.c
	vm, rev, ok := e.take(ctx, s.VM.UUID)
	if !ok {
		return Gone, ""
	}
	defer c.Unlock(vm.Uuid)
	src := c.Host(e.host.Uuid)
	if src == nil {
		src = e.host
	}
	c.Progress(e.d.Percent(), "shutting down vm %s (%s)", vm.Name, s.Reason)
	if err := c.Shutdown(ctx, src, vm); err != nil {
		if ctx.Err() != nil {
			return Gone, ""
		}
		return Failed, fmt.Sprintf("vm %s: shutdown failed: %v", vm.Name, err)
	}
	next := proto.Clone(vm).(*acliv1.Vm)
	next.PowerState, next.HostUuid, next.HostName, next.OriginalHostUuid = acliv1.PowerState_kOff, "", "", src.Uuid
	if err := c.Record(ctx, next, rev, false); err != nil {
		return Failed, fmt.Sprintf("vm %s was shut down but recording it failed: %v", vm.Name, err)
	}
	c.Event(vm, src, "vm %s shut down for the maintenance of %s (%s)", vm.Name, label(src), s.Reason)
	c.Message(e.d.Percent(), "vm %s shut down (%s); it powers on again when %s exits maintenance mode", vm.Name, s.Reason, src.Name)
	return Moved, ""
}

// Bring fills r's steps with the return of host's VMs: shut-down ones
// power on there, migrated ones live-migrate back, and a VM that cannot
// return forgets the host. Each takes its VM only while it still names
// the host as where it came from.
func Bring(r *Return, c Cluster, host *acliv1.Host) {
	b := &bring{c: c, host: host, r: r}
	r.Agent = func(id string) bool {
		v := c.Vm(id)
		return v != nil && v.AgentVm
	}
	r.PowerOn, r.MigrateBack, r.Stay = b.powerOn, b.migrateBack, b.stay
}

type bring struct {
	c    Cluster
	host *acliv1.Host
	r    *Return
}

func (b *bring) failed(format string, args ...any) (Result, string) {
	line := fmt.Sprintf(format, args...)
	b.c.Message(-1, "%s", line)
	return Failed, line
}

func (b *bring) clearOrigin(v *acliv1.Vm) {
	if v.OriginalHostUuid == b.host.Uuid {
		v.OriginalHostUuid = ""
	}
}

// take locks a VM; ok is false when it no longer names the host as where
// it came from.
func (b *bring) take(ctx context.Context, id string) (*acliv1.Vm, int64, bool) {
	v, rev, err := b.c.Lock(ctx, id)
	if err != nil || v == nil {
		b.c.LetGo(id)
		return nil, 0, false
	}
	return v, rev, v.OriginalHostUuid == b.host.Uuid
}

func (b *bring) powerOn(ctx context.Context, s scheduler.Step) (Result, string) {
	c, host := b.c, b.host
	v, rev, ok := b.take(ctx, s.VM.UUID)
	if v == nil {
		return Gone, ""
	}
	defer c.Unlock(v.Uuid)
	if !ok || state.Placed(v) {
		c.LetGo(v.Uuid)
		return Gone, ""
	}
	c.Progress(b.r.Percent(), "powering on vm %s on %s", v.Name, label(host))
	if err := c.PowerOn(ctx, host, v); err != nil {
		c.LetGo(v.Uuid)
		return b.failed("vm %s did not power on on %s: %v", v.Name, label(host), err)
	}
	next := proto.Clone(v).(*acliv1.Vm)
	next.PowerState, next.HostUuid, next.HostName = acliv1.PowerState_kOn, host.Uuid, host.Name
	b.clearOrigin(next)
	if err := c.Record(ctx, next, rev, true); err != nil {
		return b.failed("vm %s powered on but recording it failed: %v", v.Name, err)
	}
	c.Message(b.r.Percent(), "vm %s powered on on %s", v.Name, label(host))
	return Moved, ""
}

func (b *bring) migrateBack(ctx context.Context, s scheduler.Step) (Result, string) {
	c, host := b.c, b.host
	v, rev, ok := b.take(ctx, s.VM.UUID)
	if v == nil {
		return Gone, ""
	}
	defer c.Unlock(v.Uuid)
	var src *acliv1.Host
	if state.Placed(v) {
		src = c.Host(v.HostUuid)
	}
	if !ok || src == nil || v.HostUuid == host.Uuid {
		c.LetGo(v.Uuid)
		return Gone, ""
	}
	res, err := c.Migrate(ctx, v, rev, src, host, false, b.clearOrigin, b.r.Percent)
	if err != nil {
		c.LetGo(v.Uuid)
		if ctx.Err() != nil {
			return Gone, ""
		}
		return b.failed("vm %s did not return to %s: %v", v.Name, label(host), err)
	}
	c.Message(b.r.Percent(), "vm %s migrated back to %s (%s)", v.Name, label(host), res)
	return Moved, ""
}

func (b *bring) stay(ctx context.Context, s scheduler.Step) string {
	c := b.c
	why := ""
	if v, rev, ok := b.take(ctx, s.VM.UUID); v != nil {
		if ok {
			next := proto.Clone(v).(*acliv1.Vm)
			b.clearOrigin(next)
			if err := c.Record(ctx, next, rev, false); err != nil {
				_, why = b.failed("vm %s: %v", v.Name, err)
			}
		}
		c.Unlock(v.Uuid)
	}
	c.Message(-1, "%s; it stays where it is", s.Reason)
	return why
}

func label(h *acliv1.Host) string { return fmt.Sprintf("%s (%s)", h.Name, h.HypervisorIp) }
