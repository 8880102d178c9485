package manager

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/migrate"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// liveMigrate runs migrate.Live for task t; release ends the target's
// reservation with the commit that records the VM there; percent, when
// set, is the task's progress (an evacuation's), else the migration's own.
func (m *Manager) liveMigrate(ctx context.Context, t *taskRec, mv migrate.Move, release func(), percent func() int32) (migrate.Result, error) {
	c := &moveCluster{Moves: m.ops.moves, m: m, t: t, mv: mv, release: release, percent: percent}
	return migrate.Live(ctx, c, c, m.drv, mv)
}

// offlineMigrate runs migrate.Offline for task t.
func (m *Manager) offlineMigrate(ctx context.Context, t *taskRec, mv migrate.Move, release func()) error {
	c := &moveCluster{Moves: m.ops.moves, m: m, t: t, mv: mv, release: release}
	return migrate.Offline(ctx, c, c, m.drv, mv)
}

// moveCluster is one move's view of the manager (migrate.Cluster and
// migrate.Report): the moves under way pace and count it.
type moveCluster struct {
	*migrate.Moves
	m       *Manager
	t       *taskRec
	mv      migrate.Move
	release func() // run under Manager.mu with the commit (frees the target hold)
	percent func() int32
}

func (c *moveCluster) Record(ctx context.Context, next *acliv1.Vm, rev int64) (int64, error) {
	var release func()
	if state.Placed(next) && next.HostUuid == c.mv.Dst.Uuid {
		release = c.release
	}
	if err := c.m.putVm(ctx, next, rev, release); err != nil {
		return 0, err
	}
	return c.m.vmAt(next.Uuid).rev, nil
}

func (c *moveCluster) WithDevicesOn(vm *acliv1.Vm, host string) (*acliv1.Vm, error) {
	return c.m.db.StartOn(vm, host)
}

func (c *moveCluster) Refused(err error) bool { return state.Refused(err) }

func (c *moveCluster) RecordObserved(ctx context.Context, vm *acliv1.Vm, rev int64) error {
	_, err := c.m.commitObserved(ctx, []write{{key: state.VmKey(vm.Uuid), msg: vm, rev: rev}})
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
	refs := []*acliv1.EntityRef{state.VmRef(c.mv.VM), state.HostRef(c.mv.Src), state.HostRef(c.mv.Dst)}
	c.m.publish("migration", severity, c.t.PB().Uuid, refs, format, args...)
}

func (c *moveCluster) PastReturn() { c.t.PastReturn() }

// vmMigration serves vm.migrate (in vmFeature).
type vmMigration = migrate.Service

// migrateManager is manager/migrate's view of this manager (migrate.Manager).
type migrateManager struct{ m *Manager }

// migrateLocked is what vm.migrate reads, begins and reserves under Manager.mu.
type migrateLocked struct{ m *Manager }

func (c migrateManager) Locked(fn func(l migrate.Locked) error) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	return fn(migrateLocked(c))
}

func (c migrateManager) Launch(ctx context.Context, t *taskRec, w func(ctx context.Context) (string, error)) (*acliv1.Task, error) {
	return c.m.launch(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		msg, err := w(ctx)
		return outcome{message: msg}, err
	})
}

func (c migrateManager) Log(t *taskRec, percent int32, line string) {
	c.m.tasks.Message(t, percent, "%s", line)
}

func (c migrateManager) Live(ctx context.Context, t *taskRec, mv migrate.Move, reservation func()) (migrate.Result, error) {
	return c.m.liveMigrate(ctx, t, mv, reservation, nil)
}

func (c migrateManager) Offline(ctx context.Context, t *taskRec, mv migrate.Move, reservation func()) error {
	return c.m.offlineMigrate(ctx, t, mv, reservation)
}

func (l migrateLocked) Holder(id string) *taskRec { return l.m.heldLocked(id) }

func (l migrateLocked) Snapshot() *scheduler.Snapshot { return l.m.haSettings.Snapshot() }

func (l migrateLocked) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *taskRec {
	return l.m.newTaskLocked(op, refs, locks...)
}
