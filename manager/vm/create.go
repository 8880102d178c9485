package vm

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// newRecord is the VM a create request describes, checked: a new UUID
// unless the request gives one, off, defaults filled in.
func newRecord(req *acliv1.CreateVmRequest) (*acliv1.Vm, error) {
	v := &acliv1.Vm{
		Uuid: uuid.NewString(), Name: req.Name, NumVcpus: req.NumVcpus, NumCoresPerVcpu: req.NumCoresPerVcpu,
		MemoryBytes: req.MemoryBytes, PowerState: acliv1.PowerState_kOff, HaPriority: req.HaPriority,
		AgentVm: req.AgentVm, Description: req.Description, Passthrough: req.Passthrough,
		DirtyRateMbps: req.DirtyRateMbps, CreateTime: timestamppb.Now(),
	}
	settingsFromCreate(v, req)
	var bad []apierr.Field
	if err := state.CheckName("vm", v.Name); err != nil {
		bad = append(bad, apierr.Field{Field: "name", Description: err.Error()})
	}
	bad = append(bad, CheckShape(&v.NumVcpus, &v.NumCoresPerVcpu, v.MemoryBytes, v.DirtyRateMbps, true)...)
	bad = append(bad, checkSettings(v)...)
	if req.Uuid != "" {
		id, err := uuid.Parse(req.Uuid)
		if err != nil {
			return nil, apierr.BadField("uuid", "uuid %q is not a UUID, e.g. %s", req.Uuid, uuid.NewString())
		}
		v.Uuid = id.String()
	}
	if len(bad) > 0 {
		return nil, apierr.InvalidArgument(bad...)
	}
	return v, nil
}

// CreateVm records a new VM, off and on no host.
func (s *Service) CreateVm(ctx context.Context, req *acliv1.CreateVmRequest) (*acliv1.Task, error) {
	v, err := newRecord(req)
	if err != nil {
		return nil, err
	}
	// A UUID a running task is creating is taken too. A create racing
	// this check for the same UUID is refused by Begin as busy.
	var taken error
	s.db.View(func(tx *state.Tx) {
		if other := tx.Vm(v.Uuid); other != nil {
			taken = apierr.AlreadyExists("vm", v.Uuid, "vm "+other.Name+" has this UUID")
		}
	})
	if t := s.db.Holder(v.Uuid); taken == nil && t != "" {
		taken = apierr.AlreadyExists("vm", v.Uuid, "task "+t+" is creating a VM with this UUID")
	}
	if taken != nil {
		return nil, taken
	}
	q, err := s.tasks.Begin(ctx, "vm", acliv1.TaskOperation_kVmCreate, []*acliv1.EntityRef{state.VmRef(v)}, v.Uuid)
	if err != nil {
		return nil, err
	}
	// The commit refuses a record with this UUID created meanwhile (it
	// writes at revision 0).
	return q.Commit(ctx, []state.Write{put(v, 0)}, fmt.Sprintf("vm %s created (%d vCPU, %s)", v.Name, v.NumVcpus, scheduler.Bytes(v.MemoryBytes)))
}

// DeleteVm removes an off VM from its host's hypervisor and the cluster.
func (s *Service) DeleteVm(ctx context.Context, req *acliv1.DeleteVmRequest) (*acliv1.Task, error) {
	t, cur, rev, err := s.start(ctx, req.Vm, acliv1.TaskOperation_kVmDelete, func(v *acliv1.Vm) []*acliv1.EntityRef {
		return []*acliv1.EntityRef{state.VmRef(v)}
	})
	if err != nil {
		return nil, err
	}
	if state.Placed(cur) {
		s.c.Forget(t)
		return nil, apierr.Precondition(state.RulePowerState, "vm:"+cur.Name, "vm %s is %s; power it off first", cur.Name, state.PowerWord(cur.PowerState))
	}
	host := s.host(cur.HostUuid)
	return s.c.Launch(ctx, t, func(ctx context.Context, _ *tasks.Task) (Outcome, error) {
		if err := s.drv.Undefine(ctx, host, cur); err != nil {
			return Outcome{}, err
		}
		return Outcome{Writes: []state.Write{del(cur, rev)}, Message: fmt.Sprintf("vm %s deleted", cur.Name)}, nil
	})
}

// start resolves ref and registers a launched task of op on the VM, named
// by refs(cur), that starts on the record read here (cur at rev) or not at
// all: a VM another task holds refuses it now as busy, and a VM changed
// before the task's start commit refuses it there (Cluster.Launch), so the
// caller's checks of cur are the record the task acts on.
func (s *Service) start(ctx context.Context, ref string, op acliv1.TaskOperation, refs func(v *acliv1.Vm) []*acliv1.EntityRef) (t *tasks.Task, cur *acliv1.Vm, rev int64, err error) {
	if cur, rev, err = s.resolve("vm", ref); err != nil {
		return nil, nil, 0, err
	}
	if t, err = s.c.Begin(ctx, "vm", op, refs(cur), state.Seen{cur.Uuid: rev}, cur.Uuid); err != nil {
		return nil, nil, 0, err
	}
	return t, cur, rev, nil
}
