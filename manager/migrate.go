package manager

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
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

// migrated is what a finished live migration reports.
type migrated struct {
	rounds     int32
	downtimeMs int64
	took       time.Duration
}

func (r migrated) String() string {
	return fmt.Sprintf("%d round(s), downtime %d ms", r.rounds, r.downtimeMs)
}

// liveMigrate moves a running VM with the driver, streaming the pre-copy
// progress to the task, and records the VM on its target the moment the
// driver has switched it over: the VM is on exactly one host, in the
// driver and in the store, at every instant. On failure the VM stays on its
// source and nothing is recorded.
func (m *Manager) liveMigrate(ctx context.Context, t *taskRec, mv move, percent func() int32) (migrated, error) {
	vm, src, dst := mv.vm, mv.src, mv.dst
	if err := m.ops.slots.acquire(ctx, src.Uuid, dst.Uuid); err != nil {
		return migrated{}, err
	}
	defer m.ops.slots.release(src.Uuid, dst.Uuid)
	// The plan may be old by now (slots are waited for): the target must
	// still take VMs when the migration starts.
	if err := m.checkTarget(dst.Uuid); err != nil {
		return migrated{}, err
	}
	refs := []*acliv1.EntityRef{vmRef(vm), hostRef(src), hostRef(dst)}
	m.publish("migration", "info", m.taskUUID(t), refs, "migrating vm %s from %s to %s", vm.Name, hostLabel(src), hostLabel(dst))
	m.mu.Lock()
	t.Update(func(pb *acliv1.Task) {
		pb.ProgressMessage = fmt.Sprintf("migrating vm %s to %s", vm.Name, hostLabel(dst))
	})
	m.mu.Unlock()
	var last *acliv1.MigrationProgress
	var conv migrate.Convergence
	start := time.Now()
	err := m.drv.Migrate(ctx, vm, src, dst, driver.MigrateOptions{BandwidthMbps: mv.bwMbps}, func(p *acliv1.MigrationProgress) {
		last = p
		line := fmt.Sprintf("migrating vm %s to %s: round %d, %s remaining, est. downtime %d ms",
			vm.Name, hostLabel(dst), p.Round, bytesText(p.RemainingBytes), p.EstimatedDowntimeMs)
		warn, first := conv.Observe(p)
		if warn != "" {
			line += "; " + warn
		}
		if first {
			m.publish("migration", "warning", m.taskUUID(t), refs, "migration of vm %s to %s is %s", vm.Name, hostLabel(dst), warn)
		}
		m.mu.Lock()
		t.Update(func(pb *acliv1.Task) {
			pb.Migration, pb.ProgressMessage = p, line
			if percent != nil {
				pb.Percent = percent()
			} else {
				pb.Percent = max(pb.Percent, migrate.Percent(p))
			}
		})
		m.mu.Unlock()
	})
	if err != nil {
		m.publish("migration", "error", m.taskUUID(t), refs, "migration of vm %s from %s to %s failed: %v", vm.Name, hostLabel(src), hostLabel(dst), err)
		return migrated{}, err
	}
	m.pastReturn(t)
	next := proto.Clone(vm).(*acliv1.Vm)
	next.HostUuid, next.HostName = dst.Uuid, dst.Name
	if mv.edit != nil {
		mv.edit(next)
	}
	if err := m.putVm(ctx, next, mv.rev, mv.release); err != nil {
		if !refusedByRules(err) {
			return migrated{}, fmt.Errorf("vm %s moved to %s but recording it failed: %w", vm.Name, hostLabel(dst), err)
		}
		// The target closed while the VM moved (a cordon, maintenance): it
		// goes back where it is recorded.
		bctx := context.WithoutCancel(ctx)
		if berr := m.drv.Migrate(bctx, next, dst, src, driver.MigrateOptions{BandwidthMbps: mv.bwMbps}, func(*acliv1.MigrationProgress) {}); berr != nil {
			// It stays where it runs: recorded as found there.
			if rev, oerr := m.commitObserved(bctx, []write{{key: vmKey(next.Uuid), msg: next, rev: mv.rev}}); oerr == nil {
				m.mu.Lock()
				m.putVmLocked(next, rev)
				m.mu.Unlock()
			}
			return migrated{}, fmt.Errorf("vm %s moved to %s, which no longer takes VMs (%w), and moving it back failed: %v", vm.Name, hostLabel(dst), err, berr)
		}
		return migrated{}, fmt.Errorf("vm %s moved back to %s: %w", vm.Name, hostLabel(src), err)
	}
	res := migrated{took: time.Since(start)}
	if last != nil {
		res.rounds, res.downtimeMs = last.Round, last.EstimatedDowntimeMs
	}
	m.publish("migration", "info", m.taskUUID(t), refs, "vm %s migrated from %s to %s (%s)", vm.Name, hostLabel(src), hostLabel(dst), res)
	return res, nil
}

// offlineMigrate powers a VM off on its source and on again on its target;
// each step is recorded as it happens.
func (m *Manager) offlineMigrate(ctx context.Context, t *taskRec, mv move) error {
	vm, src, dst := mv.vm, mv.src, mv.dst
	m.progress(t, 20, "powering off vm %s on %s", vm.Name, hostLabel(src))
	if err := m.drv.PowerOff(ctx, src, vm); err != nil {
		return err
	}
	off := proto.Clone(vm).(*acliv1.Vm)
	off.PowerState, off.HostUuid, off.HostName = acliv1.PowerState_kOff, "", ""
	if err := m.putVm(ctx, off, mv.rev, nil); err != nil {
		return err
	}
	m.mu.RLock()
	rev := m.vms[vm.Uuid].rev
	m.mu.RUnlock()
	m.progress(t, 60, "powering on vm %s on %s", vm.Name, hostLabel(dst))
	if err := m.drv.PowerOn(ctx, dst, off); err != nil {
		return fmt.Errorf("vm %s is off: powering it on on %s failed: %w", vm.Name, hostLabel(dst), err)
	}
	on := proto.Clone(off).(*acliv1.Vm)
	on.PowerState, on.HostUuid, on.HostName = acliv1.PowerState_kOn, dst.Uuid, dst.Name
	if mv.edit != nil {
		mv.edit(on)
	}
	if err := m.putVm(ctx, on, rev, mv.release); err != nil {
		if refusedByRules(err) {
			if perr := m.drv.PowerOff(context.WithoutCancel(ctx), dst, off); perr != nil {
				return fmt.Errorf("%w; powering it off on %s again failed: %v", err, hostLabel(dst), perr)
			}
		}
		return err
	}
	return nil
}

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
	if err == nil && m.hosts[cur.HostUuid] == nil {
		err = apierr.Precondition("HOST", "vm:"+cur.Name, "vm %s is recorded on unknown host %s", cur.Name, cur.HostUuid)
	}
	if err == nil && m.hosts[cur.HostUuid].pb.NodeState == acliv1.NodeState_kNodeDown {
		err = apierr.Precondition("HOST_DOWN", "host:"+cur.HostName, "vm %s is on %s, which is down; HA restarts it elsewhere", cur.Name, hostLabel(m.hosts[cur.HostUuid].pb))
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
				target = m.hosts[p.Host.UUID]
			}
		}
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	src, dst := m.hosts[cur.HostUuid].pb, target.pb
	t := m.newTaskLocked(acliv1.TaskOperation_kVmMigrate, []*acliv1.EntityRef{vmRef(cur), hostRef(src), hostRef(dst)}, cur.Uuid)
	t.PB.Cancellable = live // until the switch-over (liveMigrate)
	hd := m.holdLocked(cur.Uuid, target, cur.MemoryBytes)
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
