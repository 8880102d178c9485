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
	s.c.Read(func(r Reader) {
		s.db.View(func(tx *state.Tx) {
			if other := tx.Vm(v.Uuid); other != nil {
				taken = apierr.AlreadyExists("vm", v.Uuid, "vm "+other.Name+" has this UUID")
			}
		})
		if t := r.Task(v.Uuid); taken == nil && t != nil {
			taken = apierr.AlreadyExists("vm", v.Uuid, "task "+t.PB.Uuid+" is creating a VM with this UUID")
		}
	})
	if taken != nil {
		return nil, taken
	}
	q, err := s.tasks.Begin(ctx, "vm", acliv1.TaskOperation_kVmCreate, []*acliv1.EntityRef{Ref(v)}, v.Uuid)
	if err != nil {
		return nil, err
	}
	// The commit refuses a record with this UUID created meanwhile (it
	// writes at revision 0).
	return q.Commit(ctx, []state.Write{put(v, 0)}, fmt.Sprintf("vm %s created (%d vCPU, %s)", v.Name, v.NumVcpus, scheduler.Bytes(v.MemoryBytes)))
}

// DeleteVm removes an off VM from its host's hypervisor and the cluster.
func (s *Service) DeleteVm(ctx context.Context, req *acliv1.DeleteVmRequest) (*acliv1.Task, error) {
	var (
		t    *tasks.Task
		cur  *acliv1.Vm
		rev  int64
		host *acliv1.Host
	)
	err := s.c.Locked(func(l Locked) error {
		var err error
		if cur, rev, err = s.claimable(l, req.Vm); err != nil {
			return err
		}
		if state.Placed(cur) {
			return apierr.Precondition(state.RulePowerState, "vm:"+cur.Name, "vm %s is %s; power it off first", cur.Name, state.PowerWord(cur.PowerState))
		}
		host = s.host(cur.HostUuid)
		t = l.Begin(acliv1.TaskOperation_kVmDelete, []*acliv1.EntityRef{Ref(cur)}, cur.Uuid)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.c.Launch(ctx, t, func(ctx context.Context, _ *tasks.Task) (Outcome, error) {
		if err := s.drv.Undefine(ctx, host, cur); err != nil {
			return Outcome{}, err
		}
		return Outcome{Writes: []state.Write{del(cur, rev)}, Message: fmt.Sprintf("vm %s deleted", cur.Name)}, nil
	})
}

// claimable resolves the VM a request names, refusing it when another
// task holds it; the caller holds the lock and may then begin its task.
func (s *Service) claimable(l Locked, ref string) (*acliv1.Vm, int64, error) {
	v, rev, err := s.resolve("vm", ref)
	if err != nil {
		return nil, 0, err
	}
	if t := l.Holder(v.Uuid); t != nil {
		return nil, 0, apierr.Busy("vm", v.Name, t.PB.Uuid, t.PB.Operation.String())
	}
	return v, rev, nil
}
