package manager

import (
	"context"
	"fmt"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/migrate"
	"github.com/acli-dev/acli/manager/scheduler"
)

// move is one VM move carried out by a task that holds the VM's lock.
type move struct {
	vm      *acliv1.Vm // the record when the move started
	rev     int64
	src     *acliv1.Host
	dst     *acliv1.Host
	bwMbps  int64
	release func() // run under Manager.mu with the commit (frees the target hold)
	// edit adjusts the new record (e.g. sets or clears original_host_uuid).
	edit func(*acliv1.Vm)
}

func (mv move) plain() migrate.Move {
	return migrate.Move{VM: mv.vm, Rev: mv.rev, Src: mv.src, Dst: mv.dst, BandwidthMbps: mv.bwMbps, Edit: mv.edit}
}

// liveMigrate runs migrate.Live for task t; percent, when set, is the
// task's progress (an evacuation's), else the migration's own.
func (m *Manager) liveMigrate(ctx context.Context, t *taskRec, mv move, percent func() int32) (migrate.Result, error) {
	c := &moveCluster{m: m, t: t, mv: mv, percent: percent}
	return migrate.Live(ctx, c, c, m.drv, mv.plain())
}

// offlineMigrate runs migrate.Offline for task t.
func (m *Manager) offlineMigrate(ctx context.Context, t *taskRec, mv move) error {
	c := &moveCluster{m: m, t: t, mv: mv}
	return migrate.Offline(ctx, c, c, m.drv, mv.plain())
}

// moveCluster is one move's view of the manager (migrate.Cluster and
// migrate.Report).
type moveCluster struct {
	m       *Manager
	t       *taskRec
	mv      move
	percent func() int32
}

func (c *moveCluster) Slots(ctx context.Context, src, dst string) (func(), error) {
	if err := c.m.ops.slots.acquire(ctx, src, dst); err != nil {
		return nil, err
	}
	return func() { c.m.ops.slots.release(src, dst) }, nil
}

func (c *moveCluster) CheckTarget(host string) error { return c.m.checkTarget(host) }

func (c *moveCluster) Record(ctx context.Context, next *acliv1.Vm, rev int64) (int64, error) {
	var release func()
	if placed(next) && next.HostUuid == c.mv.dst.Uuid {
		release = c.mv.release
	}
	if err := c.m.putVm(ctx, next, rev, release); err != nil {
		return 0, err
	}
	c.m.mu.RLock()
	defer c.m.mu.RUnlock()
	return c.m.vmAt(next.Uuid).rev, nil
}

func (c *moveCluster) WithDevicesOn(vm *acliv1.Vm, host string) (*acliv1.Vm, error) {
	return c.m.withDevicesOn(vm, host)
}

func (c *moveCluster) Refused(err error) bool { return refusedByRules(err) }

func (c *moveCluster) RecordObserved(ctx context.Context, vm *acliv1.Vm, rev int64) error {
	_, err := c.m.commitObserved(ctx, []write{{key: vmKey(vm.Uuid), msg: vm, rev: rev}})
	return err
}

func (c *moveCluster) Progress(percent int32, line string, p *acliv1.MigrationProgress) {
	m := c.m
	m.mu.Lock()
	defer m.mu.Unlock()
	c.t.Update(func(pb *acliv1.Task) {
		pb.ProgressMessage = line
		if p != nil {
			pb.Migration = p
		}
		switch {
		case c.percent != nil && p != nil:
			pb.Percent = c.percent()
		case p != nil:
			pb.Percent = max(pb.Percent, percent)
		case percent >= 0:
			pb.Percent = percent
		}
	})
}

func (c *moveCluster) Event(severity, format string, args ...any) {
	refs := []*acliv1.EntityRef{vmRef(c.mv.vm), hostRef(c.mv.src), hostRef(c.mv.dst)}
	c.m.publish("migration", severity, c.m.taskUUID(c.t), refs, format, args...)
}

func (c *moveCluster) PastReturn() { c.m.pastReturn(c.t) }

