package manager

import (
	"context"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
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

// vmService is the VM feature behind manager/rpc's adapter that is still
// the root's (clone).
type vmService struct {
	m *Manager
}

// vmCluster is manager/vm's view of the manager (vm.Cluster).
type vmCluster struct{ m *Manager }

func (c vmCluster) Begin(ctx context.Context, kind string, op acliv1.TaskOperation, refs []*acliv1.EntityRef, seen state.Seen, locks ...string) (*taskRec, error) {
	m := c.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range locks {
		if h := m.heldLocked(l); h != nil {
			return nil, apierr.Busy(kind, refs[0].Name, h.PB().Uuid, h.PB().Operation.String())
		}
	}
	t := m.newTaskLocked(op, refs, locks...)
	// It starts on what the request read, not on what is committed now.
	for id, rev := range seen {
		if t.Seen == nil {
			t.Seen = state.Seen{}
		}
		t.Seen[id] = rev
	}
	return t, nil
}

func (c vmCluster) Forget(t *taskRec) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	c.m.forgetLocked(t)
}

func (c vmCluster) Place(t *taskRec, v *acliv1.Vm, named string) (*acliv1.Host, error) {
	m := c.m
	m.mu.Lock()
	defer m.mu.Unlock()
	var hosts []scheduler.Candidate
	m.db.View(func(tx *state.Tx) { hosts = tx.Candidates() })
	h, err := vm.ChooseHost(m.db, v, named, vm.Placement{
		Hosts: hosts,
		ByRules: func() (string, bool) {
			r, ok := m.placeWithRulesLocked(v)
			if !ok {
				return "", false
			}
			return r.pb.Uuid, true
		},
		Place:   m.place,
		Devices: m.db.DeviceFit(v),
	})
	if err == nil {
		err = m.haSettings.Refusal(v, h.Uuid)
	}
	if err != nil {
		return nil, err
	}
	id, arrived := m.db.Hold(v, h.Uuid), m.ops.moves.Arriving(h.Uuid)
	prev := t.Release
	t.Release = func() {
		if prev != nil {
			prev()
		}
		m.db.Depart(id)
		arrived()
	}
	// Named as if begun with it: the task is not persisted yet.
	pb := proto.Clone(t.PB()).(*acliv1.Task)
	pb.Entities = append(pb.Entities, state.HostRef(h))
	t.Replace(pb)
	return h, nil
}

func (c vmCluster) Reserve(fn func() error) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	return fn()
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

func (c vmCluster) CheckTarget(host string) error { return c.m.ops.moves.Check(host) }

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

// Storage reads only committed records (storage.Sessions.VmOut).
func (c vmCluster) Storage(v *acliv1.Vm, vmdiskPaths bool) *acliv1.Vm {
	v = c.m.vgs.VmOut(v)
	if vmdiskPaths {
		v = storage.WithVmdiskPaths(v)
	}
	return v
}
