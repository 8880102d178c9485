package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/hostsync"
	"github.com/acli-dev/acli/manager/scheduler"
)

// HA: hosts heartbeat to the manager (through the driver's event stream);
// a host silent for longer than the heartbeat timeout is marked down, and
// the VMs recorded running on a down host are restarted elsewhere by
// scheduler.PlanHARestart: higher HA priority first, as capacity allows.
// A VM is restarted only once its copy on the down host is fenced (powered
// off there, the host proven dead, or its storage sessions refused: see
// fenceCopy); until then it stays recorded on the down host, an event says why,
// and HA tries again while the host stays down. VMs that do not fit are
// listed in the kHaFailover task and recorded off once fenced.
// A host whose heartbeats resume (or that the driver reports up) is in
// service again.

// fenceTimeout bounds one attempt to fence a VM on its down host;
// fenceRetry is the wait before the next attempt while the host stays down.
const (
	fenceTimeout = 10 * time.Second
	fenceRetry   = time.Second
)

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

// watchHeartbeats runs the heartbeat monitor (manager/hostsync) until the
// manager closes. It reads the heartbeats without the model lock.
func (m *Manager) watchHeartbeats() {
	defer m.bgWG.Done()
	timeout := m.heartbeatTimeout()
	mon := &hostsync.Monitor{
		Timeout: timeout,
		Beats:   m.heartbeats,
		MarkDown: func(id string, silent time.Duration, now time.Time) {
			reason := fmt.Sprintf("no heartbeat for %v (timeout %v)", silent.Round(time.Millisecond), timeout)
			if err := m.applyHostEvent(context.Background(), driver.HostEvent{Kind: driver.HostDown, HostUUID: id, Time: now, Reason: reason}); err != nil && m.ctx.Err() == nil {
				m.log.Error("marking a silent host down", "host", id, "err", err)
			}
		},
		Suspect: func(silent, live int) {
			m.log.Warn("most hosts are silent at once; suspecting the manager or its network, no host is marked down", "silent", silent, "of", live)
			m.publish("cluster", "warning", "", nil, "%d of %d hosts stopped sending heartbeats at once: suspecting clusterd or its network, no host is marked down and HA does not restart VMs", silent, live)
		},
	}
	mon.Run(m.ctx)
}

// heartbeats is what the monitor knows of every host.
func (m *Manager) heartbeats() []hostsync.Beat {
	var out []hostsync.Beat
	m.beats.Range(func(k, v any) bool {
		h := v.(*hostRec)
		out = append(out, hostsync.Beat{ID: k.(string), Last: unixNano(h.heartbeat.Load()), Down: h.down.Load()})
		return true
	})
	return out
}

// startHA launches the HA restart of a down host's VMs, unless one runs.
func (m *Manager) startHA(h *acliv1.Host) {
	hs := &holds{}
	m.mu.Lock()
	if m.closing || m.ops.haRunning[h.Uuid] != nil {
		m.mu.Unlock()
		return
	}
	t := m.newTaskLocked(acliv1.TaskOperation_kHaFailover, []*acliv1.EntityRef{hostRef(h)})
	m.ops.haRunning[h.Uuid] = t
	t.Release = func() {
		hs.releaseAllLocked()
		if m.ops.haRunning[h.Uuid] == t {
			delete(m.ops.haRunning, h.Uuid)
		}
	}
	m.mu.Unlock()
	if _, err := m.launch(m.ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		return m.haRestart(ctx, t, h, hs)
	}); err != nil {
		m.log.Error("starting HA", "host", h.Name, "err", err)
	}
}

func (m *Manager) haRestart(ctx context.Context, t *taskRec, h *acliv1.Host, hs *holds) (outcome, error) {
	label := hostLabel(h)
	restarted := 0
	var left []string
	told := map[string]bool{} // VMs whose missing fence was already reported
	for round := 0; ; round++ {
		n, l, unfenced, err := m.haRound(ctx, t, h, hs, round, told)
		restarted += n
		left = append(left, l...)
		if err != nil {
			return outcome{}, err
		}
		if unfenced == 0 {
			break
		}
		// A VM not fenced stays recorded on the down host; try again while
		// the host stays down. A host back in service runs them itself.
		select {
		case <-ctx.Done():
			return outcome{}, ctx.Err()
		case <-time.After(fenceRetry):
		}
		if !m.hostDown(h.Uuid) {
			left = append(left, fmt.Sprintf("%d VM(s) not fenced stay on %s, which is back", unfenced, label))
			break
		}
	}
	msg := fmt.Sprintf("HA restarted %d VM(s) of %s", restarted, label)
	if len(left) > 0 {
		msg += fmt.Sprintf("; %d stay off: %s", len(left), joinLines(left))
	}
	return outcome{message: msg}, nil
}

// hostDown reports whether the host is recorded down.
func (m *Manager) hostDown(id string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.hosts[id]
	return r != nil && r.pb.NodeState == acliv1.NodeState_kNodeDown
}