// MigrateVm moves a VM to the named host or to the scheduler's choice. It
// always moves the VM to another host or refuses, listing each candidate
// host and why it was rejected.
func (s vmService) MigrateVm(ctx context.Context, req *acliv1.MigrateVmRequest) (*acliv1.Task, error) {
	m := s.m
	if req.BandwidthMbps < 0 {
		return nil, apierr.BadField("bandwidth_mbps", "bandwidth_mbps %d must not be negative, e.g. bandwidth_mbps=10000", req.BandwidthMbps)
	}
	live := req.Live == nil || *req.Live
	m.mu.Lock()
	r, err := m.vmLocked("vm", req.Vm)
	if err == nil {
		err = m.checkBusyLocked("vm", r.pb.Name, r.pb.Uuid)
	}
	var target *hostRec
	if err == nil && req.Host != "" {
		target, err = m.hostLocked("host", req.Host)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur, rev := r.pb, r.rev
	snap := m.snapshotLocked()
	sv := schedVM(cur, nil)
	switch {
	case !placed(cur):
		err = apierr.Precondition("POWER_STATE", "vm:"+cur.Name, "vm %s is off and has no host to move from; power it on (vm.on %s host=...) instead", cur.Name, cur.Name)
	case cur.AgentVm:
		err = apierr.Precondition("AGENT_VM", "vm:"+cur.Name, "vm %s is an agent VM and stays on its host", cur.Name)
	case live && cur.PowerState == acliv1.PowerState_kPaused:
		err = apierr.Precondition("POWER_STATE", "vm:"+cur.Name, "vm %s is paused; resume it first or use live=false", cur.Name)
	case live:
		if cerr := scheduler.CanLiveMigrate(&sv); cerr != nil {
			err = apierr.Precondition("NOT_MIGRATABLE", "vm:"+cur.Name, "%v", cerr)
		}
	}
	if err == nil && m.hostAt(cur.HostUuid) == nil {
		err = apierr.Precondition("HOST", "vm:"+cur.Name, "vm %s is recorded on unknown host %s", cur.Name, cur.HostUuid)
	}
	if err == nil && m.hostAt(cur.HostUuid).pb.NodeState == acliv1.NodeState_kNodeDown {
		err = apierr.Precondition("HOST_DOWN", "host:"+cur.HostName, "vm %s is on %s, which is down; HA restarts it elsewhere", cur.Name, hostLabel(m.hostAt(cur.HostUuid).pb))
	}
	if err == nil {
		if target != nil {
			if cerr := scheduler.CheckTarget(snap, cur.Uuid, target.pb.Uuid, scheduler.Options{}); cerr != nil {
				err = apierr.Precondition("TARGET", "host:"+target.pb.Name, "%v", cerr)
			}
		} else {
			p, perr := scheduler.PickMigrationTarget(snap, cur.Uuid, "", scheduler.Options{})
			if perr != nil {
				err = noHostError(fmt.Sprintf("cannot migrate vm %s", cur.Name), perr)
			} else {
				target = m.hostAt(p.Host.UUID)
			}
		}
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	src, dst := m.hostAt(cur.HostUuid).pb, target.pb
	t := m.newTaskLocked(acliv1.TaskOperation_kVmMigrate, []*acliv1.EntityRef{vmRef(cur), hostRef(src), hostRef(dst)}, cur.Uuid)
	t.PB.Cancellable = live // until the switch-over (liveMigrate)
	hd := m.holdLocked(cur, target)
	m.addTargetLocked(dst.Uuid, t)
	t.Release = func() { hd.releaseLocked(); m.dropTargetsLocked(t) }
	m.mu.Unlock()
	mv := move{vm: cur, rev: rev, src: src, dst: dst, bwMbps: req.BandwidthMbps, release: hd.releaseLocked}
	how := "live-migrating"
	if !live {
		how = "moving (offline)"
	}
	return m.launch(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		m.addMessage(t, 1, "%s vm %s from %s to %s", how, cur.Name, hostLabel(src), hostLabel(dst))
		if !live {
			if err := m.offlineMigrate(ctx, t, mv); err != nil {
				return outcome{}, err
			}
			return outcome{message: fmt.Sprintf("vm %s moved from %s to %s (offline)", cur.Name, hostLabel(src), hostLabel(dst))}, nil
		}
		res, err := m.liveMigrate(ctx, t, mv, nil)
		if err != nil {
			return outcome{}, err
		}
		return outcome{message: fmt.Sprintf("vm %s migrated from %s to %s in %s", cur.Name, hostLabel(src), hostLabel(dst), res)}, nil
	})
}
