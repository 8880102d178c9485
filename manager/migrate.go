package manager

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/migrate"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
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

func (c *moveCluster) StartLive(ctx context.Context, src, dst string) (func(), error) {
	return c.m.ops.moves.StartLive(ctx, src, dst)
}

func (c *moveCluster) Arrive(dst string) (func(), error) { return c.m.ops.moves.Arrive(dst) }

func (c *moveCluster) Record(ctx context.Context, next *acliv1.Vm, rev int64) (int64, error) {
	var release func()
	if state.Placed(next) && next.HostUuid == c.mv.dst.Uuid {
		release = c.mv.release
	}
	if err := c.m.putVm(ctx, next, rev, release); err != nil {
		return 0, err
	}
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
	c.m.addMessage(t, percent, "%s", line)
}

func (c migrateManager) Live(ctx context.Context, t *taskRec, mv migrate.Move, reservation func()) (migrate.Result, error) {
	return c.m.liveMigrate(ctx, t, move{vm: mv.VM, rev: mv.Rev, src: mv.Src, dst: mv.Dst, bwMbps: mv.BandwidthMbps, release: reservation}, nil)
}

func (c migrateManager) Offline(ctx context.Context, t *taskRec, mv migrate.Move, reservation func()) error {
	return c.m.offlineMigrate(ctx, t, move{vm: mv.VM, rev: mv.Rev, src: mv.Src, dst: mv.Dst, bwMbps: mv.BandwidthMbps, release: reservation})
}

func (l migrateLocked) Holder(id string) *taskRec { return l.m.heldLocked(id) }

func (l migrateLocked) Snapshot() *scheduler.Snapshot { return l.m.snapshotLocked() }

func (l migrateLocked) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *taskRec {
	return l.m.newTaskLocked(op, refs, locks...)
}
