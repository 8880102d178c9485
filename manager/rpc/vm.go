package rpc

import (
	"context"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// Vms is the VM lifecycle: create, edit, power, disks, clone, migrate.
type Vms interface {
	ListVms(context.Context, *acliv1.ListVmsRequest) (*acliv1.ListVmsResponse, error)
	GetVm(context.Context, *acliv1.GetVmRequest) (*acliv1.Vm, error)
	CreateVm(context.Context, *acliv1.CreateVmRequest) (*acliv1.Task, error)
	UpdateVm(context.Context, *acliv1.UpdateVmRequest) (*acliv1.Task, error)
	DeleteVm(context.Context, *acliv1.DeleteVmRequest) (*acliv1.Task, error)
	SetPowerState(context.Context, *acliv1.SetPowerStateRequest) (*acliv1.Task, error)
	CreateDisk(context.Context, *acliv1.CreateDiskRequest) (*acliv1.Task, error)
	DeleteDisk(context.Context, *acliv1.DeleteDiskRequest) (*acliv1.Task, error)
	UpdateDisk(context.Context, *acliv1.UpdateDiskRequest) (*acliv1.Task, error)
	UpdateBootDevice(context.Context, *acliv1.UpdateBootDeviceRequest) (*acliv1.Task, error)
	CloneVm(context.Context, *acliv1.CloneVmRequest) (*acliv1.Task, error)
	MigrateVm(context.Context, *acliv1.MigrateVmRequest) (*acliv1.Task, error)
	AssignDevice(context.Context, *acliv1.AssignDeviceRequest) (*acliv1.Task, error)
	DeassignDevice(context.Context, *acliv1.AssignDeviceRequest) (*acliv1.Task, error)
}

// Nics are VMs' NICs (manager/network), served by the VM service.
type Nics interface {
	CreateNic(context.Context, *acliv1.CreateNicRequest) (*acliv1.Task, error)
	DeleteNic(context.Context, *acliv1.DeleteNicRequest) (*acliv1.Task, error)
	UpdateNic(context.Context, *acliv1.UpdateNicRequest) (*acliv1.Task, error)
}

// VmGroups are the VM groups and VMs' host affinity (manager/vmgroup),
// served by the VM service.
type VmGroups interface {
	SetAffinity(context.Context, *acliv1.SetAffinityRequest) (*acliv1.Task, error)
	ListVmGroups(context.Context, *acliv1.ListVmGroupsRequest) (*acliv1.ListVmGroupsResponse, error)
	CreateVmGroup(context.Context, *acliv1.CreateVmGroupRequest) (*acliv1.Task, error)
	UpdateVmGroup(context.Context, *acliv1.UpdateVmGroupRequest) (*acliv1.Task, error)
	DeleteVmGroup(context.Context, *acliv1.DeleteVmGroupRequest) (*acliv1.Task, error)
}

type vmServer struct {
	acliv1.UnsafeVmServiceServer
	f Vms
	n Nics
	g VmGroups
}

func registerVms(s grpc.ServiceRegistrar, f Vms, n Nics, g VmGroups) {
	acliv1.RegisterVmServiceServer(s, vmServer{f: f, n: n, g: g})
}

func (s vmServer) ListVms(ctx context.Context, req *acliv1.ListVmsRequest) (*acliv1.ListVmsResponse, error) {
	if _, ok := acliv1.PowerState_name[int32(req.PowerState)]; !ok {
		return nil, apierr.BadField("power_state", "power state %d is unknown; use kOn, kOff or kPaused", req.PowerState)
	}
	return reply(s.f.ListVms(ctx, req))
}

func (s vmServer) GetVm(ctx context.Context, req *acliv1.GetVmRequest) (*acliv1.Vm, error) {
	return reply(s.f.GetVm(ctx, req))
}

func (s vmServer) CreateVm(ctx context.Context, req *acliv1.CreateVmRequest) (*acliv1.Task, error) {
	return reply(s.f.CreateVm(ctx, req))
}

func (s vmServer) UpdateVm(ctx context.Context, req *acliv1.UpdateVmRequest) (*acliv1.Task, error) {
	return reply(s.f.UpdateVm(ctx, req))
}

func (s vmServer) DeleteVm(ctx context.Context, req *acliv1.DeleteVmRequest) (*acliv1.Task, error) {
	return reply(s.f.DeleteVm(ctx, req))
}

func (s vmServer) SetPowerState(ctx context.Context, req *acliv1.SetPowerStateRequest) (*acliv1.Task, error) {
	return reply(s.f.SetPowerState(ctx, req))
}

func (s vmServer) CreateDisk(ctx context.Context, req *acliv1.CreateDiskRequest) (*acliv1.Task, error) {
	return reply(s.f.CreateDisk(ctx, req))
}

func (s vmServer) DeleteDisk(ctx context.Context, req *acliv1.DeleteDiskRequest) (*acliv1.Task, error) {
	return reply(s.f.DeleteDisk(ctx, req))
}

func (s vmServer) UpdateDisk(ctx context.Context, req *acliv1.UpdateDiskRequest) (*acliv1.Task, error) {
	return reply(s.f.UpdateDisk(ctx, req))
}

func (s vmServer) UpdateBootDevice(ctx context.Context, req *acliv1.UpdateBootDeviceRequest) (*acliv1.Task, error) {
	return reply(s.f.UpdateBootDevice(ctx, req))
}

func (s vmServer) CloneVm(ctx context.Context, req *acliv1.CloneVmRequest) (*acliv1.Task, error) {
	return reply(s.f.CloneVm(ctx, req))
}

func (s vmServer) CreateNic(ctx context.Context, req *acliv1.CreateNicRequest) (*acliv1.Task, error) {
	return reply(s.n.CreateNic(ctx, req))
}

func (s vmServer) DeleteNic(ctx context.Context, req *acliv1.DeleteNicRequest) (*acliv1.Task, error) {
	return reply(s.n.DeleteNic(ctx, req))
}

func (s vmServer) MigrateVm(ctx context.Context, req *acliv1.MigrateVmRequest) (*acliv1.Task, error) {
	return reply(s.f.MigrateVm(ctx, req))
}

func (s vmServer) SetAffinity(ctx context.Context, req *acliv1.SetAffinityRequest) (*acliv1.Task, error) {
	return reply(s.g.SetAffinity(ctx, req))
}

func (s vmServer) ListVmGroups(ctx context.Context, req *acliv1.ListVmGroupsRequest) (*acliv1.ListVmGroupsResponse, error) {
	return reply(s.g.ListVmGroups(ctx, req))
}

func (s vmServer) CreateVmGroup(ctx context.Context, req *acliv1.CreateVmGroupRequest) (*acliv1.Task, error) {
	if err := state.CheckName("vm_group", req.Name); err != nil {
		return nil, apierr.BadField("name", "%v", err)
	}
	return reply(s.g.CreateVmGroup(ctx, req))
}

func (s vmServer) UpdateVmGroup(ctx context.Context, req *acliv1.UpdateVmGroupRequest) (*acliv1.Task, error) {
	if len(req.AddVms) == 0 && len(req.RemoveVms) == 0 && req.AntiAffinity == nil {
		return nil, apierr.BadField("group", "nothing to update: give vms to add or remove, or anti_affinity=true|false")
	}
	return reply(s.g.UpdateVmGroup(ctx, req))
}

func (s vmServer) DeleteVmGroup(ctx context.Context, req *acliv1.DeleteVmGroupRequest) (*acliv1.Task, error) {
	return reply(s.g.DeleteVmGroup(ctx, req))
}

func (s vmServer) UpdateNic(ctx context.Context, req *acliv1.UpdateNicRequest) (*acliv1.Task, error) {
	return reply(s.n.UpdateNic(ctx, req))
}
