package manager

import (
	"context"
	"fmt"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/migrate"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/tasks"
)

// Host and CVM maintenance are manager/maintenance's (maintenance.Service).
// This file is its view of the manager: the lock under which it plans and
// reserves, the task engine, and each task's VM locks and moves
// (maintCluster).

// maintManager is maintenance.Manager over this manager; holds are the
// running maintenance tasks' reservations (under Manager.mu).
type maintManager struct {
	m     *Manager
	holds map[*taskRec]*holds
}

// maintLocked is what maintenance reads, begins and reserves under Manager.mu.
type maintLocked struct{ *maintManager }

func (c *maintManager) Locked(fn func(l maintenance.Locked) error) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	return fn(maintLocked{c})
}

func (c *maintManager) Read(fn func(r maintenance.Reader)) {
	c.m.mu.RLock()
	defer c.m.mu.RUnlock()
	fn(maintLocked{c})
}

func (c *maintManager) Launch(ctx context.Context, t *taskRec, w func(ctx context.Context) (maintenance.Done, error)) (*acliv1.Task, error) {
	return c.m.launch(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		d, err := w(ctx)
		return doneOutcome(d), err
	})
}

// doneOutcome is how a maintenance task ended as the task engine commits it.
func doneOutcome(d maintenance.Done) outcome {
	out := outcome{message: d.Message}
	for _, w := range d.Writes {
		out.writes = append(out.writes, write{key: w.Key, msg: w.Msg, rev: w.Rev})
	}
	if d.Committed != nil {
		out.apply = func(int64) { d.Committed() }
	}
	return out
}

func (c *maintManager) Forget(t *taskRec) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	c.m.forgetLocked(t)
}

// SetHost commits change to host id (state.TransitionHost), recomputing
// it from the current record when a concurrent change got there first: a
// host that went down meanwhile refuses the change instead of being
// overwritten.
func (c *maintManager) SetHost(ctx context.Context, id string, change state.HostChange) (*acliv1.Host, error) {
	for attempt := 0; ; attempt++ {
		var cur *acliv1.Host
		var rev int64
		c.m.db.View(func(tx *state.Tx) { cur, rev = tx.Host(id), tx.Rev(state.HostKey(id)) })
		if cur == nil {
			return nil, apierr.NotFound("host", id, nil)
		}
		next, err := state.TransitionHost(cur, change)
		if err != nil {
			return nil, err
		}
		if next == cur {
			return cur, nil
		}
		_, err = c.m.commit(context.WithoutCancel(ctx), []write{{key: state.HostKey(id), msg: next, rev: rev}})
		if attempt < 5 && store.IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return next, nil
	}
}

func (c *maintManager) AwaitArrivals(ctx context.Context, host string) error {
	return c.m.ops.moves.AwaitArrivals(ctx, host)
}

func (c *maintManager) Steps(t *taskRec) maintenance.Cluster {
	c.m.mu.RLock()
	defer c.m.mu.RUnlock()
	return &maintCluster{m: c.m, t: t, hs: c.holds[t]}
}

func (c *maintManager) Log(t *taskRec, line string) { c.m.tasks.Message(t, -1, "%s", line) }

func (c *maintManager) MaxMigrations() int { return c.m.ops.moves.Limit() }

func (c *maintManager) Interrupted() []*taskRec {
	m := c.m
	var left []*taskRec
	for _, pb := range m.tasks.Newest(m.taskRetention, func(pb *acliv1.Task) bool { return !tasks.Finished(pb.Status) && maintenance.Resumable(pb) }) {
		if t := m.tasks.Get(pb.Uuid); t != nil {
			left = append(left, t)
		}
	}
	return left
}

func (c *maintManager) CarryOn(t *taskRec, w func(ctx context.Context) (maintenance.Done, error)) {
	c.m.tasks.Resume(t, work(func(ctx context.Context, _ *taskRec) (outcome, error) {
		d, err := w(ctx)
		return doneOutcome(d), err
	}).engine())
}

func (l maintLocked) Holder(id string) *taskRec { return l.m.heldLocked(id) }

func (l maintLocked) Targets(host string) []*taskRec { return l.m.ops.moves.Targets(host) }

func (l maintLocked) Snapshot() *scheduler.Snapshot { return l.m.haSettings.Snapshot() }

// Begin starts a task whose reservations and target marks end with it.
func (l maintLocked) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *taskRec {
	t := l.m.newTaskLocked(op, refs, locks...)
	l.Adopt(t)
	return t
}

func (l maintLocked) Adopt(t *taskRec, locks ...string) {
	m, hs := l.m, &holds{}
	t.AddLock(locks...)
	l.holds[t] = hs
	t.Release = func() { hs.releaseAllLocked(); m.ops.moves.DropTargets(t); delete(l.holds, t) }
}