// haRound plans the restart of the VMs still recorded on the down host and
// carries it out; each VM is fenced first. unfenced counts the VMs left on
// the host because their copy there could not be fenced.
func (m *Manager) haRound(ctx context.Context, t *taskRec, h *acliv1.Host, hs *holds, round int, told map[string]bool) (restarted int, left []string, unfenced int, err error) {
	label := hostLabel(h)
	m.mu.Lock()
	plan, err := scheduler.PlanHARestart(m.snapshotLocked(), []string{h.Uuid}, scheduler.Options{})
	if err != nil {
		m.mu.Unlock()
		return 0, nil, 0, err
	}
	m.holdPlanLocked(t, &scheduler.Plan{Steps: plan.Restarts}, hs)
	m.mu.Unlock()
	total := len(plan.Restarts) + len(plan.NotRestarted)
	if round == 0 {
		m.addMessage(t, 1, "host %s is down: restarting %d of its %d VM(s) elsewhere, by HA priority, each once its copy there is fenced", label, len(plan.Restarts), total)
	}
	// notFenced keeps a VM recorded on the down host and says why, once.
	notFenced := func(vm *acliv1.Vm, ferr error) {
		unfenced++
		if told[vm.Uuid] {
			return
		}
		told[vm.Uuid] = true
		m.publish("ha", "error", m.taskUUID(t), []*acliv1.EntityRef{vmRef(vm), hostRef(h)},
			"HA does not restart vm %s yet: its copy on %s is not fenced (%v); it stays recorded there until fenced or the host is back", vm.Name, label, ferr)
		m.addMessage(t, -1, "vm %s stays recorded on %s: not fenced (%v)", vm.Name, label, ferr)
	}
	for i, s := range plan.Restarts {
		if err := ctx.Err(); err != nil {
			return restarted, left, unfenced, err
		}
		pct := int32(1 + 98*i/max(total, 1))
		r, err := m.lockVm(ctx, t, s.VM.UUID)
		if err != nil {
			return restarted, left, unfenced, err
		}
		if r == nil {
			m.releaseHold(hs, s.VM.UUID)
			continue
		}
		m.mu.RLock()
		cur, rev := r.pb, r.rev
		m.mu.RUnlock()
		if !placed(cur) || cur.HostUuid != h.Uuid {
			m.releaseHold(hs, cur.Uuid)
			m.unlockVm(t, cur.Uuid)
			continue
		}
		// Never two copies: the old one is fenced before the new one starts.
		if err := m.fenceCopy(ctx, h, cur); err != nil {
			m.releaseHold(hs, cur.Uuid)
			m.unlockVm(t, cur.Uuid)
			notFenced(cur, err)
			continue
		}
		// The target must still take VMs when the restart starts; if not,
		// the VM is placed again on the cluster as it is now.
		dst, arrived, why := m.haTarget(h, cur, s.Target.UUID, hs)
		if dst == nil {
			m.releaseHold(hs, cur.Uuid)
			if err := m.recordOff(ctx, cur, rev); err != nil {
				why += "; " + err.Error()
			}
			m.unlockVm(t, cur.Uuid)
			left = append(left, fmt.Sprintf("vm %s: %s", cur.Name, why))
			m.addMessage(t, pct, "vm %s was not restarted: %s", cur.Name, why)
			continue
		}
		m.progress(t, pct, "restarting vm %s (HA priority %d) on %s", cur.Name, cur.HaPriority, hostLabel(dst))
		err = m.drv.PowerOn(ctx, dst, cur)
		if err != nil {
			m.mu.Lock()
			arrived()
			m.mu.Unlock()
			m.releaseHold(hs, cur.Uuid)
			if ctx.Err() != nil {
				m.unlockVm(t, cur.Uuid)
				return restarted, left, unfenced, ctx.Err()
			}
			// Fenced and not started: it runs nowhere.
			if rerr := m.recordOff(ctx, cur, rev); rerr != nil {
				err = fmt.Errorf("%v; %v", err, rerr)
			}
			m.unlockVm(t, cur.Uuid)
			left = append(left, fmt.Sprintf("vm %s: power-on on %s failed: %v", cur.Name, hostLabel(dst), err))
			m.addMessage(t, pct, "vm %s was not restarted: %v", cur.Name, err)
			continue
		}
		next := proto.Clone(cur).(*acliv1.Vm)
		next.HostUuid, next.HostName = dst.Uuid, dst.Name
		id := cur.Uuid
		err = m.putVm(ctx, next, rev, func() { hs.releaseLocked(id) })
		m.mu.Lock()
		arrived()
		m.mu.Unlock()
		m.unlockVm(t, cur.Uuid)
		if err != nil && refusedByRules(err) {
			// dst closed while the VM started there: it is stopped again.
			if perr := m.drv.PowerOff(context.WithoutCancel(ctx), dst, cur); perr != nil {
				err = fmt.Errorf("%w; powering it off again failed: %v", err, perr)
			}
			left = append(left, fmt.Sprintf("vm %s was not restarted on %s: %v", cur.Name, hostLabel(dst), err))
			continue
		}
		if err != nil {
			left = append(left, fmt.Sprintf("vm %s restarted on %s but recording it failed: %v", cur.Name, hostLabel(dst), err))
			continue
		}
		restarted++
		m.publish("ha", "warning", m.taskUUID(t), []*acliv1.EntityRef{vmRef(cur), hostRef(h), hostRef(dst)},
			"HA restarted vm %s on %s after %s went down", cur.Name, hostLabel(dst), label)
		m.addMessage(t, pct, "vm %s restarted on %s", cur.Name, hostLabel(dst))
	}
	// The others are recorded off only once fenced: a host that is merely
	// cut off from the manager may still run them.
	for _, s := range plan.NotRestarted {
		r, err := m.lockVm(ctx, t, s.VM.UUID)
		if err != nil {
			return restarted, left, unfenced, err
		}
		if r == nil {
			continue
		}
		m.mu.RLock()
		cur, rev := r.pb, r.rev
		m.mu.RUnlock()
		if !placed(cur) || cur.HostUuid != h.Uuid {
			m.unlockVm(t, cur.Uuid)
			continue
		}
		if err := m.fenceCopy(ctx, h, cur); err != nil {
			m.unlockVm(t, cur.Uuid)
			notFenced(cur, err)
			continue
		}
		if err := m.recordOff(ctx, cur, rev); err != nil {
			left = append(left, err.Error())
		}
		m.unlockVm(t, cur.Uuid)
		left = append(left, s.Reason)
		m.publish("ha", "error", m.taskUUID(t), []*acliv1.EntityRef{vmRef(cur), hostRef(h)}, "HA did not restart vm %s: %s", cur.Name, s.Reason)
		m.addMessage(t, -1, "not restarted: %s", s.Reason)
	}
	return restarted, left, unfenced, nil
}

