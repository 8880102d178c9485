package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/ha"
	"github.com/acli-dev/acli/manager/scheduler"
)

// HA lives in manager/ha: its controller watches the heartbeats (m.beats),
// has silent hosts marked down here, and restarts a down host's VMs through
// haCluster, this manager's side of one restart task.

// heartbeatTimeout is how long a host may stay silent.
func (m *Manager) heartbeatTimeout() time.Duration {
	if m.ops.heartbeatTimeout > 0 {
		return m.ops.heartbeatTimeout
	}
	interval := time.Second
	if d, ok := m.drv.(interface{ HeartbeatInterval() time.Duration }); ok {
		interval = d.HeartbeatInterval()
	}
	return max(time.Duration(m.ops.heartbeatMisses)*interval, minHeartbeatTimeout)
}

// newHA assembles the HA controller; startOps runs it.
func (m *Manager) newHA() *ha.Controller {
	timeout := m.heartbeatTimeout()
	return &ha.Controller{
		Timeout: timeout,
		Beats:   &m.beats,
		MarkDown: func(id string, silent time.Duration, now time.Time) {
			reason := fmt.Sprintf("no heartbeat for %v (timeout %v)", silent.Round(time.Millisecond), timeout)
			if err := m.hostEv.Apply(context.Background(), driver.HostEvent{Kind: driver.HostDown, HostUUID: id, Time: now, Reason: reason}); err != nil && m.ctx.Err() == nil {
				m.log.Error("marking a silent host down", "host", id, "err", err)
			}
		},
		Suspect: func(silent, live int) {
			m.log.Warn("most hosts are silent at once; suspecting the manager or its network, no host is marked down", "silent", silent, "of", live)
			m.publish("cluster", "warning", "", nil, "%d of %d hosts stopped sending heartbeats at once: suspecting clusterd or its network, no host is marked down and HA does not restart VMs", silent, live)
		},
		Launch: m.launchHA,
	}
}

// launchHA runs one down host's restart as a kHaFailover task.
func (m *Manager) launchHA(h *acliv1.Host, run func(context.Context, ha.Cluster, ha.Report) (string, error)) error {
	c := &haCluster{m: m, hs: &holds{}}
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return errors.New("clusterd is shutting down")
	}
	if !ha.FailoverEnabled(m.clusterRecord()) {
		m.mu.Unlock()
		m.publish("ha", "warning", "", []*acliv1.EntityRef{hostRef(h)}, "host %s is down and its VMs are not restarted: %v", hostLabel(h), ha.ErrFailoverDisabled)
		return ha.ErrFailoverDisabled
	}
	c.t = m.newTaskLocked(acliv1.TaskOperation_kHaFailover, []*acliv1.EntityRef{hostRef(h)})
	c.t.Release = c.hs.releaseAllLocked
	m.mu.Unlock()
	_, err := m.launch(m.ctx, c.t, func(ctx context.Context, t *taskRec) (outcome, error) {
		msg, err := run(ctx, c, c)
		return outcome{message: msg}, err
	})
	if err != nil {
		m.log.Error("starting HA", "host", h.Name, "err", err)
	}
	return err
}

// hostDown reports whether the host is recorded down.
func (m *Manager) hostDown(id string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.hostAt(id)
	return r != nil && r.pb.NodeState == acliv1.NodeState_kNodeDown
}

// haCluster is one HA restart task's view of the manager (ha.Cluster and
// ha.Report); hs holds the task's reservations.
type haCluster struct {
	m  *Manager
	t  *taskRec
	hs *holds
}

func (c *haCluster) Plan(down string) (*scheduler.HAPlan, error) {
	m := c.m
	m.mu.Lock()
	defer m.mu.Unlock()
	plan, err := scheduler.PlanHARestart(m.snapshotLocked(), []string{down}, scheduler.Options{})
	if err != nil {
		return nil, err
	}
	m.holdPlanLocked(c.t, &scheduler.Plan{Steps: plan.Restarts}, c.hs)
	return plan, nil
}

func (c *haCluster) Claim(ctx context.Context, id string) (*acliv1.Vm, int64, error) {
	r, err := c.m.lockVm(ctx, c.t, id)
	if err != nil || r == nil {
		return nil, 0, err
	}
	c.m.mu.RLock()
	defer c.m.mu.RUnlock()
	return r.pb, r.rev, nil
}

func (c *haCluster) LetGo(id string) {
	c.m.mu.Lock()
	c.hs.releaseLocked(id)
	c.m.releaseLocked(c.t, id)
	c.m.mu.Unlock()
}

func (c *haCluster) Fence(ctx context.Context, down *acliv1.Host, vm *acliv1.Vm) error {
	return ha.Fence(ctx, c.m.drv, down, vm)
}

// Target re-validates the planned target; when it no longer takes VMs the
// VM is planned again on the cluster as it is now.
func (c *haCluster) Target(failed *acliv1.Host, vm *acliv1.Vm, planned string) (*acliv1.Host, func(), string) {
	m := c.m
	err := m.checkTarget(planned)
	m.mu.Lock()
	defer m.mu.Unlock()
	arrived := func(host string) func() {
		end := m.arriveLocked(host)
		return func() { m.mu.Lock(); end(); m.mu.Unlock() }
	}
	if err == nil {
		return m.hostAt(planned).pb, arrived(planned), ""
	}
	plan, perr := scheduler.PlanHARestart(m.snapshotLocked(), []string{failed.Uuid}, scheduler.Options{})
	if perr != nil {
		return nil, nil, fmt.Sprintf("%v; planning again failed: %v", err, perr)
	}
	for _, st := range plan.Restarts {
		if r := m.hostAt(st.Target.UUID); st.VM.UUID == vm.Uuid && r != nil && st.Target.UUID != planned {
			c.hs.addLocked(vm.Uuid, m.holdLocked(vm, r))
			return r.pb, arrived(r.pb.Uuid), ""
		}
	}
	return nil, nil, fmt.Sprintf("%v, and no other host can take it now", err)
}

func (c *haCluster) WithDevicesOn(vm *acliv1.Vm, host string) (*acliv1.Vm, error) {
	return c.m.withDevicesOn(vm, host)
}

func (c *haCluster) PowerOn(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	return c.m.drv.PowerOn(ctx, h, vm)
}

func (c *haCluster) PowerOff(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	return c.m.drv.PowerOff(ctx, h, vm)
}

// Record commits the VM; its reservation ends with the commit.
func (c *haCluster) Record(ctx context.Context, next *acliv1.Vm, rev int64) error {
	id := next.Uuid
	return c.m.putVm(ctx, next, rev, func() { c.hs.releaseLocked(id) })
}

func (c *haCluster) Refused(err error) bool { return refusedByRules(err) }
func (c *haCluster) Down(host string) bool  { return c.m.hostDown(host) }

func (c *haCluster) Progress(percent int32, format string, args ...any) {
	c.m.progress(c.t, percent, format, args...)
}

func (c *haCluster) Message(percent int32, format string, args ...any) {
	c.m.addMessage(c.t, percent, format, args...)
}

func (c *haCluster) Event(severity string, vm *acliv1.Vm, hosts []*acliv1.Host, format string, args ...any) {
	refs := []*acliv1.EntityRef{vmRef(vm)}
	for _, h := range hosts {
		refs = append(refs, hostRef(h))
	}
	c.m.publish("ha", severity, c.m.taskUUID(c.t), refs, format, args...)
}