// Reserve holds the target memory of every move and restart in plan
// (state.DB.Hold) until the VM lands or the task lets it go or ends; the
// hosts it migrates VMs to are its targets.
func (l maintLocked) Reserve(t *taskRec, plan *scheduler.Plan) {
	m, hs := l.m, l.holds[t]
	for _, st := range plan.Steps {
		if st.Action != scheduler.ActionMigrate && st.Action != scheduler.ActionRestart {
			continue
		}
		v, h := m.vmAt(st.VM.UUID), m.hostAt(st.Target.UUID)
		if v == nil || h == nil {
			continue
		}
		hs.addLocked(v.pb.Uuid, m.holdLocked(v.pb, h))
		if st.Action == scheduler.ActionMigrate {
			m.ops.moves.AddTarget(h.pb.Uuid, t)
		}
	}
}

// maintenanceService wires manager/maintenance to this manager.
func (m *Manager) maintenanceService() *maintenance.Service {
	return &maintenance.Service{
		DB: m.db, Tasks: m.tasks,
		M: &maintManager{m: m, holds: map[*taskRec]*holds{}},
		Publish: func(typ, task string, refs []*acliv1.EntityRef, format string, args ...any) {
			m.publish(typ, "info", task, refs, format, args...)
		},
		CvmChanged: func(prev, next *acliv1.Host) { m.vgs.CvmChanged(m.ctx, prev, next) },
		Log:        m.log,
	}
}

// maintCluster is one maintenance task's view of this manager
// (maintenance.Cluster); hs holds the task's reservations.
type maintCluster struct {
	m  *Manager
	t  *taskRec
	hs *holds
}

// Lock takes the VM for the task and returns its record as the take's
// commit read it.
func (c *maintCluster) Lock(ctx context.Context, id string) (*acliv1.Vm, int64, error) {
	r, err := c.m.lockVm(ctx, c.t, id)
	if err != nil || r == nil {
		return nil, 0, err
	}
	return r.pb, r.rev, nil
}

func (c *maintCluster) Unlock(id string) { c.m.unlockVm(c.t, id) }

func (c *maintCluster) LetGo(id string) {
	c.m.mu.Lock()
	c.hs.releaseLocked(id)
	c.m.mu.Unlock()
}

func (c *maintCluster) Host(id string) (h *acliv1.Host) {
	c.m.db.View(func(tx *state.Tx) { h = tx.Host(id) })
	return h
}

func (c *maintCluster) Vm(id string) (v *acliv1.Vm) {
	c.m.db.View(func(tx *state.Tx) { v = tx.Vm(id) })
	return v
}

func (c *maintCluster) Migrate(ctx context.Context, vm *acliv1.Vm, rev int64, src, dst *acliv1.Host, cold bool, edit func(*acliv1.Vm), percent func() int32) (fmt.Stringer, error) {
	mv := migrate.Move{VM: vm, Rev: rev, Src: src, Dst: dst, Edit: edit}
	release := func() { c.hs.releaseLocked(vm.Uuid) }
	if cold {
		return offline{}, c.m.offlineMigrate(ctx, c.t, mv, release)
	}
	return c.m.liveMigrate(ctx, c.t, mv, release, percent)
}

func (c *maintCluster) TargetGone(err error) bool {
	return migrate.TargetGone(err)
}

func (c *maintCluster) Shutdown(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	return c.m.drv.Shutdown(ctx, h, vm)
}

func (c *maintCluster) PowerOn(ctx context.Context, h *acliv1.Host, vm *acliv1.Vm) error {
	return c.m.drv.PowerOn(ctx, h, vm)
}

func (c *maintCluster) Record(ctx context.Context, next *acliv1.Vm, rev int64, release bool) error {
	var fn func()
	if id := next.Uuid; release {
		fn = func() { c.hs.releaseLocked(id) }
	}
	return c.m.putVm(ctx, next, rev, fn)
}

func (c *maintCluster) Progress(percent int32, format string, args ...any) {
	c.m.progress(c.t, percent, format, args...)
}

func (c *maintCluster) Message(percent int32, format string, args ...any) {
	c.m.tasks.Message(c.t, percent, format, args...)
}

func (c *maintCluster) Event(vm *acliv1.Vm, h *acliv1.Host, format string, args ...any) {
	c.m.publish("vm", "info", c.t.PB().Uuid, []*acliv1.EntityRef{state.VmRef(vm), state.HostRef(h)}, format, args...)
}

// offline is how a cold move reads in the task log.
type offline struct{}

func (offline) String() string { return "offline" }
