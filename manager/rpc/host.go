package rpc

import (
	"context"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
)

// Hosts reads and edits hosts, takes them in and out of maintenance, and
// adds and removes them.
type Hosts interface {
	ListHosts(context.Context, *acliv1.ListHostsRequest) (*acliv1.ListHostsResponse, error)
	GetHost(context.Context, *acliv1.GetHostRequest) (*acliv1.Host, error)
	UpdateHost(context.Context, *acliv1.UpdateHostRequest) (*acliv1.Task, error)
	EnterMaintenanceModeCheck(context.Context, *acliv1.EnterMaintenanceModeRequest) (*acliv1.MaintenanceCheck, error)
	EnterMaintenanceMode(context.Context, *acliv1.EnterMaintenanceModeRequest) (*acliv1.Task, error)
	ExitMaintenanceMode(context.Context, *acliv1.ExitMaintenanceModeRequest) (*acliv1.Task, error)
	EnterCvmMaintenanceMode(context.Context, *acliv1.CvmMaintenanceRequest) (*acliv1.Task, error)
	ExitCvmMaintenanceMode(context.Context, *acliv1.CvmMaintenanceRequest) (*acliv1.Task, error)
	AddHost(context.Context, *acliv1.AddHostRequest) (*acliv1.Task, error)
	RemoveHost(context.Context, *acliv1.RemoveHostRequest) (*acliv1.Task, error)
}

type hostServer struct {
	acliv1.UnsafeHostServiceServer
	f Hosts
}

func registerHosts(s grpc.ServiceRegistrar, f Hosts) {
	acliv1.RegisterHostServiceServer(s, hostServer{f: f})
}

func (s hostServer) ListHosts(ctx context.Context, req *acliv1.ListHostsRequest) (*acliv1.ListHostsResponse, error) {
	return reply(s.f.ListHosts(ctx, req))
}

func (s hostServer) GetHost(ctx context.Context, req *acliv1.GetHostRequest) (*acliv1.Host, error) {
	return reply(s.f.GetHost(ctx, req))
}

func (s hostServer) UpdateHost(ctx context.Context, req *acliv1.UpdateHostRequest) (*acliv1.Task, error) {
	if req.Schedulable == nil && req.Reason == "" {
		return nil, apierr.BadField("schedulable", "nothing to update: give schedulable=true|false (and a reason)")
	}
	if req.Reason != "" && (req.Schedulable == nil || *req.Schedulable) {
		return nil, apierr.BadField("reason", "a reason is recorded only with schedulable=false")
	}
	return reply(s.f.UpdateHost(ctx, req))
}

func (s hostServer) EnterMaintenanceModeCheck(ctx context.Context, req *acliv1.EnterMaintenanceModeRequest) (*acliv1.MaintenanceCheck, error) {
	return reply(s.f.EnterMaintenanceModeCheck(ctx, req))
}

func (s hostServer) EnterMaintenanceMode(ctx context.Context, req *acliv1.EnterMaintenanceModeRequest) (*acliv1.Task, error) {
	return reply(s.f.EnterMaintenanceMode(ctx, req))
}

func (s hostServer) ExitMaintenanceMode(ctx context.Context, req *acliv1.ExitMaintenanceModeRequest) (*acliv1.Task, error) {
	return reply(s.f.ExitMaintenanceMode(ctx, req))
}

func (s hostServer) EnterCvmMaintenanceMode(ctx context.Context, req *acliv1.CvmMaintenanceRequest) (*acliv1.Task, error) {
	return reply(s.f.EnterCvmMaintenanceMode(ctx, req))
}

func (s hostServer) ExitCvmMaintenanceMode(ctx context.Context, req *acliv1.CvmMaintenanceRequest) (*acliv1.Task, error) {
	return reply(s.f.ExitCvmMaintenanceMode(ctx, req))
}

func (s hostServer) AddHost(ctx context.Context, req *acliv1.AddHostRequest) (*acliv1.Task, error) {
	return reply(s.f.AddHost(ctx, req))
}

func (s hostServer) RemoveHost(ctx context.Context, req *acliv1.RemoveHostRequest) (*acliv1.Task, error) {
	return reply(s.f.RemoveHost(ctx, req))
}
