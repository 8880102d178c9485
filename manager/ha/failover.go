package ha

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// Manager is what a restart task needs of the rest of the manager: its
// lock, under which restarts are planned and reserved, its task engine
// and each task's VM claims.
type Manager interface {
	// Locked runs fn holding the manager's lock: what fn reads, begins and
	// reserves through l stays true until it returns.
	Locked(fn func(l Locked) error) error
	// Launch persists t and runs w in the background; w's line closes it.
	Launch(t *tasks.Task, w func(ctx context.Context) (string, error)) error
	// Claim waits until no other task holds the VM, then takes it for t;
	// it returns the VM's record and revision, nil when the VM is gone.
	Claim(ctx context.Context, t *tasks.Task, vm string) (*acliv1.Vm, int64, error)
	// Arrive counts a VM on its way to host until end, then checks that
	// host still takes VMs (an evacuation of host waits for it); when it
	// does not, nothing is counted and the error says why.
	Arrive(host string) (end func(), err error)
	// WithDevicesOn is Cluster.WithDevicesOn.
	WithDevicesOn(vm *acliv1.Vm, host string) (*acliv1.Vm, error)
	// Record commits next if it is still at rev, then runs done under the
	// lock.
	Record(ctx context.Context, next *acliv1.Vm, rev int64, done func()) error
	// Progress and Message are Report's, for t.
	Progress(t *tasks.Task, percent int32, format string, args ...any)
	Message(t *tasks.Task, percent int32, format string, args ...any)
	// Publish tells an "ha" event of t (nil: of no task).
	Publish(t *tasks.Task, severity string, refs []*acliv1.EntityRef, format string, args ...any)
}

// Locked is what may be read, begun and counted under the manager's lock.
type Locked interface {
	// Closing reports whether the manager is shutting down.
	Closing() bool
	// Snapshot is the cluster as placement sees it, reservations counted.
	Snapshot() *scheduler.Snapshot
	// Begin starts a task of op naming refs.
	Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef) *tasks.Task
	// LetGo ends t's claim on the VM.
	LetGo(t *tasks.Task, vm string)
}

// Failover runs each down host's restart (Restart) as a kHaFailover task:
// it is the Controller's Launch.
type Failover struct {
	DB     *state.DB
	M      Manager
	Driver driver.Driver
}

// Launch begins the restart task of down host h and runs run in it with
// the task's Cluster and Report. With failover off it starts nothing,
// says so in an event and returns ErrFailoverDisabled.
func (f *Failover) Launch(h *acliv1.Host, run func(context.Context, Cluster, Report) (string, error)) error {
	c := &taskCluster{f: f}
	refs := []*acliv1.EntityRef{state.HostRef(h)}
	err := f.M.Locked(func(l Locked) error {
		if l.Closing() {
			return errors.New("clusterd is shutting down")
		}
		var cl *acliv1.Cluster
		f.DB.View(func(tx *state.Tx) { cl = tx.Cluster() })
		if !FailoverEnabled(cl) {
			return ErrFailoverDisabled
		}
		c.t = l.Begin(acliv1.TaskOperation_kHaFailover, refs)
		c.t.Release = c.releaseAll
		return nil
	})
	if errors.Is(err, ErrFailoverDisabled) {
		f.M.Publish(nil, "warning", refs, "host %s is down and its VMs are not restarted: %v", label(h), err)
	}
	if err != nil {
		return err
	}
	return f.M.Launch(c.t, func(ctx context.Context) (string, error) { return run(ctx, c, c) })
}

// HeartbeatTimeout is how long a host may stay silent: misses of the
// driver's heartbeat interval, at least floor, unless configured.
func HeartbeatTimeout(configured time.Duration, misses int, interval, floor time.Duration) time.Duration {
	if configured > 0 {
		return configured
	}
	return max(time.Duration(misses)*interval, floor)
}

// taskCluster is one restart task's Cluster and Report: the task, its
// claims, and the memory it reserves on each VM's target until the VM is
// recorded there or the task ends.
type taskCluster struct {
	f *Failover
	t *tasks.Task

	mu    sync.Mutex
	holds map[string]uint64 // VM -> its reservation (state.DB.Hold)
}

// reserve holds vm's memory on host, in place of its earlier reservation.
func (c *taskCluster) reserve(vm *acliv1.Vm, host string) {
	id := c.f.DB.Hold(vm, host)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holds == nil {
		c.holds = map[string]uint64{}
	}
	if old, ok := c.holds[vm.Uuid]; ok {
		c.f.DB.Depart(old)
	}
	c.holds[vm.Uuid] = id
}

func (c *taskCluster) release(vm string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.holds[vm]; ok {
		c.f.DB.Depart(id)
		delete(c.holds, vm)
	}
}

