package rpc

import (
	"context"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Snapshots are VM snapshots.
type Snapshots interface {
	CreateSnapshots(context.Context, *acliv1.CreateSnapshotsRequest) (*acliv1.Task, error)
	ListSnapshots(context.Context, *acliv1.ListSnapshotsRequest) (*acliv1.ListSnapshotsResponse, error)
	GetSnapshot(context.Context, *acliv1.GetSnapshotRequest) (*acliv1.Snapshot, error)
	DeleteSnapshot(context.Context, *acliv1.DeleteSnapshotRequest) (*acliv1.Task, error)
}

type snapshotServer struct {
	acliv1.UnsafeSnapshotServiceServer
	f Snapshots
}

func registerSnapshots(s grpc.ServiceRegistrar, f Snapshots) {
	acliv1.RegisterSnapshotServiceServer(s, snapshotServer{f: f})
}

func (s snapshotServer) CreateSnapshots(ctx context.Context, req *acliv1.CreateSnapshotsRequest) (*acliv1.Task, error) {
	return reply(s.f.CreateSnapshots(ctx, req))
}

func (s snapshotServer) ListSnapshots(ctx context.Context, req *acliv1.ListSnapshotsRequest) (*acliv1.ListSnapshotsResponse, error) {
	return reply(s.f.ListSnapshots(ctx, req))
}

func (s snapshotServer) GetSnapshot(ctx context.Context, req *acliv1.GetSnapshotRequest) (*acliv1.Snapshot, error) {
	return reply(s.f.GetSnapshot(ctx, req))
}

func (s snapshotServer) DeleteSnapshot(ctx context.Context, req *acliv1.DeleteSnapshotRequest) (*acliv1.Task, error) {
	return reply(s.f.DeleteSnapshot(ctx, req))
}