// fenceCopy proves that the copy of vm on the down host can no longer run or
// write to its vDisks: powered off there (the driver's PowerOff, which
// succeeds when the VM is already gone), the host proven dead (a
// driver.HostFencer), or its storage cut off (a driver.VmFencer: the data
// path refusing the host's sessions). It returns why none did.
func (m *Manager) fenceCopy(ctx context.Context, down *acliv1.Host, vm *acliv1.Vm) error {
	fctx, cancel := context.WithTimeout(ctx, fenceTimeout)
	defer cancel()
	err := m.drv.PowerOff(fctx, down, vm)
	if err == nil {
		return nil
	}
	why := []string{"power-off: " + err.Error()}
	if f, ok := m.drv.(driver.HostFencer); ok {
		if err := f.FenceHost(fctx, down); err == nil {
			return nil
		} else {
			why = append(why, "host: "+err.Error())
		}
	}
	if f, ok := m.drv.(driver.VmFencer); ok {
		if err := f.FenceVm(fctx, down, vm); err == nil {
			return nil
		} else {
			why = append(why, "storage: "+err.Error())
		}
	}
	return errors.New(strings.Join(why, "; "))
}

// recordOff records a fenced VM off: it runs nowhere.
func (m *Manager) recordOff(ctx context.Context, vm *acliv1.Vm, rev int64) error {
	next := proto.Clone(vm).(*acliv1.Vm)
	next.PowerState, next.HostUuid, next.HostName = acliv1.PowerState_kOff, "", ""
	if err := m.putVm(ctx, next, rev, nil); err != nil {
		return fmt.Errorf("vm %s: recording it off failed: %v", vm.Name, err)
	}
	return nil
}

// haTarget re-validates an HA restart's planned target and counts the VM
// as arriving there; when the target no longer takes VMs it plans the VM
// again. It returns nil and why when no host can take it now.
func (m *Manager) haTarget(failed *acliv1.Host, vm *acliv1.Vm, planned string, hs *holds) (*acliv1.Host, func(), string) {
	err := m.checkTarget(planned)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		return m.hosts[planned].pb, m.arriveLocked(planned), ""
	}
	plan, perr := scheduler.PlanHARestart(m.snapshotLocked(), []string{failed.Uuid}, scheduler.Options{})
	if perr != nil {
		return nil, nil, fmt.Sprintf("%v; planning again failed: %v", err, perr)
	}
	for _, st := range plan.Restarts {
		if r := m.hosts[st.Target.UUID]; st.VM.UUID == vm.Uuid && r != nil && st.Target.UUID != planned {
			hs.addLocked(vm.Uuid, m.holdLocked(vm.Uuid, r, vm.MemoryBytes))
			return r.pb, m.arriveLocked(r.pb.Uuid), ""
		}
	}
	return nil, nil, fmt.Sprintf("%v, and no other host can take it now", err)
}

func (m *Manager) releaseHold(hs *holds, vm string) {
	m.mu.Lock()
	hs.releaseLocked(vm)
	m.mu.Unlock()
}