func (c *taskCluster) releaseAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for vm, id := range c.holds {
		c.f.DB.Depart(id)
		delete(c.holds, vm)
	}
}

func (c *taskCluster) Plan(down string) (plan *scheduler.HAPlan, err error) {
	err = c.f.M.Locked(func(l Locked) error {
		if plan, err = scheduler.PlanHARestart(l.Snapshot(), []string{down}, scheduler.Options{}); err != nil {
			return err
		}
		for _, st := range plan.Restarts {
			var v *acliv1.Vm
			var h *acliv1.Host
			c.f.DB.View(func(tx *state.Tx) { v, h = tx.Vm(st.VM.UUID), tx.Host(st.Target.UUID) })
			if v != nil && h != nil {
				c.reserve(v, h.Uuid)
			}
		}
		return nil
	})
	return plan, err
}

func (c *taskCluster) Claim(ctx context.Context, id string) (*acliv1.Vm, int64, error) {
	return c.f.M.Claim(ctx, c.t, id)
}

func (c *taskCluster) LetGo(id string) {
	c.release(id)
	_ = c.f.M.Locked(func(l Locked) error { l.LetGo(c.t, id); return nil })
}

func (c *taskCluster) Fence(ctx context.Context, down *acliv1.Host, vm *acliv1.Vm) error {
	return Fence(ctx, c.f.Driver, down, vm)
}

// Target counts the VM arriving on its planned target and re-validates it
// (Manager.Arrive); when it no longer takes VMs the VM is planned again on
// the cluster as it is now.
func (c *taskCluster) Target(failed *acliv1.Host, vm *acliv1.Vm, planned string) (dst *acliv1.Host, arrived func(), why string) {
	end, err := c.f.M.Arrive(planned)
	if err == nil {
		c.f.DB.View(func(tx *state.Tx) { dst = tx.Host(planned) })
		if dst != nil {
			return dst, end, ""
		}
		end()
		err = fmt.Errorf("target %s left the cluster", planned)
	}
	_ = c.f.M.Locked(func(l Locked) error {
		plan, perr := scheduler.PlanHARestart(l.Snapshot(), []string{failed.Uuid}, scheduler.Options{})
		if perr != nil {
			why = fmt.Sprintf("%v; planning again failed: %v", err, perr)
			return nil
		}
		for _, st := range plan.Restarts {
			if st.VM.UUID != vm.Uuid || st.Target.UUID == planned {
				continue
			}
			var h *acliv1.Host
			c.f.DB.View(func(tx *state.Tx) { h = tx.Host(st.Target.UUID) })
			if h == nil {
				continue
			}
			if end, aerr := c.f.M.Arrive(h.Uuid); aerr == nil {
				c.reserve(vm, h.Uuid)
				dst, arrived = h, end
				return nil
			}
		}
		why = fmt.Sprintf("%v, and no other host can take it now", err)
		return nil
	})
	return dst, arrived, why
}

func (c *taskCluster) WithDevicesOn(vm *acliv1.Vm, host string) (*acliv1.Vm, error) {
	return c.f.M.WithDevicesOn(vm, host)
}

func (c *taskCluster) PowerOn(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	return c.f.Driver.PowerOn(ctx, h, vm)
}

func (c *taskCluster) PowerOff(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	return c.f.Driver.PowerOff(ctx, h, vm)
}

// Record commits the VM; its reservation ends with the commit.
func (c *taskCluster) Record(ctx context.Context, next *acliv1.Vm, rev int64) error {
	id := next.Uuid
	return c.f.M.Record(ctx, next, rev, func() { c.release(id) })
}

func (c *taskCluster) Refused(err error) bool {
	var ve *state.ViolationError
	return errors.As(err, &ve)
}

func (c *taskCluster) Down(host string) (down bool) {
	c.f.DB.View(func(tx *state.Tx) {
		h := tx.Host(host)
		down = h != nil && h.NodeState == acliv1.NodeState_kNodeDown
	})
	return down
}

func (c *taskCluster) Progress(percent int32, format string, args ...any) {
	c.f.M.Progress(c.t, percent, format, args...)
}

func (c *taskCluster) Message(percent int32, format string, args ...any) {
	c.f.M.Message(c.t, percent, format, args...)
}

func (c *taskCluster) Event(severity string, vm *acliv1.Vm, hosts []*acliv1.Host, format string, args ...any) {
	refs := []*acliv1.EntityRef{state.VmRef(vm)}
	for _, h := range hosts {
		refs = append(refs, state.HostRef(h))
	}
	c.f.M.Publish(c.t, severity, refs, format, args...)
}
