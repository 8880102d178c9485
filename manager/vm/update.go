package vm

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// updatable names what vm.update may change, for the nothing-to-update error.
const updatable = "name, num_vcpus, num_cores_per_vcpu, memory, ha_priority, agent_vm, description, passthrough, dirty_rate_mbps, " +
	"uefi_boot, num_vnuma_nodes, num_threads_per_core, hardware_virtualization, memory_overcommit, vcpu_hard_pin, cpu_passthrough, virtual_tpm"

// apply sets the fields an update request gives on v and names them.
func apply(v *acliv1.Vm, req *acliv1.UpdateVmRequest) []string {
	var changed []string
	setGiven(&changed, &v.Name, req.Name, "name")
	setGiven(&changed, &v.NumVcpus, req.NumVcpus, "num_vcpus")
	setGiven(&changed, &v.NumCoresPerVcpu, req.NumCoresPerVcpu, "num_cores_per_vcpu")
	setGiven(&changed, &v.HaPriority, req.HaPriority, "ha_priority")
	setGiven(&changed, &v.MemoryBytes, req.MemoryBytes, "memory")
	setGiven(&changed, &v.AgentVm, req.AgentVm, "agent_vm")
	setGiven(&changed, &v.Description, req.Description, "description")
	setGiven(&changed, &v.Passthrough, req.Passthrough, "passthrough")
	setGiven(&changed, &v.DirtyRateMbps, req.DirtyRateMbps, "dirty_rate_mbps")
	return append(changed, settingsFromUpdate(v, req)...)
}

// updated is cur with the request's fields applied and the names of the
// fields given, checked: the shape and settings hold together, and what
// needs the VM off is refused while it runs.
func updated(cur *acliv1.Vm, req *acliv1.UpdateVmRequest) (*acliv1.Vm, []string, error) {
	if req.Name != nil {
		if err := state.CheckName("vm", *req.Name); err != nil {
			return nil, nil, apierr.BadField("name", "%v", err)
		}
	}
	v := proto.Clone(cur).(*acliv1.Vm)
	changed := apply(v, req)
	if bad := append(CheckShape(&v.NumVcpus, &v.NumCoresPerVcpu, v.MemoryBytes, v.DirtyRateMbps, false), checkSettings(v)...); len(bad) > 0 {
		return nil, nil, apierr.InvalidArgument(bad...)
	}
	if err := refuseOffOnly(cur, v); err != nil {
		return nil, nil, err
	}
	return v, changed, nil
}

// UpdateVm changes a VM's name, shape, settings or flags.
func (s *Service) UpdateVm(ctx context.Context, req *acliv1.UpdateVmRequest) (*acliv1.Task, error) {
	if len(apply(&acliv1.Vm{}, req)) == 0 {
		return nil, apierr.BadField("vm", "nothing to update: give at least one of "+updatable)
	}
	v, _, err := s.resolve("vm", req.Vm)
	if err != nil {
		return nil, err
	}
	q, cur, rev, err := begin(ctx, s.tasks, s.db, v, acliv1.TaskOperation_kVmUpdate)
	if err != nil {
		return nil, err
	}
	next, changed, err := updated(cur, req)
	// Growing a running VM needs the memory on its host now; hold it
	// until the change is recorded so no power-on takes it meanwhile.
	if grow := state.MemoryReserved(next) - state.MemoryReserved(cur); err == nil && grow > 0 && state.Placed(cur) {
		var id uint64
		err = s.c.Reserve(func() error {
			var herr error
			id, herr = s.hold(cur, cur.HostUuid, grow)
			return herr
		})
		if err == nil {
			defer s.db.Depart(id)
		}
	}
	if err != nil {
		q.Drop()
		return nil, err
	}
	return q.Commit(ctx, []state.Write{put(next, rev)}, fmt.Sprintf("vm %s updated (%s)", next.Name, strings.Join(changed, ", ")))
}

// hold reserves bytes more of host's memory for v (a state.DB arrival,
// which every commit counts), refusing when the host has not that much
// free. The caller runs it in Cluster.Reserve and departs the arrival.
func (s *Service) hold(v *acliv1.Vm, host string, bytes int64) (uint64, error) {
	h := s.host(host)
	if h == nil {
		return 0, apierr.Precondition("HOST", "vm:"+v.Name, "vm %s is %s but its host %s is unknown", v.Name, state.PowerWord(v.PowerState), host)
	}
	if free := h.MemoryBytes - s.db.MemoryTaken(host); bytes > free {
		return 0, apierr.Precondition("MEMORY", "host:"+h.Name,
			"vm %s is on and host %s has %s free; growing it by %s would over-commit memory",
			v.Name, h.Name, scheduler.Bytes(max(free, 0)), scheduler.Bytes(bytes))
	}
	return s.db.Arrive(v.Uuid, host, bytes), nil
}
