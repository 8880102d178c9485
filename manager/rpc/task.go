package rpc

import (
	"context"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
)

// Tasks lists, follows and cancels tasks.
type Tasks interface {
	ListTasks(context.Context, *acliv1.ListTasksRequest) (*acliv1.ListTasksResponse, error)
	GetTask(context.Context, *acliv1.GetTaskRequest) (*acliv1.Task, error)
	// WatchTask sends the task now and on every change until it ends.
	WatchTask(ctx context.Context, req *acliv1.GetTaskRequest, send func(*acliv1.Task) error) error
	CancelTask(context.Context, *acliv1.CancelTaskRequest) (*acliv1.Task, error)
}

type taskServer struct {
	acliv1.UnsafeTaskServiceServer
	f Tasks
}

func registerTasks(s grpc.ServiceRegistrar, f Tasks) {
	acliv1.RegisterTaskServiceServer(s, taskServer{f: f})
}

// defaultListLimit is how many records a list answers when no limit is given.
const defaultListLimit = 100

func (s taskServer) ListTasks(ctx context.Context, req *acliv1.ListTasksRequest) (*acliv1.ListTasksResponse, error) {
	if req.Limit < 0 {
		return nil, apierr.BadField("limit", "limit %d must not be negative", req.Limit)
	}
	if req.Limit == 0 {
		req.Limit = defaultListLimit
	}
	return reply(s.f.ListTasks(ctx, req))
}

func (s taskServer) GetTask(ctx context.Context, req *acliv1.GetTaskRequest) (*acliv1.Task, error) {
	if req.Uuid == "" {
		return nil, apierr.BadField("uuid", "task uuid is required")
	}
	return reply(s.f.GetTask(ctx, req))
}

func (s taskServer) WatchTask(req *acliv1.GetTaskRequest, stream acliv1.TaskService_WatchTaskServer) error {
	if req.Uuid == "" {
		return apierr.BadField("uuid", "task uuid is required")
	}
	return Status(s.f.WatchTask(stream.Context(), req, stream.Send))
}

func (s taskServer) CancelTask(ctx context.Context, req *acliv1.CancelTaskRequest) (*acliv1.Task, error) {
	if req.Uuid == "" {
		return nil, apierr.BadField("uuid", "task uuid is required")
	}
	return reply(s.f.CancelTask(ctx, req))
}
