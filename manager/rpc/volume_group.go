package rpc

import (
	"context"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// VolumeGroups are volume groups, their vDisks, attachments and iSCSI sessions.
type VolumeGroups interface {
	ListVolumeGroups(context.Context, *acliv1.ListVolumeGroupsRequest) (*acliv1.ListVolumeGroupsResponse, error)
	GetVolumeGroup(context.Context, *acliv1.GetVolumeGroupRequest) (*acliv1.VolumeGroup, error)
	CreateVolumeGroup(context.Context, *acliv1.CreateVolumeGroupRequest) (*acliv1.Task, error)
	UpdateVolumeGroup(context.Context, *acliv1.UpdateVolumeGroupRequest) (*acliv1.Task, error)
	DeleteVolumeGroup(context.Context, *acliv1.DeleteVolumeGroupRequest) (*acliv1.Task, error)
	CreateVgDisk(context.Context, *acliv1.CreateVgDiskRequest) (*acliv1.Task, error)
	DeleteVgDisk(context.Context, *acliv1.DeleteVgDiskRequest) (*acliv1.Task, error)
	CloneVolumeGroup(context.Context, *acliv1.CloneVolumeGroupRequest) (*acliv1.Task, error)
	AttachExternal(context.Context, *acliv1.AttachExternalRequest) (*acliv1.Task, error)
	DetachExternal(context.Context, *acliv1.AttachExternalRequest) (*acliv1.Task, error)
	AttachToVm(context.Context, *acliv1.AttachToVmRequest) (*acliv1.Task, error)
	DetachFromVm(context.Context, *acliv1.AttachToVmRequest) (*acliv1.Task, error)
	ListSessions(context.Context, *acliv1.ListSessionsRequest) (*acliv1.ListSessionsResponse, error)
}

type vgServer struct {
	acliv1.UnsafeVolumeGroupServiceServer
	f VolumeGroups
}

func registerVolumeGroups(s grpc.ServiceRegistrar, f VolumeGroups) {
	acliv1.RegisterVolumeGroupServiceServer(s, vgServer{f: f})
}

func (s vgServer) ListVolumeGroups(ctx context.Context, req *acliv1.ListVolumeGroupsRequest) (*acliv1.ListVolumeGroupsResponse, error) {
	return reply(s.f.ListVolumeGroups(ctx, req))
}

func (s vgServer) GetVolumeGroup(ctx context.Context, req *acliv1.GetVolumeGroupRequest) (*acliv1.VolumeGroup, error) {
	return reply(s.f.GetVolumeGroup(ctx, req))
}

func (s vgServer) CreateVolumeGroup(ctx context.Context, req *acliv1.CreateVolumeGroupRequest) (*acliv1.Task, error) {
	return reply(s.f.CreateVolumeGroup(ctx, req))
}

func (s vgServer) UpdateVolumeGroup(ctx context.Context, req *acliv1.UpdateVolumeGroupRequest) (*acliv1.Task, error) {
	return reply(s.f.UpdateVolumeGroup(ctx, req))
}

func (s vgServer) DeleteVolumeGroup(ctx context.Context, req *acliv1.DeleteVolumeGroupRequest) (*acliv1.Task, error) {
	return reply(s.f.DeleteVolumeGroup(ctx, req))
}

func (s vgServer) CreateVgDisk(ctx context.Context, req *acliv1.CreateVgDiskRequest) (*acliv1.Task, error) {
	return reply(s.f.CreateVgDisk(ctx, req))
}

func (s vgServer) DeleteVgDisk(ctx context.Context, req *acliv1.DeleteVgDiskRequest) (*acliv1.Task, error) {
	return reply(s.f.DeleteVgDisk(ctx, req))
}

func (s vgServer) CloneVolumeGroup(ctx context.Context, req *acliv1.CloneVolumeGroupRequest) (*acliv1.Task, error) {
	return reply(s.f.CloneVolumeGroup(ctx, req))
}

func (s vgServer) AttachExternal(ctx context.Context, req *acliv1.AttachExternalRequest) (*acliv1.Task, error) {
	return reply(s.f.AttachExternal(ctx, req))
}

func (s vgServer) DetachExternal(ctx context.Context, req *acliv1.AttachExternalRequest) (*acliv1.Task, error) {
	return reply(s.f.DetachExternal(ctx, req))
}

func (s vgServer) AttachToVm(ctx context.Context, req *acliv1.AttachToVmRequest) (*acliv1.Task, error) {
	return reply(s.f.AttachToVm(ctx, req))
}

func (s vgServer) DetachFromVm(ctx context.Context, req *acliv1.AttachToVmRequest) (*acliv1.Task, error) {
	return reply(s.f.DetachFromVm(ctx, req))
}

func (s vgServer) ListSessions(ctx context.Context, req *acliv1.ListSessionsRequest) (*acliv1.ListSessionsResponse, error) {
	return reply(s.f.ListSessions(ctx, req))
}
