package manager

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/storage"
	"github.com/acli-dev/acli/manager/tasks"
	"github.com/acli-dev/acli/manager/vm"
)

// vmFeature serves the VM service: the lifecycle from manager/vm,
// migration from manager/migrate, the rest (disks, NICs, clone, affinity)
// from here.
type vmFeature struct {
	*vm.Service
	vmService
	*vmMigration
}

// vmDisks is manager/vm's storage (vm.Disks): the containers, and the
// copies of disks made from a source.
type vmDisks struct {
	*storage.Containers
	m *Manager
}

func (d vmDisks) CloneDisk(ctx context.Context, req *acliv1.CreateDiskRequest, bus, container string) (*acliv1.Task, error) {
	return d.m.createDiskClone(ctx, req, bus, container)
}

// vmCluster is manager/vm's view of the manager (vm.Cluster).
type vmCluster struct{ m *Manager }

// vmLockedView is what manager/vm reads and claims under Manager.mu.
type vmLockedView struct{ m *Manager }

func (c vmCluster) Locked(fn func(l vm.Locked) error) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	return fn(vmLockedView(c))
}

func (c vmCluster) Read(fn func(r vm.Reader)) {
	c.m.mu.RLock()
	defer c.m.mu.RUnlock()
	fn(vmLockedView(c))
}

func (c vmCluster) Launch(ctx context.Context, t *taskRec, w vm.Work) (*acliv1.Task, error) {
	return c.m.launch(ctx, t, c.work(w))
}

func (c vmCluster) Progress(t *taskRec, percent int32, format string, args ...any) {
	c.m.progress(t, percent, format, args...)
}

func (c vmCluster) Record(ctx context.Context, next *acliv1.Vm, rev int64) error {
	return c.m.putVm(ctx, next, rev, nil)
}

func (c vmCluster) CheckTarget(host string) error { return c.m.checkTarget(host) }

// work runs manager/vm's work; its writes are committed with the task.
func (c vmCluster) work(w vm.Work) work {
	return func(ctx context.Context, t *tasks.Task) (outcome, error) {
		o, err := w(ctx, t)
		if err != nil {
			return outcome{}, err
		}
		out := outcome{message: o.Message, writes: make([]write, len(o.Writes))}
		for i, w := range o.Writes {
			out.writes[i] = write{key: w.Key, msg: w.Msg, rev: w.Rev}
		}
		return out, nil
	}
}

func (l vmLockedView) Task(id string) *taskRec { return l.m.busyLocked(id) }

func (l vmLockedView) Storage(v *acliv1.Vm, vmdiskPaths bool) *acliv1.Vm {
	v = l.m.vgs.VmOut(v)
	if vmdiskPaths {
		v = withVmdiskPaths(v)
	}
	return v
}

func (l vmLockedView) Holder(id string) *taskRec { return l.m.heldLocked(id) }

func (l vmLockedView) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *taskRec {
	return l.m.newTaskLocked(op, refs, locks...)
}

func (l vmLockedView) Forget(t *taskRec) { l.m.forgetLocked(t) }

func (l vmLockedView) Place(v *acliv1.Vm, named string) (*acliv1.Host, error) {
	h, err := l.m.chooseHostLocked(v, named)
	if err == nil {
		err = l.m.haSettings.Refusal(v, h.pb.Uuid)
	}
	if err != nil {
		return nil, err
	}
	return h.pb, nil
}

func (l vmLockedView) Arriving(host string) func() { return l.m.arriveLocked(host) }
